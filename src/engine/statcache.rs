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
//! On disk it is 256 shards (`stat-cache/XX.bin`) in a compact binary form that
//! ends with the blake3 of its content: a shard that does not check out is
//! ignored, so a damaged cache can cost hashing but never give a wrong digest.

use super::wire::{put_bytes, put_stat, put_u64, seal, unseal, Reader};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
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
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    /// One map per shard (see [`super::shards`]), each read on first use: a
    /// build that looks up a few paths reads a few shards.
    shards: Vec<OnceLock<Mutex<HashMap<PathBuf, Entry>>>>,
    /// Shards with changed entries.
    dirty: Mutex<std::collections::HashSet<usize>>,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    /// `<store>/blobs/` (the sibling of the cache folder), as bytes with a
    /// trailing `/`: see [`StatCache::digest`].
    blobs_prefix: Vec<u8>,
    /// Blobs already verified by this build.
    verified_blobs: Mutex<HashMap<PathBuf, FileDigest>>,
}

/// The first bytes of a stat cache shard (the format version is its last byte).
const MAGIC: &[u8; 8] = b"sconeSC4";
const SHARD_EXT: &str = "bin";

/// One shard: magic, count, entries, then the blake3 of everything before.
fn encode_shard(entries: &[(&PathBuf, &Entry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 200);
    out.extend_from_slice(MAGIC);
    put_u64(&mut out, entries.len() as u64);
    for (path, e) in entries {
        put_bytes(&mut out, path.as_os_str().as_encoded_bytes());
        put_stat(&mut out, &e.stat);
        put_u64(&mut out, e.hashed_at_ns as u64);
        put_bytes(&mut out, e.digest.as_bytes());
    }
    seal(&mut out);
    out
}

fn decode_shard(bytes: &[u8]) -> Option<Vec<(PathBuf, Entry)>> {
    let mut reader = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
    let n = usize::try_from(reader.u64()?).ok()?;
    let mut entries = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(reader.bytes()?));
        let stat = reader.stat()?;
        let hashed_at_ns = reader.u64()? as i64;
        let digest = std::str::from_utf8(reader.bytes()?).ok()?.to_string();
        entries.push((
            path,
            Entry {
                stat,
                hashed_at_ns,
                digest,
            },
        ));
    }
    reader.is_empty().then_some(entries)
}

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut blobs_prefix = path
            .parent()
            .map(|store| store.join("blobs").into_os_string().into_encoded_bytes())
            .unwrap_or_default();
        blobs_prefix.push(b'/');
        StatCache {
            path: path.to_path_buf(),
            shards: (0..super::shards::SHARDS)
                .map(|_| OnceLock::new())
                .collect(),
            dirty: Mutex::default(),
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            blobs_prefix,
            verified_blobs: Mutex::default(),
        }
    }

    /// The digest of `path`, from the cache when its stat still matches.
    ///
    /// A blob of the store (`<store>/blobs/…`, written only by the engine, its
    /// mtime pinned) is stat'ed once per build: the base image layers every
    /// service shares are checked by every service's steps, 2000 stats each in
    /// a 1000-service repo. A blob the build stores again is verified afresh.
    pub fn digest(&self, path: &Path) -> io::Result<FileDigest> {
        let blob = path
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(&self.blobs_prefix);
        if blob {
            if let Some(d) = lock(&self.verified_blobs).get(path) {
                return Ok(d.clone());
            }
        }
        let d = self.digest_as(path, &fs::metadata(path)?)?;
        if blob && d.stat.mtime_ns == PINNED_MTIME_SECS * 1_000_000_000 {
            lock(&self.verified_blobs).insert(path.to_path_buf(), d.clone());
        }
        Ok(d)
    }

    /// [`StatCache::digest`] with the file's metadata already at hand (from a
    /// `stat` the caller just made, which saves making it twice).
    pub fn digest_as(&self, path: &Path, meta: &fs::Metadata) -> io::Result<FileDigest> {
        let stat = Stat::of(meta);
        if let Some(entry) = self.shard_of(path).get(path) {
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
        lock(&self.verified_blobs).remove(path);
        self.shard_of(path).insert(
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
        for i in 0..self.shards.len() {
            let mut entries = self.shard(i);
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
    }

    /// How many entries the cache holds (reads every shard).
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shard(i).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many files were hashed (not served from the cache) so far.
    pub fn hashed_files(&self) -> u64 {
        self.hashed_files.load(Ordering::Relaxed)
    }

    /// How many bytes were hashed so far.
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes.load(Ordering::Relaxed)
    }

    /// Saves the shards that changed, each atomically (without an fsync:
    /// they are checksummed, see [`crate::durable::write_checked`]).
    pub fn save(&self) -> io::Result<()> {
        use rayon::prelude::*;
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
        dirty.into_par_iter().try_for_each(|i| {
            let shard = self.shard(i);
            let mut entries: Vec<(&PathBuf, &Entry)> = shard.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            crate::durable::write_checked(
                &super::shards::shard_path(&self.path, i, SHARD_EXT),
                &encode_shard(&entries),
            )
        })
    }

    /// Shard `i`, read from disk on first use.
    fn shard(&self, i: usize) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        lock(self.shards[i].get_or_init(|| {
            let path = super::shards::shard_path(&self.path, i, SHARD_EXT);
            let entries = std::fs::read(path)
                .ok()
                .and_then(|b| decode_shard(&b))
                .unwrap_or_default();
            Mutex::new(entries.into_iter().collect())
        }))
    }

    fn shard_of(&self, path: &Path) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.shard(super::shards::shard_of(path.as_os_str().as_encoded_bytes()))
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

    #[test]
    fn damaged_or_foreign_shards_are_ignored_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        fs::write(&f, b"x").unwrap();
        age(&f, 10);
        let path = dir.path().join("cache");
        let cache = StatCache::load(&path);
        let good = cache.digest(&f).unwrap();
        cache.save().unwrap();
        let shard = super::super::shards::shard_path(
            &path,
            super::super::shards::shard_of(f.as_os_str().as_encoded_bytes()),
            SHARD_EXT,
        );
        let bytes = fs::read(&shard).unwrap();
        // Flip one character of the stored digest: the checksum must reject it.
        let at = bytes
            .windows(good.digest.len())
            .position(|w| w == good.digest.as_bytes())
            .unwrap();
        let mut bad = bytes.clone();
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        fs::write(&shard, &bad).unwrap();
        let again = StatCache::load(&path);
        assert_eq!(again.digest(&f).unwrap().digest, good.digest);
        assert_eq!(again.hashed_files(), 1, "the damaged shard was not used");
        // Truncated and foreign files are no cache either.
        fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(StatCache::load(&path).len(), 0);
        fs::write(&shard, b"{\"version\":2,\"entries\":[]}").unwrap();
        assert_eq!(StatCache::load(&path).len(), 0);
        // The intact shard is read back whole.
        fs::write(&shard, &bytes).unwrap();
        let whole = StatCache::load(&path);
        whole.digest(&f).unwrap();
        assert_eq!(whole.hashed_files(), 0);
    }

    #[test]
    fn a_blob_is_stat_ed_once_per_build_and_again_when_stored_anew() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".scone");
        let blob = store.join("blobs/ab/blob");
        let source = dir.path().join("source");
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        for f in [&blob, &source] {
            fs::write(f, b"one").unwrap();
            pin_mtime(f).unwrap();
        }
        let cache = StatCache::load(&store.join("stat-cache"));
        let first = cache.digest(&blob).unwrap();
        let src_first = cache.digest(&source).unwrap();
        // Replace both behind the cache's back (same pinned mtime, new size).
        for f in [&blob, &source] {
            fs::remove_file(f).unwrap();
            fs::write(f, b"two!").unwrap();
            pin_mtime(f).unwrap();
        }
        assert_eq!(
            cache.digest(&blob).unwrap(),
            first,
            "verified once per build"
        );
        assert_ne!(
            cache.digest(&source).unwrap().digest,
            src_first.digest,
            "files outside the blobs are stat'ed every time"
        );
        // The build storing the blob again refreshes it.
        cache.record_written(&blob, "new").unwrap();
        assert_eq!(cache.digest(&blob).unwrap().digest, "new");
        // The next build (a new cache) stats it again and sees the new content.
        cache.save().unwrap();
        let next = StatCache::load(&store.join("stat-cache"));
        fs::remove_file(&blob).unwrap();
        fs::write(&blob, b"three").unwrap();
        pin_mtime(&blob).unwrap();
        assert_eq!(
            next.digest(&blob).unwrap().digest,
            blake3::hash(b"three").to_hex().to_string()
        );
    }
}
