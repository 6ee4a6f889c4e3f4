//! The recorded paths of a [`super::NoopRecord`], sorted by their bytes, in one
//! buffer: a 1,000-service record holds some 26,000 of them, and one
//! allocation per path cost more than the stats of an incremental build's
//! check. Reading a record moves its buffer in; patching one sets states in
//! place.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Recorded;

/// Paths and what was recorded of each, by a stable index: the paths read
/// from a record's file come first, in order; paths added since (by an
/// incremental build or a journal) follow in the order they were added, and
/// dropped ones keep their index. Only a whole record's file puts them back
/// in order ([`Files::ordered`]), so steps' lists never need renumbering in
/// between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// Every path, one after the other.
    paths: Vec<u8>,
    /// Per path: where it ends in `paths` (it starts where the one before ends).
    ends: Vec<usize>,
    /// Per path: `None` if it did not exist.
    states: Vec<Option<Recorded>>,
    /// How many paths, from the first, are in order.
    sorted: usize,
    /// Per path: whether it was dropped (empty: none was).
    dropped: Vec<bool>,
}

impl Files {
    /// Room for `n` paths of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Files {
        Files {
            paths: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            ..Files::default()
        }
    }

    /// How many indices there are (dropped paths included).
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

    /// Whether the `i`th path is still recorded.
    pub fn is_live(&self, i: usize) -> bool {
        self.dropped.get(i) != Some(&true)
    }

    /// Stops recording the `i`th path (its index stays taken).
    pub fn drop_path(&mut self, i: usize) {
        if self.dropped.len() < self.len() {
            self.dropped.resize(self.len(), false);
        }
        self.dropped[i] = true;
    }

    /// Whether any path was added out of order or dropped.
    pub fn is_ordered(&self) -> bool {
        self.sorted == self.len() && !self.dropped.contains(&true)
    }

    /// Where `path` is, if recorded.
    pub fn find(&self, path: &Path) -> Option<usize> {
        let key = path.as_os_str().as_encoded_bytes();
        let (mut lo, mut hi) = (0, self.sorted);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.bytes(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    lo = mid;
                    break;
                }
            }
        }
        if lo < self.sorted && self.bytes(lo) == key && self.is_live(lo) {
            return Some(lo);
        }
        (self.sorted..self.len()).find(|&i| self.bytes(i) == key && self.is_live(i))
    }

    /// Adds a path (the caller's promise: one not recorded yet); its index.
    pub fn push(&mut self, path: &[u8], state: Option<Recorded>) -> usize {
        let i = self.len();
        if self.sorted == i && (i == 0 || self.bytes(i - 1) < path) {
            self.sorted += 1;
        }
        self.append(path, state);
        i
    }

    /// Appends a path read from a record's file: the first `shared` bytes of
    /// the last path, then `rest`; `None` if it has not that many. The file is
    /// trusted to be in order (one that is not makes lookups miss, and so only
    /// costs a full build).
    pub fn push_shared(
        &mut self,
        shared: usize,
        rest: &[u8],
        state: Option<Recorded>,
    ) -> Option<()> {
        let n = self.len();
        let start = if n < 2 { 0 } else { self.ends[n - 2] };
        if shared > self.paths.len() - start {
            return None;
        }
        if self.sorted == n {
            self.sorted += 1;
        }
        self.paths.extend_from_within(start..start + shared);
        self.paths.extend_from_slice(rest);
        self.ends.push(self.paths.len());
        self.states.push(state);
        Some(())
    }

    fn append(&mut self, path: &[u8], state: Option<Recorded>) {
        self.paths.extend_from_slice(path);
        self.ends.push(self.paths.len());
        self.states.push(state);
    }

    /// The indices of the recorded paths, in the order of their bytes.
    pub fn ordered(&self) -> Vec<usize> {
        let live = (0..self.sorted).filter(|&i| self.is_live(i));
        if self.sorted == self.len() {
            return live.collect();
        }
        let mut added: Vec<usize> = (self.sorted..self.len())
            .filter(|&i| self.is_live(i))
            .collect();
        added.sort_by(|&a, &b| self.bytes(a).cmp(self.bytes(b)));
        let mut out = Vec::with_capacity(self.len());
        let mut added = added.into_iter().peekable();
        for i in live {
            while let Some(a) = added.next_if(|&a| self.bytes(a) < self.bytes(i)) {
                out.push(a);
            }
            out.push(i);
        }
        out.extend(added);
        out
    }

    /// Every recorded path with its state, in the order of their bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Option<Recorded>)> {
        self.ordered()
            .into_iter()
            .map(|i| (self.path(i), &self.states[i]))
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
        assert!(files.is_ordered());
        let read: Vec<&Path> = files.iter().map(|(p, _)| p).collect();
        assert_eq!(read, paths);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(files.find(p), Some(i));
        }
        assert_eq!(files.find(Path::new("/a/a")), None);
        assert_eq!(files.find(Path::new("/zz")), None);
        assert_eq!(files.find(Path::new("/")), None);
        let mut read = Files::default();
        read.push_shared(0, b"/a", None).unwrap();
        read.push_shared(2, b"/b", None).unwrap();
        read.push_shared(4, b"c", None).unwrap();
        read.push_shared(0, b"/z", None).unwrap();
        assert_eq!(read, files, "as a record's file stores them");
        assert!(read.push_shared(3, b"x", None).is_none(), "/z has 2 bytes");
    }

    #[test]
    fn added_and_dropped_paths_keep_every_index_and_sort_on_the_way_out() {
        let mut files: Files = ["/b", "/d", "/f"].iter().map(|p| (p, None)).collect();
        let c = files.push(b"/c", None);
        let a = files.push(b"/a", None);
        assert_eq!((c, a), (3, 4), "added at the end");
        files.drop_path(1);
        assert!(!files.is_ordered());
        assert_eq!(files.find(Path::new("/d")), None, "dropped");
        assert_eq!(files.find(Path::new("/a")), Some(4));
        assert_eq!(files.find(Path::new("/f")), Some(2));
        let d = files.push(b"/d", None);
        assert_eq!(files.find(Path::new("/d")), Some(d), "added again");
        assert_eq!(files.ordered(), vec![4, 0, 3, d, 2]);
        let read: Vec<&Path> = files.iter().map(|(p, _)| p).collect();
        assert_eq!(read, ["/a", "/b", "/c", "/d", "/f"].map(Path::new));
    }
}
