//! Patches: what one build changed in the state, appended to the state file
//! instead of writing the file whole (as ninja appends to `.ninja_log`).
//!
//! A one-file change at 1,000 services runs a dozen steps; writing the state
//! whole re-encoded 6,000 steps and 32,000 paths (7 MB) to say so. So when
//! the next state has the same steps as the last one, in the same places (a
//! build that ran some and kept the rest: none removed, none new), the build
//! changes the state it read in place and appends what it changed:
//!
//! ```text
//! patch length (u64, little-endian)
//! patch:  "sconePA1", scone's version, the number of paths and of steps
//!         it applies to (a patch of another table does not read),
//!         the paths it adds: count, then per path its bytes, flags,
//!                [stat], [digest], taken_ns (appended to the table: path
//!                numbers never move),
//!         the entries it changes: count, then per entry its place, flags,
//!                [stat], [digest], taken_ns,
//!         the shared inodes publishing linked or unlinked: count, then per
//!                inode its stat now and the places of the entries given it
//!                (each after the one before), then when it was taken,
//!         the steps that ran: count, then per step its place and its entry
//!                (every consult's digest written out), which must name the
//!                step in that place,
//!         the last build: as in the head, but a watched path that is the
//!                last one's, taken when the build started, is one byte, and
//!                the planned steps and the plan, if they are the last
//!                one's, one each
//!         checksum
//! ```
//!
//! It is written where the fresh list began, followed by the next state's
//! fresh list and its length: a build killed while appending leaves a patch
//! that does not read (its checksum), and the state is the one before it —
//! the state the killed build's files are checked against, as if it had
//! written nothing. The next build writes over it. Once there are
//! [`MOST`] patches, or they are longer than a quarter of the head and
//! 64 KiB, or a build adds or removes
//! steps, or the record log is written whole, the state is written whole
//! again, its table in order and without the paths no step uses any more
//! (`super::assemble`).

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::stat::Stat;
use super::super::wire::{put_var, put_var_bytes, put_zigzag, seal, unseal, Reader};
use super::codec;
use super::head::{self, Extent};
use super::next::{churn, hold_records, refresh_churned, Made};
use super::{
    path_key, BuildState, Consult, Digest, LastBuild, PathEntry, StepEntry, Watched, FILE,
};

const MAGIC: &[u8; 8] = b"sconePA1";

/// Patches may grow to the head's length divided by this, and [`SLACK`];
/// then the state is written whole.
pub(super) const HEAD_PER_PATCHES: u64 = 4;

/// See [`HEAD_PER_PATCHES`].
pub(super) const SLACK: u64 = 1 << 16;

/// At most this many patches follow a head: each is applied when the state
/// is read (0.3–0.6 ms at 1,000 services), and a state written whole costs
/// ~20 ms more than a patch, so that eight patches and a whole state cost a
/// change ~4 ms a build on average, at most ~3 ms of reading.
pub(super) const MOST: u32 = 8;

/// Whether another patch may follow those of the state file `file`: fewer
/// than [`MOST`], and no longer than a quarter of the head and [`SLACK`].
pub(super) fn has_room(file: &Extent) -> bool {
    file.patches < MOST && file.end - file.head <= file.head / HEAD_PER_PATCHES + SLACK
}

/// What a patch changes, but the paths it appends (the table's end).
struct Changes {
    /// How many paths the table had before the patch.
    paths: usize,
    /// Places (below `paths`) of the entries that changed, in order.
    entries: Vec<u32>,
    /// Places of the steps that ran, in order.
    steps: Vec<u32>,
    /// The stats of the shared inodes whose ctime publishing moved, and
    /// when they were taken ([`churn`]).
    churn: (Vec<(Stat, Vec<u32>)>, i64),
    /// The last build the state had.
    had: Option<LastBuild>,
}

/// Makes `state` (the last state, read from its file at `file`) the next
/// one in place, writes the records of the steps that ran into the log, and
/// appends the patch to the state file in `dir`; or writes the state whole
/// where the log was written whole (every step's record moved).
pub(super) fn write(
    state: &mut BuildState,
    file: Extent,
    made: Made,
    churned: &HashSet<u64>,
    dir: &Path,
) -> std::io::Result<()> {
    let changes = update(state, made, churned);
    let moved = super::records::commit(state, dir, false)?;
    let path = dir.join(FILE);
    let encoded = (!moved).then(|| encode(state, &changes)).flatten();
    match encoded {
        Some(patch) => {
            let fresh = super::fresh::encode(state);
            let parts: [&[u8]; 4] = [
                &(patch.len() as u64).to_le_bytes(),
                &patch,
                &fresh,
                &(fresh.len() as u64).to_le_bytes(),
            ];
            append(&path, file.end, &parts)
        }
        None => match head::encode(state) {
            Some(whole) => crate::durable::write_parts_checked(&path, &whole.parts()),
            None => crate::durable::remove_all(&path),
        },
    }
}

/// Writes `parts` one after the other at `at` in the file at `path`, which
/// then ends there.
fn append(path: &Path, at: u64, parts: &[&[u8]]) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut end = at;
    for part in parts {
        file.write_all_at(part, end)?;
        end += part.len() as u64;
    }
    file.set_len(end)
}

/// The next state, made of `state` in place: the entries this build learnt,
/// the steps that ran in the places they had, the paths new to the table at
/// its end, the shared inodes' new ctimes, and what the load read.
fn update(state: &mut BuildState, made: Made, churned: &HashSet<u64>) -> Changes {
    let Made {
        recorded_ns,
        ran,
        learnt,
        watched,
        planned,
        last: load,
        ..
    } = made;
    let before = state.paths.len();
    let mut entries: Vec<u32> = Vec::new();
    let mut unseen: HashMap<PathBuf, PathEntry> = HashMap::new();
    for (path, entry) in learnt {
        match state.index_of(path_key(&path)) {
            Some(i) if state.paths[i as usize] != entry => {
                state.paths[i as usize] = entry;
                entries.push(i);
            }
            Some(_) => {}
            None => {
                unseen.insert(path, entry);
            }
        }
    }
    let mut place = |state: &mut BuildState, path: &Path| -> u32 {
        state.index_of(path_key(path)).unwrap_or_else(|| {
            let entry = unseen.remove(path).unwrap_or_else(|| PathEntry {
                path: path.to_path_buf(),
                stat: None,
                digest: None,
                taken_ns: recorded_ns,
            });
            state.append_path(entry)
        })
    };
    let held: Vec<_> = hold_records(&ran, state)
        .into_iter()
        .zip(&ran)
        .map(|(old, r)| old.unwrap_or_else(|| state.records.add(&r.record)))
        .collect();
    let mut steps = Vec::with_capacity(ran.len());
    for (r, record) in ran.into_iter().zip(held) {
        let consults = r
            .consults
            .iter()
            .map(|(path, expect, watched)| Consult {
                path: place(state, path),
                expect: *expect,
                watched: *watched,
            })
            .collect();
        if let Some(i) = state.position(&r.id) {
            state.steps[i] = r.entry(record, consults);
            steps.push(i as u32);
        }
    }
    let had = state.last.take();
    // The load read the paths the last one did, mostly: each is looked for
    // where it was there first.
    let seen = had.as_ref().map_or(&[][..], |h| &h.watched[..]);
    let watched: Vec<Watched> = watched
        .into_iter()
        .enumerate()
        .map(|(i, (path, watch, stat, digest, taken_ns))| Watched {
            path: seen
                .get(i)
                .map(|b| b.path)
                .filter(|&b| state.paths[b as usize].path == path)
                .unwrap_or_else(|| place(state, &path)),
            watch,
            stat,
            digest,
            taken_ns,
        })
        .collect();
    let churn = match churned.is_empty() {
        true => Vec::new(),
        false => refresh_churned(&mut state.paths, churned, recorded_ns),
    };
    entries.retain(|&i| (i as usize) < before);
    entries.sort_unstable();
    entries.dedup();
    steps.sort_unstable();
    steps.dedup();
    // The steps planned are the last build's, mostly: in the same places.
    let same = had.as_ref().is_some_and(|h| {
        h.steps.len() == planned.len()
            && h.steps
                .iter()
                .zip(&planned)
                .all(|(&i, id)| state.steps.get(i as usize).is_some_and(|s| &s.id == id))
    });
    let last = load.map(|load| LastBuild {
        key: load.key,
        started_ns: load.started_ns,
        watched,
        steps: match (&had, same) {
            (Some(h), true) => h.steps.clone(),
            _ => planned
                .iter()
                .filter_map(|id| state.position(id).map(|i| i as u32))
                .collect(),
        },
        warnings: load.warnings,
        plan: load.plan,
    });
    // A planned step with no entry (it failed, or its record would not
    // encode): no replay.
    state.last = last.filter(|l| l.steps.len() == planned.len());
    Changes {
        paths: before,
        entries,
        steps,
        churn: (churn, recorded_ns),
        had,
    }
}

/// The patch that makes the state before `changes` the `state` now, sealed;
/// `None` if a step's fingerprint or output is not a digest.
fn encode(state: &BuildState, changes: &Changes) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_var_bytes(
        &mut out,
        super::super::fingerprint::tool_version().as_bytes(),
    );
    put_var(&mut out, changes.paths as u64);
    put_var(&mut out, state.steps.len() as u64);
    let added = state.paths.get(changes.paths..)?;
    put_var(&mut out, added.len() as u64);
    for p in added {
        put_var_bytes(&mut out, path_key(&p.path));
        put_entry(&mut out, p);
    }
    put_var(&mut out, changes.entries.len() as u64);
    for &i in &changes.entries {
        put_var(&mut out, u64::from(i));
        put_entry(&mut out, state.paths.get(i as usize)?);
    }
    put_var(&mut out, changes.churn.0.len() as u64);
    for (stat, at) in &changes.churn.0 {
        codec::put_stat(&mut out, stat);
        put_var(&mut out, at.len() as u64);
        let mut previous = 0;
        for &i in at {
            put_var(&mut out, u64::from(i - previous));
            previous = i;
        }
    }
    put_zigzag(&mut out, changes.churn.1);
    put_var(&mut out, changes.steps.len() as u64);
    for &i in &changes.steps {
        put_var(&mut out, u64::from(i));
        codec::put_step(&mut out, state.steps.get(i as usize)?, |_| None)?;
    }
    put_last(&mut out, state.last.as_ref(), changes.had.as_ref());
    seal(&mut out);
    Some(out)
}

/// The last build, by what differs from the one before: a watched path as
/// it was there, taken when the build started, is one byte; the planned
/// steps and the plan, if they are the same, one each.
fn put_last(out: &mut Vec<u8>, last: Option<&LastBuild>, had: Option<&LastBuild>) {
    let Some(last) = last else {
        out.push(0);
        return;
    };
    codec::put_last_opening(out, last);
    let before = had.map_or(&[][..], |h| &h.watched[..]);
    for (i, w) in last.watched.iter().enumerate() {
        if before
            .get(i)
            .is_some_and(|b| same_watch(b, w, last.started_ns))
        {
            out.push(0);
        } else {
            out.push(1);
            codec::put_watched(out, w);
        }
    }
    if had.is_some_and(|h| h.steps == last.steps) {
        out.push(0);
    } else {
        out.push(1);
        put_var(out, last.steps.len() as u64);
        for &s in &last.steps {
            put_var(out, u64::from(s));
        }
    }
    codec::put_warnings(out, &last.warnings);
    match had {
        Some(h) if Arc::ptr_eq(&h.plan, &last.plan) || h.plan[..] == last.plan[..] => out.push(0),
        _ => {
            out.push(1);
            put_var_bytes(out, &last.plan);
        }
    }
}

/// Whether `w` is `before` taken at `started_ns`.
fn same_watch(before: &Watched, w: &Watched, started_ns: i64) -> bool {
    w.taken_ns == started_ns
        && (before.path, before.watch, before.stat, before.digest)
            == (w.path, w.watch, w.stat, w.digest)
}

/// The last build as [`put_last`] wrote it, after `had`, for a table of
/// `paths` paths and `steps` steps.
fn last(
    r: &mut Reader<'_>,
    had: Option<&LastBuild>,
    paths: usize,
    steps: usize,
) -> Option<Option<LastBuild>> {
    if *r.take(1)?.first()? == 0 {
        return Some(None);
    }
    let key: Digest = r.take(32)?.try_into().ok()?;
    let started_ns = r.zigzag()?;
    let n = r.var_len()?;
    let before = had.map_or(&[][..], |h| &h.watched[..]);
    let mut watched = Vec::with_capacity(n.min(1 << 24));
    for i in 0..n {
        let w = match *r.take(1)?.first()? {
            0 => Watched {
                taken_ns: started_ns,
                ..before.get(i)?.clone()
            },
            _ => codec::watched_entry(r, paths)?,
        };
        watched.push(w);
    }
    let planned = match *r.take(1)?.first()? {
        0 => had?.steps.clone(),
        _ => codec::planned(r, steps)?,
    };
    let warnings = codec::warnings(r)?;
    let plan = match *r.take(1)?.first()? {
        0 => Arc::clone(&had?.plan),
        _ => Arc::from(r.var_bytes()?),
    };
    Some(Some(LastBuild {
        key,
        started_ns,
        watched,
        steps: planned,
        warnings,
        plan,
    }))
}

fn put_entry(out: &mut Vec<u8>, p: &PathEntry) {
    codec::put_known(out, p.stat.as_ref(), p.digest.as_ref());
    put_zigzag(out, p.taken_ns);
}

/// A path's entry without its path: stat, digest, when taken.
type Entry = (Option<Stat>, Option<Digest>, i64);

fn entry(r: &mut Reader<'_>) -> Option<Entry> {
    let (stat, digest) = codec::known(r)?;
    Some((stat, digest, r.zigzag()?))
}

/// A patch as read, to be applied whole.
struct Patch {
    added: Vec<PathEntry>,
    entries: Vec<(u32, Entry)>,
    churn: (Vec<(Stat, Vec<u32>)>, i64),
    steps: Vec<(u32, StepEntry)>,
    last: Option<LastBuild>,
}

/// Applies the patch at the start of `rest` to `state` and moves `rest`
/// past it: its length in the file, with its own. `None` (`state` and `rest`
/// as they were) if no patch of this state reads there.
pub(super) fn next(state: &mut BuildState, rest: &mut &[u8]) -> Option<u64> {
    let len = usize::try_from(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)).ok()?;
    let end = len.checked_add(8)?;
    let patch = decode(state, rest.get(8..end)?)?;
    *rest = &rest[end..];
    for p in patch.added {
        state.append_path(p);
    }
    for (i, (stat, digest, taken_ns)) in patch.entries {
        let p = &mut state.paths[i as usize];
        (p.stat, p.digest, p.taken_ns) = (stat, digest, taken_ns);
    }
    churn(&mut state.paths, &patch.churn.0, patch.churn.1);
    for (i, step) in patch.steps {
        state.steps[i as usize] = step;
    }
    state.last = patch.last;
    Some(end as u64)
}

fn decode(state: &BuildState, bytes: &[u8]) -> Option<Patch> {
    let mut r = Reader(unseal(bytes)?);
    if r.take(8)? != MAGIC
        || r.var_bytes()? != super::super::fingerprint::tool_version().as_bytes()
        || r.var_len()? != state.paths.len()
        || r.var_len()? != state.steps.len()
    {
        return None;
    }
    let n = r.var_len()?;
    let mut added = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let path = PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(r.var_bytes()?),
        );
        let (stat, digest, taken_ns) = entry(&mut r)?;
        added.push(PathEntry {
            path,
            stat,
            digest,
            taken_ns,
        });
    }
    let paths = state.paths.len() + added.len();
    let n = r.var_len()?;
    let mut entries = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let i = u32::try_from(r.var()?).ok()?;
        if i as usize >= state.paths.len() {
            return None;
        }
        entries.push((i, entry(&mut r)?));
    }
    let n = r.var_len()?;
    let mut churned = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let stat = codec::stat(&mut r)?;
        let count = r.var_len()?;
        let mut at = Vec::with_capacity(count.min(1 << 20));
        let mut i: u32 = 0;
        for _ in 0..count {
            i = i.checked_add(u32::try_from(r.var()?).ok()?)?;
            if i as usize >= paths {
                return None;
            }
            at.push(i);
        }
        churned.push((stat, at));
    }
    let churn = (churned, r.zigzag()?);
    let n = r.var_len()?;
    let mut steps = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let i = u32::try_from(r.var()?).ok()?;
        let step = codec::step(&mut r, paths, |_| None)?;
        if state.steps.get(i as usize)?.id != step.id {
            return None;
        }
        steps.push((i, step));
    }
    let last = last(&mut r, state.last.as_ref(), paths, state.steps.len())?;
    r.is_empty().then_some(Patch {
        added,
        entries,
        churn,
        steps,
        last,
    })
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
