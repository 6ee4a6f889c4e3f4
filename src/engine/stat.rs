//! What the build state remembers of a path: its `lstat` ([`Stat`]), whether a
//! later write could hide behind it ([`Stat::is_racy`]), and the digests that
//! stand for what a reader depended on — a file's content, a folder's listing,
//! a path's kind.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// How close to the moment a stat was taken a change makes it untrustworthy:
/// a write in the same timestamp tick leaves the stat as it was (git's "racy
/// clean" rule). Covers jiffy-based clocks; whole-second filesystems get two
/// seconds (see [`Stat::is_racy`]).
pub const RACY_WINDOW_NS: i64 = 20_000_000;

/// How long before a load started its paths' stats count as taken: the
/// kernel stamps ctime from a clock that runs up to a tick (4 ms at 250 Hz)
/// behind, so a file replaced just after the load started can carry a ctime
/// just before it. A path changed after this is racy ([`Stat::is_racy`]).
pub const LOAD_TICK_NS: i64 = 5_000_000;

/// The mtime scone gives the files it writes into its store (1 s after the
/// epoch): any later write to their content moves it away.
pub const PINNED_MTIME_SECS: i64 = 1;

const PINNED_MTIME_NS: i64 = PINNED_MTIME_SECS * 1_000_000_000;

/// The fields of an `lstat` that must all match for a path to count as
/// untouched. ctime is one of them: a byte flipped in place with its mtime
/// restored (`touch -d`) still moves ctime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub mode: u32,
}

impl Stat {
    pub fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            mode: meta.mode(),
        }
    }

    /// The `lstat` of `path`; `None` if it does not exist (or cannot be read).
    pub fn of_path(path: &Path) -> Option<Stat> {
        fs::symlink_metadata(path).ok().map(|m| Stat::of(&m))
    }

    /// Whether a stat taken at `taken_ns` could miss a change: the path was
    /// written (its mtime) within the racy window of it, so another write in
    /// the same timestamp tick would leave the stat as it is; or it changed
    /// after the clock was read (its ctime: a file replaced by one that keeps
    /// an old mtime, as `rsync -a`, `cp -p` and `tar x` make, after a load
    /// read it and before it was stat'ed: see [`LOAD_TICK_NS`]). Any later
    /// write moves mtime to its own time; a restored mtime (`touch -d`)
    /// moves ctime, which [`PartialEq`] compares. A file dated after the
    /// window (an archive made on a machine whose clock is ahead, `touch -d
    /// tomorrow`) is racy only while its ctime is in the window: a write
    /// moves ctime, and nothing sets it back. (Held to its mtime, such a
    /// file would be racy until the clock caught up: hashed at every build,
    /// its workspace never a no-op.) A file scone pinned (mtime 1 s) is
    /// never racy.
    pub fn is_racy(&self, taken_ns: i64) -> bool {
        if self.is_pinned() {
            return false;
        }
        let window = |ns: i64| {
            if ns % 1_000_000_000 == 0 {
                2_000_000_000
            } else {
                RACY_WINDOW_NS
            }
        };
        let dated_ahead = self.mtime_ns > taken_ns.saturating_add(window(self.mtime_ns));
        let changed = if dated_ahead {
            self.ctime_ns
        } else {
            self.mtime_ns
        };
        changed.saturating_add(window(changed)) >= taken_ns || self.ctime_ns > taken_ns
    }

    /// Whether its mtime is the one scone pins ([`pin_mtime`]).
    pub fn is_pinned(&self) -> bool {
        self.mtime_ns == PINNED_MTIME_NS
    }

    /// The file type bits (`S_IFMT`).
    pub fn file_type(&self) -> u32 {
        self.mode & 0o170000
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == 0o040000
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type() == 0o120000
    }
}

/// The `lstat` of every path (in the order given; `None` where one does not
/// exist), in parallel. A path under the current folder is stat'ed relative to
/// it: the kernel then walks only the components below it, which is most of
/// what a stat costs.
pub fn stat_all(paths: &[&Path]) -> Vec<Option<Stat>> {
    use rayon::prelude::*;
    let cwd = std::env::current_dir().ok();
    let cwd = cwd.as_ref().map(|c| c.as_os_str().as_encoded_bytes());
    paths
        .par_iter()
        .with_min_len(256)
        .map(|path| lstat_from(cwd, path))
        .collect()
}

/// The `lstat` of `path`, given relative to `cwd` (the current folder's
/// bytes) where it is under it: the kernel then walks fewer components.
/// (Compared as bytes: `Path::strip_prefix` goes component by component,
/// and cost more than the walk it saved.)
pub fn lstat_from(cwd: Option<&[u8]>, path: &Path) -> Option<Stat> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let relative = cwd
        .and_then(|cwd| bytes.strip_prefix(cwd))
        .and_then(|rest| rest.strip_prefix(b"/"))
        .filter(|rest| !rest.is_empty());
    match relative {
        Some(rest) => Stat::of_path(Path::new(OsStr::from_bytes(rest))),
        None => Stat::of_path(path),
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Opens `path` to read it, only if it is a regular file: non-blocking, so a
/// path swapped for a FIFO or a device since it was looked at is refused,
/// never read (docs/security.md).
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Bytes read at a time when a file is hashed: a larger file is read in
/// pieces of this size, a smaller one at once into a buffer of its size (a
/// buffer of this size zeroed for each of 20,000 small files of a copied
/// folder was a tenth of the build's time).
const HASH_PIECE: u64 = 256 * 1024;

/// blake3 of a file's content, streamed; with the number of bytes read.
pub fn hash_file(path: &Path) -> io::Result<(blake3::Hash, u64)> {
    let mut file = open_regular(path)?;
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    // One more than the file: a file that did not grow is read whole, then
    // its end, in two reads.
    let mut buf = vec![0u8; (len.min(HASH_PIECE) + 1) as usize];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize(), total))
}

/// What a path holds, as a digest: a file's bytes, a link's target, a
/// folder's listing ([`listing_digest`]); `None` if it is gone.
pub fn content_digest(path: &Path, stat: &Stat) -> Option<[u8; 32]> {
    if stat.is_dir() {
        listing_digest(path, |_| false)
    } else if stat.is_symlink() {
        let target = fs::read_link(path).ok()?;
        Some(*blake3::hash(target.as_os_str().as_encoded_bytes()).as_bytes())
    } else {
        hash_file(path).ok().map(|(h, _)| *h.as_bytes())
    }
}

/// The digest of a folder's listing: its own permission bits (a `dir:`
/// base's layer keeps them), then its entries' names and kinds, sorted, but
/// for the names `skip` takes (scone's own files in the root, which a build
/// writes after it listed the folder).
pub fn listing_digest(dir: &Path, skip: impl Fn(&std::ffi::OsStr) -> bool) -> Option<[u8; 32]> {
    let mode = fs::symlink_metadata(dir).ok()?.mode() & 0o7777;
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        if skip(&name) {
            continue;
        }
        let kind = match entry.file_type().ok()? {
            t if t.is_dir() => b'd',
            t if t.is_symlink() => b'l',
            t if t.is_file() => b'f',
            _ => b'o',
        };
        entries.push((name, kind));
    }
    entries.sort();
    let mut h = blake3::Hasher::new();
    h.update(&mode.to_le_bytes());
    for (name, kind) in entries {
        h.update(name.as_encoded_bytes());
        h.update(&[0, kind]);
    }
    Some(*h.finalize().as_bytes())
}

/// Sets a file's mtime to [`PINNED_MTIME_SECS`], marking it as written by
/// scone's store.
pub fn pin_mtime(path: &Path) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(PINNED_MTIME_SECS, 0);
    filetime::set_symlink_file_times(path, t, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stat(mtime_ns: i64, ctime_ns: i64) -> Stat {
        Stat {
            size: 1,
            mtime_ns,
            ctime_ns,
            inode: 1,
            mode: 0o100644,
        }
    }

    #[test]
    fn a_change_within_the_window_before_the_stat_is_racy() {
        let taken = 100_000_000_000 + 5;
        assert!(stat(taken - 1_000, taken - 10_000_000_000).is_racy(taken));
        assert!(
            !stat(taken - 10_000_000_000, taken - 1_000).is_racy(taken),
            "a restored mtime shows in ctime, which is compared"
        );
        assert!(!stat(taken - 1_000_000_000, taken - 1_000_000_000).is_racy(taken));
        assert!(
            stat(taken - 1_000_000_005, taken - 1_000_000_005).is_racy(taken),
            "whole seconds: two seconds"
        );
        assert!(
            stat(taken + 1_000, taken + 1_000).is_racy(taken),
            "written after the clock was read for the stat"
        );
        assert!(
            stat(taken - 3_600_000_000_000, taken + 1_000).is_racy(taken),
            "replaced by a file of an old mtime after the clock was read (rsync -a during a load)"
        );
        assert!(
            !stat(PINNED_MTIME_NS, taken).is_racy(taken),
            "scone's own files are never racy"
        );
    }

    #[test]
    fn a_file_dated_ahead_is_racy_only_while_its_ctime_is_recent() {
        let taken = 100_000_000_000 + 5;
        let hour = 3_600_000_000_000;
        assert!(!stat(taken + hour, taken - 10_000_000_000).is_racy(taken));
        assert!(stat(taken + hour, taken - 1_000).is_racy(taken));
        assert!(
            stat(taken + hour, taken + 1_000).is_racy(taken),
            "dated ahead after the clock was read for the stat"
        );
        assert!(
            !stat(taken + hour + 5, taken - 3_000_000_000).is_racy(taken),
            "changed long before"
        );
    }

    #[test]
    fn stat_all_is_lstat_of_each_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/a"), "a").unwrap();
        std::os::unix::fs::symlink("a", d.join("sub/link")).unwrap();
        let paths: Vec<std::path::PathBuf> = ["sub", "sub/a", "sub/gone", "sub/link", "x/y"]
            .iter()
            .map(|p| d.join(p))
            .collect();
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let got = stat_all(&refs);
        let want: Vec<Option<Stat>> = paths.iter().map(|p| Stat::of_path(p)).collect();
        assert_eq!(got, want);
        assert!(got[3].is_some_and(|s| s.is_symlink()), "not followed");
        assert_eq!(got[2], None);
    }

    #[test]
    fn listings_see_names_and_kinds_but_not_skipped_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a"), "1").unwrap();
        let before = listing_digest(d, |_| false).unwrap();
        fs::write(d.join("a"), "changed content").unwrap();
        assert_eq!(listing_digest(d, |_| false).unwrap(), before);
        fs::write(d.join("own"), "x").unwrap();
        assert_ne!(listing_digest(d, |_| false).unwrap(), before);
        assert_eq!(listing_digest(d, |n| n == "own").unwrap(), before);
        fs::remove_file(d.join("a")).unwrap();
        fs::create_dir(d.join("a")).unwrap();
        assert_ne!(
            listing_digest(d, |n| n == "own").unwrap(),
            before,
            "a file that became a folder"
        );
        // The digest is of the folder's permission bits, then the sorted
        // names, each with its kind.
        std::os::unix::fs::symlink("a", d.join("link")).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o1777)).unwrap();
        let mut want = 0o1777u32.to_le_bytes().to_vec();
        want.extend_from_slice(b"a\0dlink\0lown\0f");
        let sticky = listing_digest(d, |_| false).unwrap();
        assert_eq!(sticky, *blake3::hash(&want).as_bytes());
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(
            listing_digest(d, |_| false).unwrap(),
            sticky,
            "a folder whose mode changed"
        );
    }
}
