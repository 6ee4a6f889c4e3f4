//! The next state written whole: [`assemble`]. A build that removes or adds
//! steps, or whose patches outgrew the head ([`super::patch`]), lays out the
//! next state anew: its path table in path order, without the paths no step
//! and no load uses any more, its steps in id order.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::super::id::StepId;
use super::next::{hold_records, refresh_churned, Made};
use super::{path_key, BuildState, Consult, LastBuild, PathEntry, RecordAt, StepEntry, Watched};

/// The next state, whole: the steps that ran, with what they consulted; the
/// last state's steps this build kept (reused, or not planned by a build of
/// part of the workspace), carried over as they were, their paths
/// renumbered; and what the load read. A path's entry is the newest this
/// build knows; the paths no step and no load uses any more are left out.
pub(super) fn assemble(
    made: Made,
    previous: &mut Arc<BuildState>,
    churned: &HashSet<u64>,
    store: &Path,
) -> BuildState {
    let Made {
        recorded_ns,
        kept,
        ran,
        learnt,
        watched: watched_raw,
        planned,
        last: load,
    } = made;
    // The path table: the last one's paths the kept steps use, and the
    // paths new in this build, merged in order.
    let mut old_used = vec![false; previous.paths.len()];
    for &i in &kept {
        for c in &previous.steps[i].consults {
            old_used[c.path as usize] = true;
        }
    }
    let mut brand_new: Vec<&Path> = Vec::new();
    let candidates = ran
        .iter()
        .flat_map(|r| r.consults.iter().map(|(path, ..)| path.as_path()))
        .chain(watched_raw.iter().map(|(path, ..)| path.as_path()));
    for path in candidates {
        match previous.index_of(path_key(path)) {
            Some(i) => old_used[i as usize] = true,
            None => brand_new.push(path),
        }
    }
    brand_new.sort_unstable_by(|a, b| path_key(a).cmp(path_key(b)));
    brand_new.dedup();
    let blank = |path: &Path| PathEntry {
        path: path.to_path_buf(),
        stat: None,
        digest: None,
        taken_ns: recorded_ns,
    };
    let mut paths: Vec<PathEntry> = Vec::with_capacity(previous.paths.len() + brand_new.len());
    let mut remap = vec![u32::MAX; previous.paths.len()];
    // The last state's paths in path order (patches append theirs at the
    // end of its table).
    let order = previous.path_order();
    let nth = |o: usize| order.as_ref().map_or(o, |order| order[o] as usize);
    let mut learnt = learnt.into_iter().peekable();
    // The last state's entries are moved where this build holds the
    // only reference to it (it does once the store is closed), else
    // copied: at 10,000 services these are a million paths.
    let mut owned = Arc::get_mut(previous).map(|p| std::mem::take(&mut p.paths));
    let old_len = owned.as_ref().map_or(previous.paths.len(), Vec::len);
    fn old_at<'a>(
        owned: &'a Option<Vec<PathEntry>>,
        previous: &'a BuildState,
        i: usize,
    ) -> Option<&'a PathEntry> {
        match owned {
            Some(p) => p.get(i),
            None => previous.paths.get(i),
        }
    }
    let (mut o, mut n) = (0, 0);
    loop {
        while o < old_len && !old_used[nth(o)] {
            o += 1;
        }
        let old = (o < old_len).then(|| nth(o));
        let (take_old, path) = match (
            old.and_then(|i| old_at(&owned, previous, i)),
            brand_new.get(n),
        ) {
            (None, None) => break,
            (Some(old), None) => (true, old.path.as_path()),
            (Some(old), Some(new)) if path_key(&old.path) < path_key(new) => {
                (true, old.path.as_path())
            }
            (_, Some(new)) => (false, *new),
        };
        while learnt
            .next_if(|(p, _)| path_key(p) < path_key(path))
            .is_some()
        {}
        let known = learnt.next_if(|(p, _)| path_key(p) == path_key(path));
        let entry = match (known, take_old, old) {
            (Some((_, entry)), ..) => entry,
            (None, false, _) | (None, true, None) => blank(path),
            (None, true, Some(i)) => match owned.as_mut() {
                Some(p) => std::mem::take(&mut p[i]),
                None => previous.paths[i].clone(),
            },
        };
        if let (true, Some(i)) = (take_old, old) {
            remap[i] = paths.len() as u32;
            o += 1;
        } else {
            n += 1;
        }
        paths.push(entry);
    }
    drop(learnt);
    // Publishing linked and unlinked shared inodes (a base layer is in
    // every image): their ctime moved under every path. An entry whose
    // stat differs from now in ctime alone keeps its digest.
    if !churned.is_empty() {
        refresh_churned(&mut paths, churned, recorded_ns);
    }
    let at = |path: &Path| -> Option<u32> {
        paths
            .binary_search_by(|e| path_key(&e.path).cmp(path_key(path)))
            .ok()
            .map(|i| i as u32)
    };

    // The steps, in id order: kept ones as they were, renumbered, their
    // records where they are in the log; a step that ran has its record
    // added to the log unless the log has those bytes for it already.
    let mut records = super::Records::in_log(store.join(super::records::FILE));
    let held: Vec<RecordAt> = hold_records(&ran, previous)
        .into_iter()
        .zip(&ran)
        .map(|(old, r)| old.unwrap_or_else(|| records.add(&r.record)))
        .collect();
    // The kept steps are moved out of the last state where this build
    // holds the only reference to it, else copied (at 10,000 services
    // 60,000 steps, four allocations each); renumbered either way. A
    // parsed record moves with its step: the same bytes, in the same log.
    let mut steps: Vec<StepEntry> = Vec::with_capacity(kept.len() + ran.len());
    let renumber = |consults: &mut [Consult]| {
        for c in consults {
            c.path = remap[c.path as usize];
        }
    };
    match Arc::get_mut(previous) {
        Some(last) => {
            let mut want = kept.iter().copied().peekable();
            for (i, mut old) in std::mem::take(&mut last.steps).into_iter().enumerate() {
                if want.next_if_eq(&i).is_some() {
                    renumber(&mut old.consults);
                    steps.push(old);
                }
            }
        }
        None => {
            for &i in &kept {
                let old = &previous.steps[i];
                let mut consults = old.consults.clone();
                renumber(&mut consults);
                steps.push(StepEntry {
                    id: old.id.clone(),
                    fingerprint: old.fingerprint.clone(),
                    output: Arc::clone(&old.output),
                    record: old.record,
                    parsed: OnceLock::new(),
                    consults,
                });
            }
        }
    }
    for (r, record) in ran.into_iter().zip(held) {
        let consults = r
            .consults
            .iter()
            .filter_map(|(path, expect, watched)| {
                Some(Consult {
                    path: at(path)?,
                    expect: *expect,
                    watched: *watched,
                })
            })
            .collect();
        steps.push(r.entry(record, consults));
    }
    steps.sort_by(|a, b| a.id.cmp(&b.id));
    let position: HashMap<&StepId, u32> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.id, i as u32))
        .collect();
    let last = load.map(|load| LastBuild {
        key: load.key,
        started_ns: load.started_ns,
        watched: watched_raw
            .into_iter()
            .filter_map(|(path, watch, stat, digest, taken_ns)| {
                Some(Watched {
                    path: at(&path)?,
                    watch,
                    stat,
                    digest,
                    taken_ns,
                })
            })
            .collect(),
        steps: planned
            .iter()
            .filter_map(|id| position.get(id).copied())
            .collect(),
        warnings: load.warnings,
        plan: load.plan,
    });
    // A planned step with no entry (it failed, or its record would not
    // encode): no replay.
    let last = last.filter(|l| l.steps.len() == planned.len());
    drop(position);
    BuildState {
        records,
        paths,
        steps,
        last,
        ..BuildState::default()
    }
}
