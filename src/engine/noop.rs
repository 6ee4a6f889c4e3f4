//! The no-op fast path: "did anything change since the last successful build?"
//! answered before a single manifest is parsed.
//!
//! After a successful build the CLI writes `target/.scone/noop.bin`: a key (scone's
//! version, the command line, the working folder and the environment variables
//! that shape a build), the stat of every path the build consulted — manifests and
//! their folders, `scone.toml`, `scone.lock`, every declared input and the folders
//! they were listed from, every published output and every blob — and the step
//! messages to replay. The next build with the same key stats those paths (in
//! parallel); if every stat matches and none is racy (see
//! [`super::statcache::is_racy`]), nothing can have changed and the build is done,
//! as ninja decides from its log. The stats recorded for inputs are the ones the
//! build read them under, not fresh ones: a file edited while the build ran (after
//! it was read) means no record at all, so the next build takes the full path
//! ([`Seen`]). Any difference, a missing or unreadable record,
//! or a different key falls back to the full build, which is always correct; the
//! fast path only ever skips work the full path would find fresh.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::statcache::{is_racy, Stat};
use super::wire::{put_bytes, put_stat, put_u64, Reader};
use crate::durable;

const MAGIC: &[u8; 8] = b"sconeNP1";

/// A step to replay as `fresh`. Its outputs are read from the step index of
/// the target dir when they are printed, so the record stays small.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub kind: String,
    pub unit: String,
    pub fingerprint: String,
}

/// What the fast path needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoopRecord {
    pub key: String,
    pub written_at_ns: i64,
    pub files: Vec<(PathBuf, Option<Stat>)>,
    pub steps: Vec<StepMessage>,
    /// The target dir of the build (where the step index is).
    pub target: PathBuf,
}

fn path_of(target: &Path) -> PathBuf {
    target.join(".scone").join("noop.bin")
}

fn stat_of(path: &Path) -> Option<Stat> {
    fs::symlink_metadata(path).ok().map(|m| Stat::of(&m))
}

/// How the build came to know a path, which decides how it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The build read it under this stat (inputs, folders it listed). If the
    /// path no longer has it, it changed while the build ran: no record.
    Stat(Stat),
    /// The build read it at some point (manifests, `scone.toml`): it must not
    /// have changed since the build started.
    Read,
    /// The build wrote it (outputs, blobs, `scone.lock`): recorded as it is.
    Own,
}

impl NoopRecord {
    /// Stats `paths` now and records them with the steps to replay; `None` if
    /// a path the build read changed while it ran (or just before it started,
    /// within the racy window of `started_ns`), since its stat could then
    /// describe content the build never saw. The next build then takes the
    /// full path, which sees the change, and records again.
    pub fn capture(
        key: String,
        target: PathBuf,
        mut paths: Vec<(PathBuf, Seen)>,
        steps: Vec<StepMessage>,
        started_ns: i64,
    ) -> Option<NoopRecord> {
        use rayon::prelude::*;
        // Byte order: as deterministic as component order, and much cheaper.
        paths.par_sort_unstable_by(|a, b| {
            a.0.as_os_str()
                .as_encoded_bytes()
                .cmp(b.0.as_os_str().as_encoded_bytes())
        });
        paths.dedup_by(|a, b| a.0.as_os_str() == b.0.as_os_str());
        // Content written within the racy window of the start could change
        // again within the same mtime tick without the stat showing it. (A
        // mode change shows in the stat itself.)
        let recent = |s: &Stat| is_racy(s.mtime_ns, started_ns);
        let files: Option<Vec<(PathBuf, Option<Stat>)>> = paths
            .into_par_iter()
            .map(|(p, seen)| {
                let now = stat_of(&p);
                let trusted = match (seen, &now) {
                    (Seen::Stat(then), Some(now)) => then.matches(now) && !recent(&then),
                    (Seen::Stat(_), None) => false,
                    (Seen::Read, Some(now)) => !recent(now),
                    (Seen::Read, None) | (Seen::Own, _) => true,
                };
                trusted.then_some((p, now))
            })
            .collect();
        let mut files = files?;
        // Files modified just now (scone.lock, published folders) would be racy:
        // wait out the window once, stat them again, and date the record after.
        let newest = files
            .iter()
            .filter_map(|(_, s)| s.map(|s| s.mtime_ns))
            .filter(|m| m % 1_000_000_000 != 0)
            .max()
            .unwrap_or(0);
        let before = now_ns();
        let wait = newest + super::statcache::RACY_WINDOW_NS + 1_000_000 - before;
        if wait > 0 {
            std::thread::sleep(std::time::Duration::from_nanos(wait as u64));
            for (p, s) in files.iter_mut() {
                if s.is_some_and(|s| is_racy(s.mtime_ns, before)) {
                    *s = stat_of(p);
                }
            }
        }
        Some(NoopRecord {
            key,
            written_at_ns: now_ns(),
            files,
            steps,
            target,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.files.len() + 4096);
        out.extend_from_slice(MAGIC);
        put_bytes(&mut out, self.key.as_bytes());
        put_u64(&mut out, self.written_at_ns as u64);
        put_u64(&mut out, self.files.len() as u64);
        for (path, stat) in &self.files {
            put_bytes(&mut out, path.as_os_str().as_encoded_bytes());
            match stat {
                None => put_u64(&mut out, 0),
                Some(s) => {
                    put_u64(&mut out, 1);
                    put_stat(&mut out, s);
                }
            }
        }
        put_u64(&mut out, self.steps.len() as u64);
        let steps = serde_json::to_vec(&self.steps).unwrap_or_default();
        put_bytes(&mut out, &steps);
        put_bytes(&mut out, self.target.as_os_str().as_encoded_bytes());
        out
    }

    /// Decodes everything but the steps, borrowing the paths from `bytes` (no
    /// allocation per file); returns the steps still encoded.
    fn decode_lazy(bytes: &[u8]) -> Option<Decoded<'_>> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let mut r = Reader(rest);
        let key = std::str::from_utf8(r.bytes()?).ok()?;
        let written_at_ns = r.u64()? as i64;
        let n = usize::try_from(r.u64()?).ok()?;
        let mut files = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let raw = r.bytes()?;
            let path = Path::new(std::ffi::OsStr::from_bytes(raw));
            let stat = match r.u64()? {
                0 => None,
                _ => Some(r.stat()?),
            };
            files.push((path, stat));
        }
        let count = usize::try_from(r.u64()?).ok()?;
        let steps = r.bytes()?;
        let target = Path::new(std::ffi::OsStr::from_bytes(r.bytes()?));
        Some(Decoded {
            key,
            written_at_ns,
            files,
            count,
            steps,
            target,
        })
    }

    /// Writes the record for `target`.
    pub fn save(&self, target: &Path) -> io::Result<()> {
        durable::write(&path_of(target), &self.encode())
    }

    /// Forgets the record (before any build that may change things).
    pub fn invalidate(target: &Path) -> io::Result<()> {
        durable::remove_all(&path_of(target))
    }

    /// The steps to replay and the build's target dir, if nothing changed since
    /// the record was written under the same key.
    pub fn check(target: &Path, key: &str) -> Option<(Vec<StepMessage>, PathBuf)> {
        let bytes = fs::read(path_of(target)).ok()?;
        let record = NoopRecord::decode_lazy(&bytes)?;
        if record.key != key || !record.unchanged() {
            return None;
        }
        Some((
            serde_json::from_slice(record.steps).ok()?,
            record.target.to_path_buf(),
        ))
    }

    /// How many steps are fresh, if nothing changed (without decoding them).
    pub fn check_count(target: &Path, key: &str) -> Option<usize> {
        let bytes = fs::read(path_of(target)).ok()?;
        let record = NoopRecord::decode_lazy(&bytes)?;
        (record.key == key && record.unchanged()).then_some(record.count)
    }
}

/// A record as read back: paths and steps still point into the file's bytes.
struct Decoded<'a> {
    key: &'a str,
    written_at_ns: i64,
    files: Vec<(&'a Path, Option<Stat>)>,
    count: usize,
    steps: &'a [u8],
    target: &'a Path,
}

impl Decoded<'_> {
    /// Whether every path still has its recorded stat (and none is racy). The
    /// paths are stat'ed in parallel, straight from the record's bytes.
    fn unchanged(&self) -> bool {
        use rayon::prelude::*;
        let written = self.written_at_ns;
        self.files
            .par_iter()
            .all(|(path, old)| match (old, stat_of(path)) {
                (None, None) => true,
                (Some(old), Some(now)) => old.matches(&now) && !is_racy(now.mtime_ns, written),
                _ => false,
            })
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path) {
        let t = filetime::FileTime::from_unix_time(1_600_000_000, 5);
        filetime::set_file_mtime(path, t).unwrap();
    }

    #[test]
    fn matches_until_something_changes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let a = dir.path().join("a");
        fs::write(&a, b"one").unwrap();
        aged(&a);
        let missing = dir.path().join("missing");
        let steps = vec![StepMessage {
            kind: "copy".into(),
            unit: "x".into(),
            fingerprint: "f".into(),
        }];
        NoopRecord::capture(
            "key".into(),
            "t".into(),
            vec![(a.clone(), Seen::Read), (missing.clone(), Seen::Read)],
            steps.clone(),
            now_ns(),
        )
        .unwrap()
        .save(&target)
        .unwrap();
        assert_eq!(
            NoopRecord::check(&target, "key"),
            Some((steps, PathBuf::from("t")))
        );
        assert_eq!(NoopRecord::check_count(&target, "key"), Some(1));
        assert_eq!(NoopRecord::check(&target, "other key"), None);
        fs::write(&missing, b"new").unwrap();
        assert_eq!(NoopRecord::check(&target, "key"), None, "a new file");
        fs::remove_file(&missing).unwrap();
        fs::write(&a, b"two").unwrap();
        aged(&a);
        assert_eq!(
            NoopRecord::check(&target, "key"),
            None,
            "same size and mtime, new ctime"
        );
    }

    #[test]
    fn capture_waits_out_a_just_written_file_and_still_sees_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let a = dir.path().join("a");
        fs::write(&a, b"one").unwrap();
        NoopRecord::capture(
            "k".into(),
            "t".into(),
            vec![(a.clone(), Seen::Own)],
            vec![],
            0,
        )
        .unwrap()
        .save(&target)
        .unwrap();
        assert_eq!(
            NoopRecord::check(&target, "k"),
            Some((vec![], PathBuf::from("t")))
        );
        fs::write(&a, b"two").unwrap();
        assert_eq!(NoopRecord::check(&target, "k"), None);
    }

    #[test]
    fn a_file_changed_during_the_build_means_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"one").unwrap();
        aged(&a);
        let seen = Stat::of(&fs::symlink_metadata(&a).unwrap());
        let started = now_ns();
        let capture = |paths: Vec<(PathBuf, Seen)>| {
            NoopRecord::capture("k".into(), "t".into(), paths, vec![], started)
        };
        assert!(capture(vec![(a.clone(), Seen::Stat(seen))]).is_some());
        // Edited after the build read it (same size, an old mtime: only ctime moves).
        fs::write(&a, b"two").unwrap();
        aged(&a);
        assert!(capture(vec![(a.clone(), Seen::Stat(seen))]).is_none());
        // A manifest edited after the build started.
        let m = dir.path().join("service.yml");
        fs::write(&m, b"x").unwrap();
        assert!(capture(vec![(m.clone(), Seen::Read)]).is_none());
        // What the build wrote itself is recorded as it is.
        assert!(capture(vec![(m, Seen::Own)]).is_some());
    }

    #[test]
    fn garbage_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::create_dir_all(target.join(".scone")).unwrap();
        fs::write(target.join(".scone/noop.bin"), b"sconeNP1\xff\xff").unwrap();
        assert_eq!(NoopRecord::check(&target, "k"), None);
    }
}
