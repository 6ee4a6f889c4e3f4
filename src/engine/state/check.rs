//! [`BuildState::check`]: what changed since the last build, found by one
//! `lstat` per path it consulted (in parallel), hashing nothing.

use super::super::stat::{content_digest, listing_digest, stat_all, Stat};
use super::{BuildState, Consult, Digest, Watched};
use crate::watch::Watch;

/// The `lstat`s a check took (after the build started), by path-table index:
/// the load that follows uses them rather than taking them again.
#[derive(Debug, Default)]
pub struct Seen(Vec<Option<Option<Stat>>>);

impl Seen {
    /// The stat the check took of `path` (`Some(None)`: it did not exist),
    /// `None` if it took none.
    pub fn get(&self, state: &BuildState, path: &std::path::Path) -> Option<Option<Stat>> {
        let i = state.index_of(path.as_os_str().as_encoded_bytes())?;
        self.at(i)
    }

    /// The stat the check took of the path at place `i` of the path table.
    pub(super) fn at(&self, i: u32) -> Option<Option<Stat>> {
        self.0.get(i as usize).copied().flatten()
    }
}

/// The answer of [`BuildState::check`]. The reasons are what `-v` and
/// `--explain` print.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing the last build consulted changed: replay it.
    Fresh,
    /// The workspace is the same; per step of [`BuildState::steps`], whether
    /// a path it consulted changed (`true`: dirty). Steps the last build did
    /// not plan are dirty. `prune`: an output folder changed (see
    /// [`Watch::Output`]).
    Dirty {
        dirty: Vec<bool>,
        reason: String,
        prune: bool,
        seen: Seen,
    },
    /// The workspace must be loaded again (or there is no usable last build).
    Full { reason: String },
}

pub(super) fn check(
    state: &BuildState,
    key: &Digest,
    own: &[&std::ffi::OsStr],
    taken: Option<super::fresh::Taken>,
) -> Verdict {
    let full = |reason: String| Verdict::Full { reason };
    let Some(last) = &state.last else {
        return full(if state.unread {
            "the build state was written by another version of scone, or is damaged".into()
        } else {
            "no earlier build in this target folder to compare with (none finished, or the last one failed or applied)".into()
        });
    };
    if &last.key != key {
        return full(
            "the command line, the folder or the environment differs from the last build's".into(),
        );
    }
    // Every path to look at, once.
    let mut wanted = vec![false; state.paths.len()];
    for w in &last.watched {
        wanted[w.path as usize] = true;
    }
    for &s in &last.steps {
        for c in state.steps[s as usize]
            .consults
            .iter()
            .filter(|c| c.watched)
        {
            wanted[c.path as usize] = true;
        }
    }
    let order: Vec<usize> = (0..state.paths.len()).filter(|&i| wanted[i]).collect();
    // Taken once: by the look at the fresh list, if it listed these paths.
    let listed = |j: usize| state.paths[order[j]].path.as_os_str().as_encoded_bytes();
    let stats = match taken.and_then(|t| t.stats_of(order.len(), listed)) {
        Some(stats) => stats,
        None => {
            let paths: Vec<&std::path::Path> = order
                .iter()
                .map(|&i| state.paths[i].path.as_path())
                .collect();
            vec![(stat_all(&paths), false)]
        }
    };
    let mut now: Vec<Option<Option<Stat>>> = vec![None; state.paths.len()];
    // The paths the look found as listed: the list's rule is this check's
    // own (`fresh::certify`), so what the look hashed or listed to show it
    // (a racy `scone.lock`, the root) is not looked at again.
    let mut held = vec![false; state.paths.len()];
    let taken = stats
        .into_iter()
        .flat_map(|(stats, held)| stats.into_iter().map(move |stat| (stat, held)));
    for (&i, (stat, as_listed)) in order.iter().zip(taken) {
        now[i] = Some(stat);
        held[i] = as_listed;
    }
    let now_of = |i: u32| now[i as usize].flatten();
    let mut prune = None;
    for w in &last.watched {
        if held[w.path as usize] || watched_holds(w, now_of(w.path), state, own) {
            continue;
        }
        let path = &state.paths[w.path as usize].path;
        let what = how_changed(path, w.stat, w.taken_ns, now_of(w.path));
        if w.watch != Watch::Output {
            return full(what);
        }
        prune.get_or_insert(what);
    }
    // What each consulted path holds now, where the path table still knows
    // it; a folder whose stat moved is listed again (cheap, and published
    // folders are written late in a build, often within the racy window).
    let digest_now = |i: u32| -> Option<Option<Digest>> {
        let entry = &state.paths[i as usize];
        let stat = now_of(i);
        match stat {
            None => Some(None),
            Some(s) => match entry.digest_if(Some(&s)) {
                Some(d) => Some(Some(d)),
                None if s.is_dir() => Some(Some(listing_digest(&entry.path, |_| false)?)),
                None => None,
            },
        }
    };
    // Each planned step's first changed consult, on every core (the check
    // runs after the look, when the pool is idle).
    use rayon::prelude::*;
    let changed: Vec<Option<&Consult>> = last
        .steps
        .par_iter()
        .map(|&s| {
            state.steps[s as usize]
                .consults
                .iter()
                .filter(|c| c.watched)
                .find(|c| digest_now(c.path) != Some(c.expect))
        })
        .collect();
    let mut dirty = vec![true; state.steps.len()];
    let mut reason = None;
    for (&s, changed) in last.steps.iter().zip(changed) {
        dirty[s as usize] = changed.is_some();
        if let (None, Some(c)) = (&reason, changed) {
            let entry = &state.paths[c.path as usize];
            let step = &state.steps[s as usize].id;
            let what = how_changed(&entry.path, entry.stat, entry.taken_ns, now_of(c.path));
            reason = Some(format!("{what} ({step})"));
        }
    }
    let must_prune = prune.is_some();
    match reason.or(prune) {
        None => Verdict::Fresh,
        Some(reason) => Verdict::Dirty {
            dirty,
            reason,
            prune: must_prune,
            seen: Seen(now),
        },
    }
}

/// Why `path` is looked at again, for `-v` and `--explain`: its stat moved
/// (it changed), or it is the one the last build took, but that build took
/// it just after the path was written (racy: another write in the same tick
/// would not show), so it may have changed.
fn how_changed(
    path: &std::path::Path,
    then: Option<Stat>,
    taken_ns: i64,
    now: Option<Stat>,
) -> String {
    if then.is_some_and(|t| Some(t) == now && t.is_racy(taken_ns)) {
        format!(
            "{} may have changed: the last build looked at it just after it was written, so it is read again",
            path.display()
        )
    } else {
        format!("{} changed", path.display())
    }
}

/// Whether a path the last build's load read is still what that build saw.
/// `own`: the names scone writes into the root itself (see [`is_own_name`]).
fn watched_holds(
    w: &Watched,
    now: Option<Stat>,
    state: &BuildState,
    own: &[&std::ffi::OsStr],
) -> bool {
    let path = &state.paths[w.path as usize].path;
    let (old, now) = match (w.stat, now) {
        (None, None) => return true,
        (Some(old), Some(now)) => (old, now),
        _ => return false,
    };
    if w.watch == Watch::Kind {
        // Only the type (and a link's target) counts: an edited file is the
        // same kind. (One replaced by a link between validation and the
        // observation is refused by the step that reads it: see `CopyStep`.)
        if old.file_type() != now.file_type() {
            return false;
        }
        return !now.is_symlink()
            || old == now
            || (w.digest.is_some() && content_digest(path, &now) == w.digest);
    }
    if old == now && !old.is_racy(w.taken_ns) {
        return true;
    }
    // What scone wrote itself (`scone.lock`, the root after `scone.lock`, an
    // output folder it could not pin), late in the build: compared by what it
    // holds (a folder: the names, but scone's own in the root). A pinned
    // output folder has no digest: its stat moved, so something was written
    // into it.
    match (w.digest, now.is_dir()) {
        (Some(d), true) => listing_digest(path, |n| is_own_name(n, own)) == Some(d),
        (Some(d), false) => content_digest(path, &now) == Some(d),
        (None, _) => false,
    }
}

/// Whether `name`, in the workspace root, is scone's own: `scone.lock`, its
/// temporary siblings, or one of `own` (the target folder's name).
pub fn is_own_name(name: &std::ffi::OsStr, own: &[&std::ffi::OsStr]) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes == b"scone.lock" || bytes.starts_with(b".scone.lock.tmp-") || own.contains(&name)
}
