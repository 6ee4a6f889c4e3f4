//! The journal of a no-op record (`noop.log`, beside `noop.bin`): what the
//! incremental builds since the record was last written whole changed in it.
//!
//! A one-file change in a 1,000-service repo re-records some fifty of the
//! record's 26,000 paths and four of its 4,000 steps. Writing the whole record
//! again (1.5 MB) cost more than the check that found the change; the journal
//! holds only the paths (states set, paths dropped or added) and the steps
//! that changed since the record (kilobytes). The record's paths keep their
//! indices and added ones take the next (see [`super::Files`]), so applying
//! it as the record is read renumbers nothing. It is written whole each time
//! (temp file, fsync, rename), holding every change since the record, and
//! names the record it applies to by the record's checksum. So:
//!
//! | on disk                                   | read as                     |
//! |-------------------------------------------|-----------------------------|
//! | record, no journal                        | the record                  |
//! | record, its journal                       | the record with the journal applied |
//! | record, a journal of an earlier record    | the record (a full save was interrupted before it removed the journal) |
//! | record, a damaged journal                 | no record (the full build)  |
//!
//! A record is written whole again (and the journal removed) when a build
//! adds or drops a step, or when the journal would hold more than an eighth
//! of the paths.

use std::path::PathBuf;

use super::encode::{list, put_list, put_state, state};
use super::{NoopRecord, Recorded};
use crate::engine::wire::{put_bytes, put_u64, put_var, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeNJ1";

/// The record file a [`NoopRecord`] was read from, and what changed in it
/// since (its paths by their index, see [`super::Files`]): what `encode`
/// writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub(super) seal: [u8; 32],
    pub(super) key: String,
    pub(super) target: PathBuf,
    pub(super) workspace: Option<[u8; 32]>,
    /// Per path of the record's file: whether its state was set since.
    pub(super) set: Vec<bool>,
    /// Per step: whether it was recorded again since.
    pub(super) steps: Vec<bool>,
}

impl Origin {
    /// The state of path `i` was set (nothing for a path added since).
    pub(super) fn set(&mut self, i: usize) {
        if let Some(t) = self.set.get_mut(i) {
            *t = true;
        }
    }

    pub(super) fn step(&mut self, i: usize) {
        if let Some(t) = self.steps.get_mut(i) {
            *t = true;
        }
    }
}

/// A journal as read: it applies to the record sealed with `seal`, whose
/// paths keep their indices; added paths take the next ones, in order.
pub(super) struct Journal<'a> {
    pub seal: [u8; 32],
    pub written_at_ns: i64,
    /// Paths of the record whose state was set (indices ascending).
    pub set: Vec<(usize, Option<Recorded>)>,
    /// Paths of the record dropped (ascending).
    pub dropped: Vec<usize>,
    pub added: Vec<(&'a [u8], Option<Recorded>)>,
    /// Steps recorded again, by index (ascending): fingerprint, file list.
    pub steps: Vec<(usize, String, Vec<u32>)>,
}

/// The journal of `r` against the record it was read from, `None` if `r` must
/// be written whole: its steps, key, target or workspace are not the
/// record's, or too many paths changed.
pub(super) fn encode(r: &NoopRecord, origin: &Origin) -> Option<Vec<u8>> {
    let base = origin.set.len();
    let same = r.key == origin.key
        && r.target == origin.target
        && r.workspace == origin.workspace
        && r.steps.len() == origin.steps.len()
        && r.files.len() >= base;
    if !same {
        return None;
    }
    let files = &r.files;
    let set: Vec<usize> = (0..base)
        .filter(|&i| origin.set[i] && files.is_live(i))
        .collect();
    let dropped: Vec<usize> = (0..base).filter(|&i| !files.is_live(i)).collect();
    // Added paths are numbered anew, the dropped ones left out.
    let mut renumber = vec![u32::MAX; files.len() - base];
    let mut added = Vec::new();
    for i in (base..files.len()).filter(|&i| files.is_live(i)) {
        renumber[i - base] = (base + added.len()) as u32;
        added.push(i);
    }
    if set.len() + dropped.len() + added.len() > 256 + base / 8 {
        return None;
    }
    let mut out = Vec::with_capacity(64 + 40 * set.len() + 128 * added.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&origin.seal);
    put_u64(&mut out, r.written_at_ns as u64);
    let mut last = (0i64, 0i64);
    put_var(&mut out, set.len() as u64);
    for &i in &set {
        put_var(&mut out, i as u64);
        put_state(&mut out, files.state(i), &mut last);
    }
    put_var(&mut out, dropped.len() as u64);
    for &i in &dropped {
        put_var(&mut out, i as u64);
    }
    put_var(&mut out, added.len() as u64);
    for &i in &added {
        put_bytes(&mut out, files.path(i).as_os_str().as_encoded_bytes());
        put_state(&mut out, files.state(i), &mut last);
    }
    let steps: Vec<usize> = (0..origin.steps.len())
        .filter(|&i| origin.steps[i])
        .collect();
    put_var(&mut out, steps.len() as u64);
    for i in steps {
        let mut l = Vec::with_capacity(r.steps[i].files.len());
        for &f in &r.steps[i].files {
            let f = f as usize;
            l.push(match f.checked_sub(base) {
                None => f as u32,
                Some(k) => *renumber.get(k).filter(|&&n| n != u32::MAX)?,
            });
        }
        put_var(&mut out, i as u64);
        put_bytes(&mut out, r.steps[i].fingerprint.as_bytes());
        put_list(&mut out, &l);
    }
    seal(&mut out);
    Some(out)
}

/// Reads indices written in ascending order; `None` if they are not.
fn ascending(r: &mut Reader<'_>) -> Option<Vec<usize>> {
    let n = usize::try_from(r.var()?).ok()?;
    let mut out: Vec<usize> = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let i = usize::try_from(r.var()?).ok()?;
        if out.last().is_some_and(|&j| j >= i) {
            return None;
        }
        out.push(i);
    }
    Some(out)
}

/// Reads a journal; `None` if it is damaged. Its indices are checked against
/// the record it is applied to (see `encode::Lazy::decode`).
pub(super) fn decode(bytes: &[u8]) -> Option<Journal<'_>> {
    let mut r = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
    let seal = r.take(32)?.try_into().ok()?;
    let written_at_ns = r.u64()? as i64;
    let mut last = (0i64, 0i64);
    let n = usize::try_from(r.var()?).ok()?;
    let mut set: Vec<(usize, Option<Recorded>)> = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let i = usize::try_from(r.var()?).ok()?;
        if set.last().is_some_and(|(j, _)| *j >= i) {
            return None;
        }
        set.push((i, state(&mut r, &mut last)?));
    }
    let dropped = ascending(&mut r)?;
    let n = usize::try_from(r.var()?).ok()?;
    let mut added = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let path = r.bytes()?;
        added.push((path, state(&mut r, &mut last)?));
    }
    let m = usize::try_from(r.var()?).ok()?;
    let mut steps: Vec<(usize, String, Vec<u32>)> = Vec::with_capacity(m.min(1 << 20));
    for _ in 0..m {
        let i = usize::try_from(r.var()?).ok()?;
        if steps.last().is_some_and(|(j, _, _)| *j >= i) {
            return None;
        }
        let fingerprint = std::str::from_utf8(r.bytes()?).ok()?.to_string();
        let files = list(&mut r, usize::MAX)?;
        steps.push((i, fingerprint, files));
    }
    r.is_empty().then_some(Journal {
        seal,
        written_at_ns,
        set,
        dropped,
        added,
        steps,
    })
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
