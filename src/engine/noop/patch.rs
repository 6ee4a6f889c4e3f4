//! The record of an incremental build: the last record with the steps that ran
//! re-recorded, in place (and so saved as a journal, see `super::journal`)
//! unless the set of paths changed, without sorting or re-stat'ing the paths
//! of the thousands of steps that were reused.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{now_ns, seen_now, Files, NoopRecord, Recorded, Seen, StepMessage};
use crate::engine::statcache::RACY_WINDOW_NS;

/// A recorded path.
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
        // What the steps that ran consulted, stat'ed now (in parallel).
        let seen: Option<Vec<Vec<Entry>>> = consulted
            .into_par_iter()
            .map(|paths| {
                paths
                    .into_iter()
                    .map(|(p, seen)| {
                        let rec = seen_now(&p, seen, started_ns, written_at_ns)?;
                        Some((p, rec))
                    })
                    .collect()
            })
            .collect();
        let seen = seen?;
        let mut added: Vec<Entry> = Vec::new();
        let mut added_at: HashMap<PathBuf, usize> = HashMap::new();
        let mut touched = vec![false; n];
        let mut lists: Vec<Vec<usize>> = Vec::with_capacity(seen.len());
        for paths in seen {
            let mut list = Vec::with_capacity(paths.len());
            for (path, rec) in paths {
                if let Some(i) = self.files.find(&path) {
                    let old = self.files.state(i);
                    if kept[i] || global[i] || touched[i] {
                        if !same(old, &rec) {
                            return None;
                        }
                    } else {
                        self.files.set(i, rec);
                        touched[i] = true;
                    }
                    list.push(i);
                } else if let Some(&k) = added_at.get(&path) {
                    if !same(&added[k].1, &rec) {
                        return None;
                    }
                    list.push(n + k);
                } else {
                    added_at.insert(path.clone(), added.len());
                    list.push(n + added.len());
                    added.push((path, rec));
                }
            }
            lists.push(list);
        }
        if let Some(origin) = self.origin.as_mut() {
            for i in (0..n).filter(|&i| touched[i]) {
                origin.set(self.files.path(i), *self.files.state(i));
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
        for (step, at) in ran_steps.into_iter().zip(&ran_at) {
            if let Some(i) = *at {
                self.steps[i].fingerprint = step.fingerprint;
                if let Some(origin) = self.origin.as_mut() {
                    origin.step(i);
                }
            }
        }
        if self.steps.len() != had_steps {
            // A journal keeps the record's steps.
            self.origin = None;
        }
        // Keep the paths still consulted by a step or the workspace's.
        let mut keep: Vec<bool> = global;
        keep.resize(n + added.len(), false);
        for (i, s) in self.steps.iter().enumerate() {
            if i < reran.len() && !reran[i] {
                for &f in &s.files {
                    keep[f as usize] = true;
                }
            }
        }
        for list in &lists {
            for &f in list {
                keep[f] = true;
            }
        }
        if added.is_empty() && self.steps.len() == had_steps && keep.iter().all(|&k| k) {
            // The same paths and steps: the steps that ran get their lists in
            // place, and the record can be saved as a journal.
            for (list, at) in lists.into_iter().zip(&ran_at) {
                if let Some(i) = *at {
                    let mut l: Vec<u32> = list.into_iter().map(|f| f as u32).collect();
                    l.sort_unstable();
                    l.dedup();
                    self.steps[i].files = l;
                }
            }
            self.written_at_ns = written_at_ns;
            return Some(self);
        }
        Some(self.merged(added, &keep, lists, &ran_at, &reran, written_at_ns))
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
                origin.set(path, recorded);
            }
        }
        Some(())
    }

    /// Merges the `added` paths into the sorted files, drops the ones no one
    /// keeps, and renumbers every step's list (the steps that ran get `lists`).
    fn merged(
        mut self,
        added: Vec<Entry>,
        keep: &[bool],
        lists: Vec<Vec<usize>>,
        ran_at: &[Option<usize>],
        reran: &[bool],
        written_at_ns: i64,
    ) -> NoopRecord {
        let n = self.files.len();
        let bytes = |p: &PathBuf| p.as_os_str().as_encoded_bytes().to_vec();
        let mut order: Vec<usize> = (0..added.len()).collect();
        order.sort_by_cached_key(|&k| bytes(&added[k].0));
        let mut map = vec![u32::MAX; n + added.len()];
        let old = std::mem::take(&mut self.files);
        let mut files = Files::with_capacity(n + added.len(), 0);
        let (mut i, mut new) = (0, order.into_iter().peekable());
        loop {
            let take_old = match (i < n, new.peek()) {
                (false, None) => break,
                (true, None) => true,
                (false, Some(_)) => false,
                (true, Some(&k)) => {
                    old.path(i).as_os_str().as_encoded_bytes()
                        < added[k].0.as_os_str().as_encoded_bytes()
                }
            };
            let (index, path, state) = if take_old {
                i += 1;
                (i - 1, old.path(i - 1), *old.state(i - 1))
            } else {
                let Some(k) = new.next() else { break };
                (n + k, added[k].0.as_path(), added[k].1)
            };
            if keep[index] {
                map[index] = files.len() as u32;
                files.push(path.as_os_str().as_encoded_bytes(), state);
                if index >= n {
                    if let Some(origin) = self.origin.as_mut() {
                        origin.set(path, state);
                    }
                }
            } else if let Some(origin) = self.origin.as_mut() {
                origin.drop_path(path);
            }
        }
        for (i, s) in self.steps.iter_mut().enumerate() {
            if i < reran.len() && !reran[i] {
                for f in &mut s.files {
                    *f = map[*f as usize];
                }
            }
        }
        for (list, at) in lists.into_iter().zip(ran_at) {
            if let Some(i) = *at {
                let mut l: Vec<u32> = list.into_iter().map(|f| map[f]).collect();
                l.sort_unstable();
                l.dedup();
                self.steps[i].files = l;
            }
        }
        self.steps
            .sort_by(|a, b| (&a.kind, &a.unit).cmp(&(&b.kind, &b.unit)));
        self.files = files;
        self.written_at_ns = written_at_ns;
        self
    }
}
