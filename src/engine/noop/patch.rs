//! The record of an incremental build: the last record with the steps that ran
//! re-recorded in place — paths they no longer consult dropped, new ones
//! added at the end (see [`super::Files`]) — without sorting or re-stat'ing
//! the paths of the thousands of steps that were reused. It is saved as a
//! journal of the record (see `super::journal`).

use std::path::PathBuf;

use super::{now_ns, seen_now, NoopRecord, Recorded, Seen, StepMessage};
use crate::engine::statcache::RACY_WINDOW_NS;

/// A path as a step that ran saw it.
type Entry = (PathBuf, Option<Recorded>);

/// A step that ran in an incremental build, and what it consulted.
#[derive(Clone, Debug)]
pub struct Ran {
    /// Its id and new fingerprint (`files` is ignored).
    pub step: StepMessage,
    pub consulted: Vec<(PathBuf, Seen)>,
}

/// Whether two recordings describe the same state of a path.
fn same(a: &Option<Recorded>, b: &Option<Recorded>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.stat.matches(&b.stat),
        _ => false,
    }
}

impl NoopRecord {
    /// This record (the last build's) after an incremental build in which the
    /// steps `ran` ran (every other step of the record was reused). Reused
    /// steps keep what they had; their paths are not stat'ed again. The
    /// workspace files the build writes last are recorded by
    /// [`NoopRecord::own_written`].
    ///
    /// `None` where [`NoopRecord::capture`] would give none (a path a step read
    /// changed while the build ran), and also when a step that ran saw a path
    /// that a reused step or the workspace consulted in another state than the
    /// one recorded for it: the reused step's result was made under the old
    /// state, so the next build must not take it as current.
    pub fn patched(mut self, ran: Vec<Ran>, started_ns: i64) -> Option<Self> {
        use rayon::prelude::*;
        let written_at_ns = now_ns();
        let n = self.files.len();
        let step_of = |s: &StepMessage, steps: &[StepMessage]| {
            steps
                .binary_search_by(|t| (&t.kind, &t.unit).cmp(&(&s.kind, &s.unit)))
                .ok()
        };
        // Who consulted each recorded path before this build.
        let (ran_steps, consulted): (Vec<StepMessage>, Vec<Vec<(PathBuf, Seen)>>) =
            ran.into_iter().map(|r| (r.step, r.consulted)).unzip();
        let mut ran_at: Vec<Option<usize>> =
            ran_steps.iter().map(|s| step_of(s, &self.steps)).collect();
        let mut reran = vec![false; self.steps.len()];
        for i in ran_at.iter().flatten() {
            reran[*i] = true;
        }
        let mut owned = vec![false; n];
        let mut kept = vec![false; n];
        for (i, s) in self.steps.iter().enumerate() {
            for &f in &s.files {
                owned[f as usize] = true;
                kept[f as usize] |= !reran[i];
            }
        }
        let global: Vec<bool> = owned.iter().map(|o| !o).collect();
        // What the steps that ran consulted, stat'ed now: in parallel only
        // when there are many, since the build's own saving (fsyncs on the
        // shared pool) may hold the pool's threads meanwhile.
        let stat_all = |paths: Vec<(PathBuf, Seen)>| -> Option<Vec<Entry>> {
            paths
                .into_iter()
                .map(|(p, seen)| {
                    let rec = seen_now(&p, seen, started_ns, written_at_ns)?;
                    Some((p, rec))
                })
                .collect()
        };
        let many = consulted.iter().map(Vec::len).sum::<usize>() > 2048;
        let seen: Option<Vec<Vec<Entry>>> = if many {
            consulted.into_par_iter().map(stat_all).collect()
        } else {
            consulted.into_iter().map(stat_all).collect()
        };
        let seen = seen?;
        // Per index: whether a step that ran recorded it in this build. A
        // path seen twice must be seen alike.
        let mut touched = vec![false; n];
        let mut lists: Vec<Vec<u32>> = Vec::with_capacity(seen.len());
        for paths in seen {
            let mut list = Vec::with_capacity(paths.len());
            for (path, rec) in paths {
                let i = match self.files.find(&path) {
                    Some(i) => {
                        let held = kept.get(i) == Some(&true) || global.get(i) == Some(&true);
                        if held || touched[i] {
                            if !same(self.files.state(i), &rec) {
                                return None;
                            }
                        } else {
                            self.files.set(i, rec);
                            touched[i] = true;
                        }
                        i
                    }
                    None => {
                        touched.push(true);
                        self.files.push(path.as_os_str().as_encoded_bytes(), rec)
                    }
                };
                list.push(i as u32);
            }
            list.sort_unstable();
            list.dedup();
            lists.push(list);
        }
        if let Some(origin) = self.origin.as_mut() {
            for i in (0..n).filter(|&i| touched[i]) {
                origin.set(i);
            }
        }
        let had_steps = self.steps.len();
        // New steps (none on the incremental path, but be exact).
        for (step, at) in ran_steps.iter().zip(ran_at.iter_mut()) {
            if at.is_none() {
                *at = Some(self.steps.len());
                self.steps.push(step.clone());
            }
        }
        for ((step, at), list) in ran_steps.into_iter().zip(&ran_at).zip(lists) {
            if let Some(i) = *at {
                self.steps[i].fingerprint = step.fingerprint;
                self.steps[i].files = list;
                if let Some(origin) = self.origin.as_mut() {
                    origin.step(i);
                }
            }
        }
        if self.steps.len() != had_steps {
            // A journal keeps the record's steps.
            self.origin = None;
            self.steps
                .sort_by(|a, b| (&a.kind, &a.unit).cmp(&(&b.kind, &b.unit)));
        }
        // Drop the paths no step and not the workspace consults any more.
        let mut keep: Vec<bool> = global;
        keep.resize(self.files.len(), false);
        for s in &self.steps {
            for &f in &s.files {
                keep[f as usize] = true;
            }
        }
        for (i, keep) in keep.into_iter().enumerate() {
            if !keep && self.files.is_live(i) {
                self.files.drop_path(i);
            }
        }
        self.written_at_ns = written_at_ns;
        Some(self)
    }

    /// Records the workspace files the build wrote last (`scone.lock`, the
    /// root, whose listing changes with it) as they are now: the rest of the
    /// record is made while `scone.lock` is saved. `None` if one is not in the
    /// record (every record has them).
    ///
    /// The record's time moves to now if that is at most half the racy
    /// window later: a path recorded at the earlier time with an mtime within
    /// one timestamp tick of it is then still racy at the later one (ticks are
    /// at most 10 ms), so a same-tick edit is still caught by its content
    /// digest. Otherwise the earlier time stays, and the paths written since
    /// are compared by content at each check.
    pub fn own_written(&mut self, own: &[PathBuf], started_ns: i64) -> Option<()> {
        let now = now_ns();
        if now.saturating_sub(self.written_at_ns) <= RACY_WINDOW_NS / 2 {
            self.written_at_ns = now;
        }
        for path in own {
            let i = self.files.find(path)?;
            let recorded = seen_now(path, Seen::Own, started_ns, self.written_at_ns)?;
            self.files.set(i, recorded);
            if let Some(origin) = self.origin.as_mut() {
                origin.set(i);
            }
        }
        Some(())
    }
}
