//! The state a build leaves: its steps' results and what they consulted,
//! the steps it reused or did not plan, and what its load read. Assembled and
//! written under the target lock, after every other file of the build.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::super::id::StepId;
use super::super::record::ActionRecord;
use super::super::stat::{content_digest, listing_digest, now_ns, pin_mtime, Stat};
use super::{head, path_key, BuildState, Consult, Digest, PathEntry, PathTable, StepEntry};
use super::{is_own_name, RecordAt, FILE};
use crate::watch::Watch;

/// A path a step that ran consulted, and what it depended on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Own {
    /// An input it read: the digest it was hashed to (through the path
    /// table), or `None` if it did not exist.
    Read(PathBuf, Option<Digest>),
    /// Something the build made: a published file with its digest (hex), or
    /// a published folder (`None`: listed when the state is written).
    Made(PathBuf, Option<String>),
    /// A blob of the store the step made, with its digest (hex): kept in the
    /// path table (so that checking the step's result later hashes nothing),
    /// not watched.
    Cached(PathBuf, String),
}

/// What a build that finished adds to the state.
#[derive(Default)]
pub struct NextState {
    /// The steps that ran (fresh, built or downloaded): id, record, consults.
    pub ran: Vec<(StepId, Arc<ActionRecord>, Vec<Own>)>,
    /// Steps reused as the last state had them: their places in its
    /// [`BuildState::steps`].
    pub reused: Vec<usize>,
    /// Every step the build planned, in plan order.
    pub planned: Vec<StepId>,
    /// Whether the plan covered the whole workspace: then the steps it did
    /// not plan (of removed services and meshes) are dropped.
    pub whole: bool,
    /// `None`: no replay next time (the build failed or had effects).
    pub last: Option<LastLoad>,
    /// Steps to forget (`scone clean -p`).
    pub dropped: Vec<StepId>,
}

/// What the build's load read, for [`LastBuild`].
pub struct LastLoad {
    pub key: Digest,
    pub started_ns: i64,
    /// The paths the load read, as [`observe`] saw them right after it.
    pub watched: Vec<Observed>,
    /// Names scone writes into the root besides `scone.lock`.
    pub own_names: Vec<std::ffi::OsString>,
    /// `scone.lock` as the build wrote it last, watched as it is now.
    pub lock: PathBuf,
    /// The output folders the build published into, watched as they are now.
    pub outputs: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// The plan the build ran (`crate::plan::stored`); empty: none kept.
    pub plan: Arc<[u8]>,
}

/// The last build state and the next one, once the next is written: tens
/// of thousands of paths and steps, each its own allocation. The caller
/// drops them when it suits it; a build about to end the process forgets
/// them (freeing them one by one cost ~4 ms of a 1,000-service one-file
/// change).
pub struct Spent {
    _last: Arc<BuildState>,
    _next: BuildState,
}

/// A path a load read, with its stat right after the load.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    path: PathBuf,
    watch: Watch,
    stat: Option<Stat>,
    digest: Option<Digest>,
}

/// Stats the paths a load read (`watched`), right after it: anything that
/// changes later shows in its stat, and what changed while the load ran is
/// racy against `started_ns`. `root`: the workspace root and the digest of
/// its listing taken before the load (scone's own names left out), which
/// stands for the root's stat (the root changes when `scone.lock` is written).
/// `seen`: a stat the check took of a path (after the build started, before
/// the load read it), used rather than taken again: what changed after it
/// shows in the next build's stat all the same.
pub fn observe(
    watched: &crate::watch::Watched,
    root: Option<(&Path, Digest)>,
    seen: impl Fn(&Path) -> Option<Option<Stat>> + Sync,
) -> Vec<Observed> {
    use rayon::prelude::*;
    // Each path once, with its strictest watch (sorted as bytes: `Path`'s
    // own order compares component by component, and cost milliseconds).
    let mut all: Vec<(&Path, Watch)> = watched.iter().map(|(p, w)| (p.as_path(), *w)).collect();
    all.sort_by(|a, b| path_key(a.0).cmp(path_key(b.0)));
    let mut strictest: Vec<(&Path, Watch)> = Vec::with_capacity(all.len());
    for (path, watch) in all {
        match strictest.last_mut() {
            Some((last, w)) if path_key(last) == path_key(path) => {
                if *w == Watch::Kind {
                    *w = watch;
                }
            }
            _ => strictest.push((path, watch)),
        }
    }
    strictest
        .into_par_iter()
        .map(|(path, watch)| observed(path, watch, seen(path), root))
        .collect()
}

/// [`observe`] of the paths the last build's load read
/// ([`BuildState::load_paths`]), for a build that keeps the last plan: the
/// same entries, each found by its place in the state rather than looked up
/// by its path, in the order the last build observed them (by path: each
/// path once, with its strictest watch, as `observe` left them).
pub fn observe_load(
    state: &BuildState,
    lock: &Path,
    root: Option<(&Path, Digest)>,
    seen: &super::Seen,
) -> Vec<Observed> {
    use rayon::prelude::*;
    let load: Vec<&super::Watched> = state.load_entries(lock).collect();
    load.into_par_iter()
        .map(|w| {
            let path = state.paths[w.path as usize].path.as_path();
            observed(path, w.watch, seen.at(w.path), root)
        })
        .collect()
}

/// One path a load read, stat'ed now unless the check did (`seen`).
fn observed(
    path: &Path,
    watch: Watch,
    seen: Option<Option<Stat>>,
    root: Option<(&Path, Digest)>,
) -> Observed {
    let stat = seen.unwrap_or_else(|| Stat::of_path(path));
    let digest = match (root, watch) {
        (Some((root, digest)), Watch::Listing) if root == path => Some(digest),
        (_, Watch::Kind) => stat
            .filter(Stat::is_symlink)
            .and_then(|s| content_digest(path, &s)),
        _ => None,
    };
    Observed {
        path: path.to_path_buf(),
        watch,
        stat,
        digest,
    }
}

/// A step that ran, as the next state will hold it.
pub(super) struct Ran {
    pub id: StepId,
    pub fingerprint: String,
    pub output: Arc<str>,
    /// Its record's JSON.
    pub record: Vec<u8>,
    pub consults: Vec<(PathBuf, Option<Digest>, bool)>,
}

/// A path the load read or the build wrote: how it is watched, its stat and
/// digest, and when they were taken (ns).
pub(super) type Seen = (PathBuf, Watch, Option<Stat>, Option<Digest>, i64);

/// What a build that finished changed, ready to be written either way: the
/// steps that ran with every path they consulted, the entries it learnt of
/// paths, and what its load read.
pub(super) struct Made {
    pub recorded_ns: i64,
    /// The places in the last state of the steps kept as they were.
    pub kept: Vec<usize>,
    pub ran: Vec<Ran>,
    /// Entries this build made or learnt, sorted by path: they replace the
    /// last state's.
    pub learnt: Vec<(PathBuf, PathEntry)>,
    /// What the load read, and what the build wrote last.
    pub watched: Vec<Seen>,
    pub planned: Vec<StepId>,
    pub last: Option<LastLoad>,
}

impl NextState {
    /// Writes the state into `<target>/.scone/state`, after the records
    /// it names that are not in the log yet ([`super::records`]): as a patch
    /// of the last state ([`super::patch`]) where it can be, else whole.
    /// Returns the last state and the one written, for the caller to drop.
    pub fn write(self, target: &Path, table: PathTable) -> std::io::Result<Spent> {
        let dir = target.join(".scone");
        let (mut previous, fresh, churned) = table.into_parts();
        let made = self.made(target, &previous, fresh);
        let file = previous.file;
        let patched = Arc::get_mut(&mut previous).filter(|s| made.patches(s) && !whole_only());
        if let (Some(state), Some(file)) = (patched, file) {
            super::patch::write(state, file, made, &churned, &dir)?;
            return Ok(Spent {
                _last: previous,
                _next: BuildState::default(),
            });
        }
        let mut state = super::assemble::assemble(made, &mut previous, &churned, &dir);
        super::records::commit(&mut state, &dir, false)?;
        let file = dir.join(FILE);
        match head::encode(&state) {
            Some(encoded) => crate::durable::write_parts_checked(&file, &encoded.parts())?,
            None => crate::durable::remove_all(&file)?,
        }
        Ok(Spent {
            _last: previous,
            _next: state,
        })
    }

    /// What this build changed: the steps that ran, with what they consulted
    /// (a blob they keep but did not publish, through a path another step
    /// published it at); the steps of the last state it kept; what it learnt
    /// of paths; and what its load read.
    fn made(
        mut self,
        target: &Path,
        previous: &BuildState,
        mut fresh: HashMap<PathBuf, PathEntry>,
    ) -> Made {
        let recorded_ns = now_ns();
        let store = target.join(".scone");
        let ran_ids: HashSet<&StepId> = self.ran.iter().map(|(id, ..)| id).collect();
        let dropped: HashSet<&StepId> = self.dropped.iter().collect();
        let kept: Vec<usize> = if self.whole {
            let mut kept: Vec<usize> = self
                .reused
                .iter()
                .copied()
                .filter(|&i| {
                    previous
                        .steps
                        .get(i)
                        .is_some_and(|s| !dropped.contains(&s.id) && !ran_ids.contains(&s.id))
                })
                .collect();
            kept.sort_unstable();
            kept.dedup();
            kept
        } else {
            (0..previous.steps.len())
                .filter(|&i| {
                    let id = &previous.steps[i].id;
                    !ran_ids.contains(id) && !dropped.contains(id)
                })
                .collect()
        };
        drop(ran_ids);

        // The steps that ran, their consults by path.
        let mut made_entries: HashMap<PathBuf, PathEntry> = HashMap::new();
        let mut ran: Vec<Ran> = Vec::with_capacity(self.ran.len());
        for (id, record, consulted) in std::mem::take(&mut self.ran) {
            if dropped.contains(&id) {
                continue;
            }
            let mut consults = Vec::with_capacity(consulted.len());
            // A path made (or cached) by several steps has one entry: the
            // first's (its stat and digest are the same for the others).
            let mut made_once = |path: &Path, digest: Option<&str>| -> Option<Digest> {
                if let Some(entry) = made_entries.get(path) {
                    return entry.digest;
                }
                let entry = made(path, digest, fresh.remove(path), recorded_ns);
                let digest = entry.digest;
                made_entries.insert(path.to_path_buf(), entry);
                digest
            };
            for own in consulted {
                match own {
                    Own::Read(path, expect) => consults.push((path, expect, true)),
                    Own::Made(path, digest) => {
                        let digest = made_once(&path, digest.as_deref());
                        consults.push((path, digest, true));
                    }
                    Own::Cached(path, digest) => {
                        let digest = made_once(&path, Some(&digest));
                        consults.push((path, digest, false));
                    }
                }
            }
            // The fingerprint's inputs stay in the action cache (`--explain`
            // reads them there): the state holds what dependents read.
            let view = super::super::record::RecordView::of(&record);
            let Ok(bytes) = serde_json::to_vec(&view) else {
                continue;
            };
            ran.push(Ran {
                id,
                fingerprint: record.fingerprint.clone(),
                output: record.output_digest().into(),
                record: bytes,
                consults,
            });
        }
        drop(dropped);
        link_published(&mut ran, previous, &kept, target, &store);

        // What the load read, and what the build wrote last.
        let mut watched: Vec<Seen> = Vec::new();
        if let Some(load) = &mut self.last {
            watched.reserve_exact(load.watched.len() + 1 + load.outputs.len());
            let own: Vec<&std::ffi::OsStr> = load.own_names.iter().map(|n| n.as_os_str()).collect();
            for o in std::mem::take(&mut load.watched) {
                watched.push((o.path, o.watch, o.stat, o.digest, load.started_ns));
            }
            // An output folder is pinned (its mtime set far in the past, as
            // the store's files are): any later write into it moves the mtime
            // away, so its stat alone shows that it held and is never racy —
            // no listing of its 1,000 names per 1,000 services, here or by the
            // next build. One that cannot be pinned is listed, in parallel.
            use rayon::prelude::*;
            let written: Vec<(&PathBuf, Watch)> = std::iter::once((&load.lock, Watch::Content))
                .chain(load.outputs.iter().map(|p| (p, Watch::Output)))
                .collect();
            let written: Vec<Seen> = written
                .into_par_iter()
                .map(|(path, watch)| {
                    let mut stat = Stat::of_path(path);
                    let folder = watch == Watch::Output && stat.is_some_and(|s| s.is_dir());
                    if folder && !stat.is_some_and(|s| s.is_pinned()) && pin_mtime(path).is_ok() {
                        stat = Stat::of_path(path);
                    }
                    let pinned = folder && stat.is_some_and(|s| s.is_pinned());
                    let digest = stat.filter(|_| !pinned).and_then(|s| {
                        if s.is_dir() {
                            listing_digest(path, |n| is_own_name(n, &own))
                        } else {
                            content_digest(path, &s)
                        }
                    });
                    (path.clone(), watch, stat, digest, recorded_ns)
                })
                .collect();
            watched.extend(written);
        }
        // What this build learnt of a path replaces what the last state knew
        // (what a step made last: it is the newest; the two maps hold
        // different paths).
        let mut learnt: Vec<(PathBuf, PathEntry)> = made_entries.into_iter().chain(fresh).collect();
        learnt.sort_unstable_by(|a, b| path_key(&a.0).cmp(path_key(&b.0)));
        Made {
            recorded_ns,
            kept,
            ran,
            learnt,
            watched,
            planned: self.planned,
            last: self.last,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests write some states whole that would be patches, to compare.
    pub(super) static WHOLE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn whole_only() -> bool {
    #[cfg(test)]
    return WHOLE_ONLY.with(|w| w.get());
    #[cfg(not(test))]
    false
}

impl Made {
    /// Whether the next state can be written as a patch of `last`: it was
    /// read from its file, its patches are still few and short beside its
    /// head, and the next state has the same steps in the same places (none
    /// removed, none new: each that ran replaces its own entry).
    fn patches(&self, last: &BuildState) -> bool {
        let Some(file) = last.file else {
            return false;
        };
        if !super::patch::has_room(&file) {
            return false;
        }
        let mut covered = vec![false; last.steps.len()];
        for &i in &self.kept {
            covered[i] = true;
        }
        for r in &self.ran {
            match last.position(&r.id) {
                Some(i) => covered[i] = true,
                None => return false,
            }
        }
        covered.iter().all(|&c| c)
    }
}

/// A blob another step published (the layer in every image of it) is
/// watched by its maker too, through the published hard link: a byte
/// changed there makes the maker check its result, and make it again. Only
/// the published paths of the blobs the steps that ran keep are looked for
/// (at 10,000 services the map of every published file was 140,000 entries,
/// for a few blobs). (On bytes: `Path::starts_with` compares component by
/// component.)
fn link_published(
    ran: &mut [Ran],
    previous: &BuildState,
    kept: &[usize],
    target: &Path,
    store: &Path,
) {
    let target_prefix = [path_key(target), b"/"].concat();
    let store_prefix = [path_key(store), b"/"].concat();
    let is_published = |p: &Path| {
        let p = path_key(p);
        p.starts_with(&target_prefix) && !p.starts_with(&store_prefix)
    };
    // The blobs each step that ran keeps but did not publish itself.
    let unpublished: Vec<Vec<Digest>> = ran
        .iter()
        .map(|r| {
            let own: HashSet<Digest> = r
                .consults
                .iter()
                .filter(|(_, _, watched)| *watched)
                .filter_map(|(_, d, _)| *d)
                .collect();
            r.consults
                .iter()
                .filter(|(_, _, watched)| !*watched)
                .filter_map(|(_, d, _)| *d)
                .filter(|d| !own.contains(d))
                .collect()
        })
        .collect();
    let wanted: HashSet<Digest> = unpublished.iter().flatten().copied().collect();
    if wanted.is_empty() {
        return;
    }
    let mut published: HashMap<Digest, PathBuf> = HashMap::new();
    let note = |published: &mut HashMap<Digest, PathBuf>, d: Digest, path: &Path| {
        if wanted.contains(&d) {
            published.entry(d).or_insert_with(|| path.to_path_buf());
        }
    };
    for r in ran.iter() {
        for (path, expect, watched) in &r.consults {
            if let (true, Some(d)) = (*watched, expect) {
                if is_published(path) {
                    note(&mut published, *d, path);
                }
            }
        }
    }
    for &i in kept {
        // Found them all (a base layer is in the first image looked at).
        if published.len() == wanted.len() {
            break;
        }
        for c in previous.steps[i].consults.iter().filter(|c| c.watched) {
            let path = &previous.paths[c.path as usize].path;
            if let Some(d) = c.expect.filter(|_| is_published(path)) {
                note(&mut published, d, path);
            }
        }
    }
    for (r, blobs) in ran.iter_mut().zip(unpublished) {
        let links: Vec<(PathBuf, Option<Digest>, bool)> = blobs
            .into_iter()
            .filter_map(|d| Some((published.get(&d)?.clone(), Some(d), true)))
            .collect();
        r.consults.extend(links);
    }
}

/// Where the log already has the record of each step that ran: where the
/// last state has those bytes for that step (`None`: to be added; a record
/// that does not read is written again).
pub(super) fn hold_records(ran: &[Ran], previous: &BuildState) -> Vec<Option<RecordAt>> {
    if ran.len() > 64 {
        previous.records.read_all();
    }
    ran.iter()
        .map(|r| {
            previous.step(&r.id).map(|old| old.record).filter(|old| {
                old.len == r.record.len() as u64
                    && previous.records.read(old).as_deref() == Some(&r.record[..])
            })
        })
        .collect()
}

impl Ran {
    /// Its entry in the state, its record at `record`.
    pub(super) fn entry(self, record: RecordAt, consults: Vec<Consult>) -> StepEntry {
        StepEntry {
            id: self.id,
            fingerprint: self.fingerprint,
            output: self.output,
            record,
            parsed: OnceLock::new(),
            consults,
        }
    }
}

/// The entry of a path the build made (`digest`: what it wrote there, hex;
/// `None` for a folder): this build's own entry while it still describes the
/// path, else its stat now with that digest (a folder's listing). Whoever
/// may write into `target/` while a build runs is trusted not to (see
/// docs/security.md): a file is not read back here.
fn made(path: &Path, digest: Option<&str>, fresh: Option<PathEntry>, now_ns: i64) -> PathEntry {
    let stat = Stat::of_path(path);
    if let Some(e) = fresh.filter(|e| e.stat == stat && e.digest.is_some()) {
        return e;
    }
    let digest = match (stat, digest) {
        (None, _) => None,
        (Some(s), None) if s.is_dir() => listing_digest(path, |_| false),
        (Some(_), Some(hex_digest)) => {
            let mut raw = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut raw)
                .ok()
                .map(|()| raw)
        }
        (Some(s), None) => content_digest(path, &s),
    };
    PathEntry {
        path: path.to_path_buf(),
        stat,
        digest,
        taken_ns: now_ns,
    }
}

/// Publishing linked and unlinked shared inodes (a base layer is in every
/// image of a mesh): a path whose stat differs from now in ctime alone keeps
/// its digest. One `lstat` per churned inode, through the first of its paths
/// that still names it: a path of the same inode holds the same stat. (A path
/// replaced meanwhile gets its old inode's stat, which its next `lstat` does
/// not match: checked again, never trusted.) Returns each stat it gave, with
/// the places of the entries it gave it to.
pub(super) fn refresh_churned(
    paths: &mut [PathEntry],
    churned: &HashSet<u64>,
    recorded_ns: i64,
) -> Vec<(Stat, Vec<u32>)> {
    use rayon::prelude::*;
    let mut by_inode: HashMap<u64, Vec<u32>> = HashMap::new();
    for (i, entry) in paths.iter().enumerate() {
        if let Some(s) = entry.stat.filter(|s| churned.contains(&s.inode)) {
            by_inode.entry(s.inode).or_default().push(i as u32);
        }
    }
    let now: Vec<(Stat, Vec<u32>)> = by_inode
        .into_par_iter()
        .filter_map(|(inode, at)| {
            let now = at
                .iter()
                .filter_map(|&i| Stat::of_path(&paths[i as usize].path))
                .find(|s| s.inode == inode)?;
            let same = |i: &u32| {
                paths[*i as usize].stat.is_some_and(|old| {
                    now == (Stat {
                        ctime_ns: now.ctime_ns,
                        ..old
                    })
                })
            };
            let at: Vec<u32> = at.into_iter().filter(same).collect();
            (!at.is_empty()).then_some((now, at))
        })
        .collect();
    churn(paths, &now, recorded_ns);
    now
}

/// Gives each stat of `now` to the entries at its places, taken at
/// `taken_ns` (a place past the table's end is none).
pub(super) fn churn(paths: &mut [PathEntry], now: &[(Stat, Vec<u32>)], taken_ns: i64) {
    for (stat, at) in now {
        for &i in at {
            if let Some(entry) = paths.get_mut(i as usize) {
                entry.stat = Some(*stat);
                entry.taken_ns = taken_ns;
            }
        }
    }
}

#[cfg(test)]
#[path = "next_tests.rs"]
mod tests;
