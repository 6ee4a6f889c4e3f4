//! The recorded paths of a [`super::NoopRecord`], sorted by their bytes, in one
//! buffer: a 1,000-service record holds some 26,000 of them, and one
//! allocation per path cost more than the stats of an incremental build's
//! check. Reading a record moves its buffer in; patching one sets states in
//! place.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Recorded;

/// Paths (sorted by bytes, each once) and what was recorded of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// Every path, one after the other.
    paths: Vec<u8>,
    /// Per path: where it ends in `paths` (it starts where the one before ends).
    ends: Vec<usize>,
    /// Per path: `None` if it did not exist.
    states: Vec<Option<Recorded>>,
}

impl Files {
    /// Room for `n` paths of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Files {
        Files {
            paths: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn bytes(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.paths[start..self.ends[i]]
    }

    /// The `i`th path.
    pub fn path(&self, i: usize) -> &Path {
        Path::new(OsStr::from_bytes(self.bytes(i)))
    }

    /// What was recorded of the `i`th path.
    pub fn state(&self, i: usize) -> &Option<Recorded> {
        &self.states[i]
    }

    pub fn set(&mut self, i: usize, state: Option<Recorded>) {
        self.states[i] = state;
    }

    /// Where `path` is, if recorded.
    pub fn find(&self, path: &Path) -> Option<usize> {
        let key = path.as_os_str().as_encoded_bytes();
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.bytes(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Appends a path that sorts after every path so far (the caller's
    /// promise: records are built and read in order).
    pub fn push(&mut self, path: &[u8], state: Option<Recorded>) {
        debug_assert!(self.is_empty() || self.bytes(self.len() - 1) < path);
        self.paths.extend_from_slice(path);
        self.ends.push(self.paths.len());
        self.states.push(state);
    }

    /// Appends a path read from a record's file, trusted to be in order (a
    /// file that is not makes lookups miss, and so only costs a full build).
    pub fn push_unchecked(&mut self, path: &[u8], state: Option<Recorded>) {
        self.paths.extend_from_slice(path);
        self.ends.push(self.paths.len());
        self.states.push(state);
    }

    /// Every path with its state, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Option<Recorded>)> {
        (0..self.len()).map(|i| (self.path(i), &self.states[i]))
    }
}

impl<P: AsRef<Path>> FromIterator<(P, Option<Recorded>)> for Files {
    /// The files of `(path, state)` pairs given in order.
    fn from_iter<I: IntoIterator<Item = (P, Option<Recorded>)>>(iter: I) -> Files {
        let mut files = Files::default();
        for (path, state) in iter {
            files.push(path.as_ref().as_os_str().as_encoded_bytes(), state);
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_by_their_bytes() {
        let paths = ["/a", "/a/b", "/a/bc", "/z"].map(Path::new);
        let files: Files = paths.iter().map(|p| (*p, None)).collect();
        let read: Vec<&Path> = files.iter().map(|(p, _)| p).collect();
        assert_eq!(read, paths);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(files.find(p), Some(i));
        }
        assert_eq!(files.find(Path::new("/a/a")), None);
        assert_eq!(files.find(Path::new("/zz")), None);
        assert_eq!(files.find(Path::new("/")), None);
        let mut unchecked = Files::default();
        for p in paths {
            unchecked.push_unchecked(p.as_os_str().as_encoded_bytes(), None);
        }
        assert_eq!(unchecked, files);
    }
}
