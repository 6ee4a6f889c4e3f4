//! The no-op fast path and the incremental path: "what changed since the last
//! successful build?" answered before a single manifest is parsed.
//!
//! After a successful build the CLI writes `noop.bin`: a key (scone's version,
//! the command line, the working folder and the environment variables that
//! shape a build), the stat of every path the build consulted — manifests and
//! their folders, `scone.toml`, `scone.lock`, every declared input and the
//! folders they were listed from, every published output and every blob —,
//! and every step with its fingerprint and the paths *it* consulted. An
//! incremental build leaves it as it is and writes what it changed in it to a
//! journal beside it, `noop.log` (see `noop/journal.rs`).
//!
//! The next build with the same key stats those paths (in parallel) and gets a
//! [`Verdict`]:
//!
//! | what changed                                   | verdict                  |
//! |------------------------------------------------|--------------------------|
//! | nothing (and nothing is racy)                  | `Unchanged`: replay, done |
//! | only paths that steps consulted                | `Dirty`: those steps re-run, the others are reused |
//! | a manifest, a folder of one, `scone.toml`, `scone.lock`, or no/other record | `Full`: the full build |
//!
//! as ninja decides from its log. A reused step keeps its recorded paths and
//! stats (the ones its result was computed under), so an edit made while a
//! build runs shows up in the next one. The stats recorded for inputs are the
//! ones the build read them under, not fresh ones: a file edited while the
//! build ran (after it was read) means no record at all ([`Seen`]). A path the
//! build wrote itself within the racy window (see
//! [`super::statcache::is_racy`]) is recorded with its content digest (a
//! folder's: its sorted names), which the next check compares instead of
//! trusting the stat, so recording never has to wait the window out. Any
//! doubt falls back to the full build, which is always correct; the fast
//! paths only ever skip work the full path would find fresh.

mod encode;
mod files;
mod journal;
mod patch;

pub use files::Files;
pub use journal::Origin;
pub use patch::Ran;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::statcache::{is_racy, Stat};
use crate::durable;

/// A step of the last build: what to replay as `fresh`, and which recorded
/// paths it consulted (indices into [`NoopRecord::files`]). Its outputs are
/// read from the step index when they are printed, so the record stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepMessage {
    pub kind: String,
    pub unit: String,
    pub fingerprint: String,
    pub files: Vec<u32>,
}

/// What was recorded of an existing path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub stat: Stat,
    /// For a path written within the racy window of the record: its content
    /// digest (a folder's: of its sorted entry names).
    pub content: Option<[u8; 32]>,
}

/// What the fast paths need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoopRecord {
    pub key: String,
    pub written_at_ns: i64,
    /// Every path by its index (see [`Files`]); a `None` state: the path did
    /// not exist.
    pub files: Files,
    pub steps: Vec<StepMessage>,
    /// The target dir of the build (where the step index is), as the engine
    /// was given it (the working folder is part of the key).
    pub target: PathBuf,
    /// The blake3 of the workspace snapshot written with this record, if any
    /// (see `workspace::snapshot`).
    pub workspace: Option<[u8; 32]>,
    /// The file this record was read from, if it was: saving it again then
    /// writes only what changed since (see `noop/journal.rs`).
    pub origin: Option<Origin>,
}

fn path_of(dir: &Path) -> PathBuf {
    dir.join(".scone").join("noop.bin")
}

fn journal_of(dir: &Path) -> PathBuf {
    dir.join(".scone").join("noop.log")
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

impl Seen {
    /// Which of two sightings of one path is recorded: the stricter.
    fn rank(&self) -> u8 {
        match self {
            Seen::Stat(_) => 0,
            Seen::Read => 1,
            Seen::Own => 2,
        }
    }
}

/// One path for [`NoopRecord::capture`]: how it was seen and which step (an
/// index into the steps) consulted it; `None` for the workspace's own files
/// (manifests, `scone.toml`, `scone.lock`), whose change means a full build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consulted {
    pub path: PathBuf,
    pub seen: Seen,
    pub owner: Option<u32>,
}

/// The answer of [`NoopRecord::check`]; see the module documentation.
#[derive(Debug)]
pub enum Verdict {
    Unchanged {
        /// How many steps are fresh.
        count: usize,
        /// The steps, if asked for.
        steps: Option<Vec<StepMessage>>,
        target: PathBuf,
    },
    Dirty(Box<Previous>),
    Full,
}

/// The last build, when only paths that some steps consulted changed.
#[derive(Debug)]
pub struct Previous {
    pub record: NoopRecord,
    /// Per step of `record.steps`: whether a path it consulted changed.
    pub dirty: Vec<bool>,
}

/// The digest of what a path holds: a file's bytes, a link's target, a
/// folder's sorted entry names.
fn content_digest(path: &Path) -> Option<[u8; 32]> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mut h = blake3::Hasher::new();
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)
            .ok()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .ok()?;
        names.sort();
        for n in names {
            h.update(n.as_encoded_bytes());
            h.update(b"\0");
        }
    } else if meta.is_symlink() {
        h.update(fs::read_link(path).ok()?.as_os_str().as_encoded_bytes());
    } else {
        h.update_reader(fs::File::open(path).ok()?).ok()?;
    }
    Some(*h.finalize().as_bytes())
}

impl NoopRecord {
    /// Stats `paths` now and records them with the steps; `None` if a path
    /// the build read changed while it ran (or just before it started, within
    /// the racy window of `started_ns`), since its stat could then describe
    /// content the build never saw. The next build then takes the full path,
    /// which sees the change, and records again. The steps' `files` are
    /// filled in from the owners of `paths` (indices into `steps`); the steps
    /// are recorded sorted by kind and unit, so that the record does not
    /// depend on the order they finished in.
    pub fn capture(
        key: String,
        target: PathBuf,
        mut paths: Vec<Consulted>,
        steps: Vec<StepMessage>,
        started_ns: i64,
    ) -> Option<NoopRecord> {
        use rayon::prelude::*;
        let mut order: Vec<usize> = (0..steps.len()).collect();
        order.sort_by(|&a, &b| {
            (&steps[a].kind, &steps[a].unit).cmp(&(&steps[b].kind, &steps[b].unit))
        });
        let mut rank = vec![0u32; steps.len()];
        for (new, &old) in order.iter().enumerate() {
            rank[old] = new as u32;
        }
        for p in &mut paths {
            p.owner = p.owner.and_then(|o| rank.get(o as usize).copied());
        }
        let mut steps: Vec<StepMessage> = order.into_iter().map(|i| steps[i].clone()).collect();
        // Byte order: as deterministic as component order, and much cheaper.
        paths.par_sort_unstable_by(|a, b| {
            a.path
                .as_os_str()
                .as_encoded_bytes()
                .cmp(b.path.as_os_str().as_encoded_bytes())
                .then(a.seen.rank().cmp(&b.seen.rank()))
                .then(a.owner.cmp(&b.owner))
        });
        // One group per path: the strictest sighting, every owner; a path of
        // the workspace's own (no owner) makes the whole group the workspace's.
        let mut groups: Vec<(PathBuf, Seen, Vec<u32>, bool)> = Vec::with_capacity(paths.len());
        for c in paths {
            match groups.last_mut() {
                Some(g) if g.0.as_os_str() == c.path.as_os_str() => match c.owner {
                    Some(o) => g.2.push(o),
                    None => g.3 = true,
                },
                _ => groups.push((
                    c.path,
                    c.seen,
                    c.owner.into_iter().collect(),
                    c.owner.is_none(),
                )),
            }
        }
        for s in &mut steps {
            s.files.clear();
        }
        for (i, (_, _, owners, global)) in groups.iter().enumerate() {
            if *global {
                continue;
            }
            for &o in owners {
                if let Some(s) = steps.get_mut(o as usize) {
                    if s.files.last() != Some(&(i as u32)) {
                        s.files.push(i as u32);
                    }
                }
            }
        }
        let written_at_ns = now_ns();
        let files: Option<Vec<(PathBuf, Option<Recorded>)>> = groups
            .into_par_iter()
            .map(|(p, seen, _, _)| {
                let recorded = seen_now(&p, seen, started_ns, written_at_ns)?;
                Some((p, recorded))
            })
            .collect();
        Some(NoopRecord {
            key,
            written_at_ns,
            files: files?.into_iter().collect(),
            steps,
            target,
            workspace: None,
            origin: None,
        })
    }

    /// Writes the record into `dir`: as a journal of the record it was read
    /// from while that is enough, else whole (then the journal is removed).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        if let Some(bytes) = self.origin.as_ref().and_then(|o| journal::encode(self, o)) {
            return durable::write_checked(&journal_of(dir), &bytes);
        }
        durable::write_checked(&path_of(dir), &encode::encode(self))?;
        durable::remove_all(&journal_of(dir))
    }

    /// Forgets the record.
    pub fn invalidate(dir: &Path) -> io::Result<()> {
        durable::remove_all(&path_of(dir))?;
        durable::remove_all(&journal_of(dir))
    }

    /// What changed since the record in `dir` was written under `key`; the
    /// steps of an `Unchanged` verdict are decoded only if `want_steps`.
    pub fn check(dir: &Path, key: &str, want_steps: bool) -> Verdict {
        let Ok(bytes) = fs::read(path_of(dir)) else {
            return Verdict::Full;
        };
        let journal = match fs::read(journal_of(dir)) {
            Ok(journal) => Some(journal),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(_) => return Verdict::Full,
        };
        let journal = match journal.as_deref().map(journal::decode) {
            Some(None) => return Verdict::Full,
            Some(Some(j)) => Some(j),
            None => None,
        };
        let Some(record) = encode::Lazy::decode(&bytes, journal) else {
            return Verdict::Full;
        };
        if record.key != key {
            return Verdict::Full;
        }
        let changed = record.changed();
        if changed.is_empty() {
            let steps = if want_steps {
                match record.steps() {
                    Some(s) => Some(s),
                    None => return Verdict::Full,
                }
            } else {
                None
            };
            return Verdict::Unchanged {
                count: record.count,
                steps,
                target: record.target.to_path_buf(),
            };
        }
        let Some(full) = record.into_record() else {
            return Verdict::Full;
        };
        let mut owned = vec![false; full.files.len()];
        let mut is_changed = vec![false; full.files.len()];
        for s in &full.steps {
            for &f in &s.files {
                if let Some(o) = owned.get_mut(f as usize) {
                    *o = true;
                }
            }
        }
        for &c in &changed {
            if !owned[c as usize] {
                return Verdict::Full;
            }
            is_changed[c as usize] = true;
        }
        let dirty = full
            .steps
            .iter()
            .map(|s| s.files.iter().any(|&f| is_changed[f as usize]))
            .collect();
        Verdict::Dirty(Box::new(Previous {
            record: full,
            dirty,
        }))
    }
}

/// What to record of `path`, seen as `seen` by a build that started at
/// `started_ns`, in a record written at `written_at_ns`; `None` if the build's
/// view of it cannot be trusted (see [`NoopRecord::capture`]).
fn seen_now(
    path: &Path,
    seen: Seen,
    started_ns: i64,
    written_at_ns: i64,
) -> Option<Option<Recorded>> {
    let plain = |stat: Stat| Recorded {
        stat,
        content: None,
    };
    // Content read just before the start could change again within the same
    // mtime tick without the stat showing it. (A mode change shows in the
    // stat itself.)
    let recent = |s: &Stat| is_racy(s.mtime_ns, started_ns);
    Some(match seen {
        Seen::Stat(then) => {
            let now = stat_of(path).filter(|n| then.matches(n) && !recent(&then))?;
            Some(plain(now))
        }
        Seen::Read => match stat_of(path) {
            Some(n) if recent(&n) => return None,
            n => n.map(plain),
        },
        Seen::Own => stat_of(path).map(|stat| Recorded {
            stat,
            content: if is_racy(stat.mtime_ns, written_at_ns) {
                content_digest(path)
            } else {
                None
            },
        }),
    })
}

/// Whether a recorded path still is as recorded, at check time.
fn still(path: &Path, old: Option<&Recorded>, written_at_ns: i64) -> bool {
    match (old, stat_of(path)) {
        (None, None) => true,
        (Some(old), Some(now)) => {
            old.stat.matches(&now)
                && (!is_racy(now.mtime_ns, written_at_ns)
                    || old.content.is_some_and(|c| content_digest(path) == Some(c)))
        }
        _ => false,
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
