//! The record of an incremental build: the last record with the steps that ran
//! re-recorded, in time linear in the record, without sorting or re-stat'ing
//! the paths of the thousands of steps that were reused.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{now_ns, seen_now, NoopRecord, Recorded, Seen, StepMessage};
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
        let find = |path: &std::path::Path, files: &[Entry]| {
            let key = path.as_os_str().as_encoded_bytes();
            files
                .binary_search_by(|(p, _)| p.as_os_str().as_encoded_bytes().cmp(key))
                .ok()
        };
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
                if let Some(i) = find(&path, &self.files) {
                    let old = &self.files[i].1;
                    if kept[i] || global[i] || touched[i] {
                        if !same(old, &rec) {
                            return None;
                        }
                    } else {
                        self.files[i].1 = rec;
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
            }
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
            let key = path.as_os_str().as_encoded_bytes();
            let i = self
                .files
                .binary_search_by(|(p, _)| p.as_os_str().as_encoded_bytes().cmp(key))
                .ok()?;
            self.files[i].1 = seen_now(path, Seen::Own, started_ns, self.written_at_ns)?;
        }
        Some(())
    }

    /// Merges the `added` paths into the sorted files, drops the ones no one
    /// keeps, and renumbers every step's list (the steps that ran get `lists`).
    fn merged(
        mut self,
        mut added: Vec<Entry>,
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
        let mut files = Vec::with_capacity(n + added.len());
        let mut old = std::mem::take(&mut self.files)
            .into_iter()
            .enumerate()
            .peekable();
        let mut new = order.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((_, (p, _))), Some(&k)) => {
                    p.as_os_str().as_encoded_bytes() < added[k].0.as_os_str().as_encoded_bytes()
                }
            };
            let (index, entry) = if take_old {
                let Some((i, e)) = old.next() else { break };
                (i, e)
            } else {
                let Some(k) = new.next() else { break };
                (n + k, (std::mem::take(&mut added[k].0), added[k].1))
            };
            if keep[index] {
                map[index] = files.len() as u32;
                files.push(entry);
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
