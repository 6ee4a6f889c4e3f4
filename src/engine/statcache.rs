//! The stat cache: `(path, size, mtime_ns, ctime_ns, inode) → blake3`, so that a
//! no-op build hashes no file content.
//!
//! An entry is trusted only when every stat field still matches **and** the file
//! was not modified within [`RACY_WINDOW_NS`] of the moment it was hashed: a file
//! written in the same timestamp tick as (or after) the hash could change again
//! without changing its stat, so such "racy" entries are hashed again (git's
//! racy-clean rule). Blobs the engine writes itself get an mtime of 1 s after the
//! epoch (see [`pin_mtime`]), so they are never racy and any later write shows;
//! for them ctime is not compared (see [`Stat::matches`]).
//!
//! The cache is loaded once per build (under the `target/` lock), shared by the
//! parallel steps, and saved atomically at the end; losing it only costs hashing.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How close to the hash time a modification makes an entry racy. Covers coarse
/// (jiffy-based) timestamp clocks; on filesystems whose mtimes are whole
/// seconds, [`is_racy`] widens it to two seconds.
pub const RACY_WINDOW_NS: i64 = 20_000_000;

/// The mtime given to files the engine wrote itself (1 s after the epoch).
pub const PINNED_MTIME_SECS: i64 = 1;

/// The stat fields that must match for an entry to be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub mode: u32,
}

impl Stat {
    /// Whether a recorded stat still describes the file. For files the engine
    /// wrote itself (mtime pinned to [`PINNED_MTIME_SECS`]) ctime is not
    /// compared: hard-linking a blob into `target/` changes the shared inode's
    /// ctime, while any write to its content moves mtime away from the pin.
    pub fn matches(&self, now: &Stat) -> bool {
        let pinned = self.mtime_ns == PINNED_MTIME_SECS * 1_000_000_000;
        self.size == now.size
            && self.mtime_ns == now.mtime_ns
            && self.inode == now.inode
            && self.mode == now.mode
            && (pinned || self.ctime_ns == now.ctime_ns)
    }

    pub fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            mode: meta.mode(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    stat: Stat,
    hashed_at_ns: i64,
    digest: String,
}

/// A file's content digest and the stat it was taken under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub digest: String,
    pub stat: Stat,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct StatCache {
    path: PathBuf,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// Shards with changed entries (see [`super::shards`]).
    dirty: Mutex<std::collections::HashSet<usize>>,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
}

const VERSION: u32 = 2;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether a file with this mtime, hashed at `hashed_at_ns`, may have changed
/// again since without its stat changing.
pub fn is_racy(mtime_ns: i64, hashed_at_ns: i64) -> bool {
    let window = if mtime_ns % 1_000_000_000 == 0 {
        2_000_000_000
    } else {
        RACY_WINDOW_NS
    };
    mtime_ns.saturating_add(window) >= hashed_at_ns
}

/// blake3 of a file's content, streamed.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Sets a file's mtime to [`PINNED_MTIME_SECS`], marking it as written by us.
pub fn pin_mtime(path: &Path) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(PINNED_MTIME_SECS, 0);
    filetime::set_symlink_file_times(path, t, t)
}

impl StatCache {
    /// Loads the cache kept (in shards) in the folder `path`; a missing or
    /// unreadable cache starts empty.
    pub fn load(path: &Path) -> StatCache {
        let entries = super::shards::load(path, VERSION);
        StatCache {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            ..StatCache::default()
        }
    }

    /// The digest of `path`, from the cache when its stat still matches.
    pub fn digest(&self, path: &Path) -> io::Result<FileDigest> {
        let meta = fs::metadata(path)?;
        let stat = Stat::of(&meta);
        if let Some(entry) = self.lock().get(path) {
            if entry.stat.matches(&stat) && !is_racy(stat.mtime_ns, entry.hashed_at_ns) {
                return Ok(FileDigest {
                    digest: entry.digest.clone(),
                    stat,
                });
            }
        }
        let hashed_at_ns = now_ns();
        let (digest, bytes) = hash_file(path)?;
        self.hashed_files.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(bytes, Ordering::Relaxed);
        // The file may have changed while we read it; only cache a stable read.
        let after = Stat::of(&fs::metadata(path)?);
        if after == stat {
            self.record(path, stat, hashed_at_ns, &digest);
        }
        Ok(FileDigest { digest, stat })
    }

    /// Records a digest the caller computed itself while writing `path`.
    pub fn record_written(&self, path: &Path, digest: &str) -> io::Result<()> {
        let stat = Stat::of(&fs::metadata(path)?);
        self.record(path, stat, now_ns(), digest);
        Ok(())
    }

    fn record(&self, path: &Path, stat: Stat, hashed_at_ns: i64, digest: &str) {
        self.lock().insert(
            path.to_path_buf(),
            Entry {
                stat,
                hashed_at_ns,
                digest: digest.to_string(),
            },
        );
        self.mark(path);
    }

    fn mark(&self, path: &Path) {
        let shard = super::shards::shard_of(path.as_os_str().as_encoded_bytes());
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard);
    }

    /// Forgets entries under `prefix` (after `clean -p`).
    pub fn forget_under(&self, prefix: &Path) {
        let mut entries = self.lock();
        let gone: Vec<PathBuf> = entries
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect();
        for p in gone {
            entries.remove(&p);
            self.mark(&p);
        }
    }

    /// How many files were hashed (not served from the cache) so far.
    pub fn hashed_files(&self) -> u64 {
        self.hashed_files.load(Ordering::Relaxed)
    }

    /// How many bytes were hashed so far.
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes.load(Ordering::Relaxed)
    }

    /// Saves the shards that changed, each atomically.
    pub fn save(&self) -> io::Result<()> {
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
        super::shards::save(&self.path, VERSION, &self.lock(), &dirty, |p| {
            p.as_os_str().as_encoded_bytes()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs_ago: i64) {
        let t = filetime::FileTime::from_unix_time(now_ns() / 1_000_000_000 - secs_ago, 123);
        filetime::set_file_mtime(path, t).unwrap();
    }

    #[test]
    fn unchanged_file_is_not_hashed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"hello").unwrap();
        age(&f, 10);
        let cache = StatCache::load(&dir.path().join("cache"));
        let a = cache.digest(&f).unwrap();
        assert_eq!(cache.hashed_files(), 1);
        let b = cache.digest(&f).unwrap();
        assert_eq!(cache.hashed_files(), 1);
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.digest, blake3::hash(b"hello").to_hex().to_string());
    }

    #[test]
    fn racy_entry_is_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"hello").unwrap();
        let cache = StatCache::load(&dir.path().join("cache"));
        cache.digest(&f).unwrap();
        cache.digest(&f).unwrap();
        assert_eq!(cache.hashed_files(), 2, "a just-written file is racy");
    }

    #[test]
    fn same_size_change_with_restored_mtime_but_new_ctime_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"hello").unwrap();
        age(&f, 10);
        let cache = StatCache::load(&dir.path().join("cache"));
        let a = cache.digest(&f).unwrap();
        let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&f).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(5));
        fs::write(&f, b"jello").unwrap();
        filetime::set_file_mtime(&f, mtime).unwrap();
        let b = cache.digest(&f).unwrap();
        assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn survives_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"x").unwrap();
        age(&f, 10);
        let path = dir.path().join("cache");
        let cache = StatCache::load(&path);
        cache.digest(&f).unwrap();
        cache.save().unwrap();
        let again = StatCache::load(&path);
        again.digest(&f).unwrap();
        assert_eq!(again.hashed_files(), 0);
    }
}
