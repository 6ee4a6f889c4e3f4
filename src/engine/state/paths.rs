//! The path table while a build runs: the stat cache. A path whose `lstat`
//! matches its entry (and was not racy) has the entry's digest without being
//! read; anything else is hashed and entered anew. What this build learns
//! becomes the next state's path table ([`super::NextState`]).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::super::stat::{hash_file, listing_digest, now_ns, Stat, PINNED_MTIME_SECS};
use super::{BuildState, Digest, PathEntry};

/// A file's content digest (hex) and the stat it was taken under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub digest: String,
    pub stat: Stat,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PathTable {
    previous: Arc<BuildState>,
    /// Entries made by this build.
    fresh: Mutex<HashMap<PathBuf, PathEntry>>,
    /// Store blobs already verified by this build (the base layers every
    /// image of a thousand services shares are asked for by each of them).
    verified: Mutex<HashMap<PathBuf, FileDigest>>,
    blobs_prefix: Vec<u8>,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    /// Inodes whose link count this build changed (publishing links blobs
    /// into `target/` and unlinks what it replaces): their ctime moved,
    /// under every path that shares them (see [`super::NextState`]).
    churned: Mutex<HashSet<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PathTable {
    /// The table of `previous`, for a build whose store is `store_root`.
    pub fn new(previous: Arc<BuildState>, store_root: &Path) -> PathTable {
        let mut blobs_prefix = store_root
            .join("blobs")
            .into_os_string()
            .into_encoded_bytes();
        blobs_prefix.push(b'/');
        PathTable {
            previous,
            fresh: Mutex::default(),
            verified: Mutex::default(),
            blobs_prefix,
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            churned: Mutex::default(),
        }
    }

    /// Notes that the build is about to change the link count of the file
    /// at `path` (link it, or unlink it).
    pub fn churn(&self, path: &Path) {
        if let Ok(meta) = fs::symlink_metadata(path) {
            if meta.is_file() {
                lock(&self.churned).insert(std::os::unix::fs::MetadataExt::ino(&meta));
            }
        }
    }

    /// [`PathTable::churn`] for every file under `dir` (about to be removed).
    pub fn churn_tree(&self, dir: &Path) {
        for entry in walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .flatten()
        {
            if entry.file_type().is_file() {
                self.churn(entry.path());
            }
        }
    }

    /// What the table knows of `path`: this build's entry, else the last
    /// state's.
    pub fn entry(&self, path: &Path) -> Option<PathEntry> {
        if let Some(e) = lock(&self.fresh).get(path) {
            return Some(e.clone());
        }
        self.previous.path(path).cloned()
    }

    fn known(&self, path: &Path, stat: &Stat) -> Option<Digest> {
        if let Some(e) = lock(&self.fresh).get(path) {
            return e.digest_if(Some(stat));
        }
        self.previous.path(path)?.digest_if(Some(stat))
    }

    fn enter(&self, path: &Path, stat: Stat, digest: Digest, taken_ns: i64) {
        lock(&self.verified).remove(path);
        lock(&self.fresh).insert(
            path.to_path_buf(),
            PathEntry {
                path: path.to_path_buf(),
                stat: Some(stat),
                digest: Some(digest),
                taken_ns,
            },
        );
    }

    /// The content digest of `path` (symlinks followed), from the table when
    /// its stat still matches. A store blob is stat'ed once per build.
    pub fn digest(&self, path: &Path) -> io::Result<FileDigest> {
        let blob = path
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(&self.blobs_prefix);
        if blob {
            if let Some(d) = lock(&self.verified).get(path) {
                return Ok(d.clone());
            }
        }
        let d = self.digest_as(path, &fs::metadata(path)?)?;
        if blob && d.stat.mtime_ns == PINNED_MTIME_SECS * 1_000_000_000 {
            lock(&self.verified).insert(path.to_path_buf(), d.clone());
        }
        Ok(d)
    }

    /// [`PathTable::digest`] with the metadata the caller just read.
    pub fn digest_as(&self, path: &Path, meta: &fs::Metadata) -> io::Result<FileDigest> {
        let stat = Stat::of(meta);
        if let Some(d) = self.known(path, &stat) {
            return Ok(FileDigest {
                digest: hex::encode(d),
                stat,
            });
        }
        let taken_ns = now_ns();
        let (digest, bytes) = hash_file(path)?;
        self.hashed_files.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(bytes, Ordering::Relaxed);
        // Changed while it was read: not entered (the next build hashes it
        // again), and the caller's stat no longer matches the file.
        if Stat::of(&fs::metadata(path)?) == stat {
            self.enter(path, stat, *digest.as_bytes(), taken_ns);
        }
        Ok(FileDigest {
            digest: digest.to_hex().to_string(),
            stat,
        })
    }

    /// Enters the symlink at `path` as the check looks at it: its `lstat`
    /// (`stat`, taken before its target was read) and the digest of its
    /// target (what [`content_digest`](super::super::stat::content_digest)
    /// gives a link), unless it moved since (then the next build reads it
    /// again). Without an entry, every step that consults a link — a `dir:`
    /// base's rootfs has them — was dirty at every build, and no
    /// build of it was a no-op.
    pub fn record_link(&self, path: &Path, stat: Stat, target_digest: Digest) {
        let taken_ns = now_ns();
        if Stat::of_path(path) == Some(stat) {
            self.enter(path, stat, target_digest, taken_ns);
        }
    }

    /// The digest of a folder's listing (names and kinds), with the stat
    /// taken before it was listed.
    pub fn listing(&self, path: &Path) -> io::Result<(Stat, Digest)> {
        let taken_ns = now_ns();
        let stat = Stat::of(&fs::symlink_metadata(path)?);
        let digest = listing_digest(path, |_| false)
            .ok_or_else(|| io::Error::other(format!("cannot list {}", path.display())))?;
        self.enter(path, stat, digest, taken_ns);
        Ok((stat, digest))
    }

    /// Enters a path's digest the caller knows (it wrote the file, or linked
    /// it to a blob it verified), under the stat it has now.
    pub fn record_written(&self, path: &Path, digest: &str) -> io::Result<()> {
        let stat = Stat::of(&fs::metadata(path)?);
        let mut raw = [0u8; 32];
        hex::decode_to_slice(digest, &mut raw).map_err(io::Error::other)?;
        self.enter(path, stat, raw, now_ns());
        Ok(())
    }

    /// Files hashed by this build (not served by the table).
    pub fn hashed_files(&self) -> u64 {
        self.hashed_files.load(Ordering::Relaxed)
    }

    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes.load(Ordering::Relaxed)
    }

    /// This build's entries, the last state they complete, and the inodes
    /// it churned.
    pub(super) fn into_parts(self) -> (Arc<BuildState>, HashMap<PathBuf, PathEntry>, HashSet<u64>) {
        let fresh = self
            .fresh
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let churned = self
            .churned
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        (self.previous, fresh, churned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs_ago: i64) {
        let t = filetime::FileTime::from_unix_time(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
                - secs_ago,
            0,
        );
        filetime::set_file_times(path, t, t).unwrap();
    }

    #[test]
    fn an_unchanged_file_is_hashed_once_and_an_edited_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "one").unwrap();
        age(&file, 10);
        let table = PathTable::new(Arc::default(), &dir.path().join("store"));
        let first = table.digest(&file).unwrap();
        assert_eq!(table.hashed_files(), 1);
        // ctime was just set by `age`: racy, so hashed again once more.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let again = table.digest(&file).unwrap();
        assert_eq!(first, again);
        let hashed = table.hashed_files();
        assert_eq!(table.digest(&file).unwrap(), first);
        assert_eq!(table.hashed_files(), hashed, "served by the table");
        fs::write(&file, "two").unwrap();
        age(&file, 10);
        assert_ne!(table.digest(&file).unwrap().digest, first.digest);
    }

    #[test]
    fn a_flipped_byte_with_the_mtime_restored_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        fs::write(&file, "aaaa").unwrap();
        crate::engine::stat::pin_mtime(&file).unwrap();
        let table = PathTable::new(Arc::default(), &dir.path().join("store"));
        let before = table.digest(&file).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::write(&file, "aaab").unwrap();
        crate::engine::stat::pin_mtime(&file).unwrap();
        let after = table.digest(&file).unwrap();
        assert_eq!(before.stat.size, after.stat.size);
        assert_eq!(before.stat.mtime_ns, after.stat.mtime_ns);
        assert_ne!(before.digest, after.digest, "ctime moved: hashed again");
    }
}
