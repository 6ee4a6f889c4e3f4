//! The journal of a no-op record (`noop.log`, beside `noop.bin`): what the
//! incremental builds since the record was last written whole changed in it.
//!
//! A one-file change in a 1,000-service repo re-records some fifty of the
//! record's 26,000 paths and four of its 4,000 steps. Writing the whole record
//! again (1.5 MB) cost more than the check that found the change; the journal
//! holds only the paths (states set, paths added or dropped) and the steps
//! that changed since the record (kilobytes); it is applied as the record is
//! read, at no cost worth measuring. It is written whole each time
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::encode::{list, put_list, put_state, state};
use super::{NoopRecord, Recorded};
use crate::engine::wire::{put_bytes, put_u64, put_var, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeNJ1";

/// What a journal does to one path of its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Records this state (the path is added if the record does not have it).
    Set(Option<Recorded>),
    /// Drops the path (nothing if the record does not have it).
    Drop,
}

/// The record file a [`NoopRecord`] was read from, and every change made to
/// it since: what [`encode`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub(super) seal: [u8; 32],
    pub(super) key: String,
    pub(super) target: PathBuf,
    pub(super) workspace: Option<[u8; 32]>,
    /// By path bytes.
    pub(super) ops: BTreeMap<Vec<u8>, Op>,
    /// Per step: whether it was recorded again.
    pub(super) steps: Vec<bool>,
}

impl Origin {
    pub(super) fn set(&mut self, path: &Path, state: Option<Recorded>) {
        self.ops
            .insert(path.as_os_str().as_encoded_bytes().to_vec(), Op::Set(state));
    }

    pub(super) fn drop_path(&mut self, path: &Path) {
        self.ops
            .insert(path.as_os_str().as_encoded_bytes().to_vec(), Op::Drop);
    }

    pub(super) fn step(&mut self, i: usize) {
        if let Some(t) = self.steps.get_mut(i) {
            *t = true;
        }
    }
}

/// A journal as read: it applies to the record sealed with `seal`.
pub(super) struct Journal<'a> {
    pub seal: [u8; 32],
    pub written_at_ns: i64,
    /// Sorted by path bytes, each path once.
    pub ops: Vec<(&'a [u8], Op)>,
    /// Steps recorded again, by index (sorted, each once): fingerprint and
    /// file list (indices into the record with the journal applied).
    pub steps: Vec<(usize, String, Vec<u32>)>,
}

/// The journal of `r` against the record it was read from, `None` if `r` must
/// be written whole: its steps, key, target or workspace are not the
/// record's, or too many paths changed.
pub(super) fn encode(r: &NoopRecord, origin: &Origin) -> Option<Vec<u8>> {
    let same = r.key == origin.key
        && r.target == origin.target
        && r.workspace == origin.workspace
        && r.steps.len() == origin.steps.len();
    if !same || origin.ops.len() > 256 + r.files.len() / 8 {
        return None;
    }
    let mut out = Vec::with_capacity(64 + 128 * origin.ops.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&origin.seal);
    put_u64(&mut out, r.written_at_ns as u64);
    put_var(&mut out, origin.ops.len() as u64);
    let mut last = (0i64, 0i64);
    for (path, op) in &origin.ops {
        put_bytes(&mut out, path);
        match op {
            Op::Drop => out.push(0),
            Op::Set(state) => {
                out.push(1);
                put_state(&mut out, state, &mut last);
            }
        }
    }
    let steps: Vec<usize> = (0..origin.steps.len())
        .filter(|&i| origin.steps[i])
        .collect();
    put_var(&mut out, steps.len() as u64);
    for i in steps {
        put_var(&mut out, i as u64);
        put_bytes(&mut out, r.steps[i].fingerprint.as_bytes());
        put_list(&mut out, &r.steps[i].files);
    }
    seal(&mut out);
    Some(out)
}

/// Reads a journal; `None` if it is damaged. Its step lists are checked
/// against the record it is applied to (see `encode::Lazy::decode`).
pub(super) fn decode(bytes: &[u8]) -> Option<Journal<'_>> {
    let mut r = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
    let seal = r.take(32)?.try_into().ok()?;
    let written_at_ns = r.u64()? as i64;
    let n = usize::try_from(r.var()?).ok()?;
    let mut ops: Vec<(&[u8], Op)> = Vec::with_capacity(n.min(1 << 20));
    let mut last = (0i64, 0i64);
    for _ in 0..n {
        let path = r.bytes()?;
        if ops.last().is_some_and(|(p, _)| *p >= path) {
            return None;
        }
        let op = match r.take(1)? {
            [0] => Op::Drop,
            [1] => Op::Set(state(&mut r, &mut last)?),
            _ => return None,
        };
        ops.push((path, op));
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
        ops,
        steps,
    })
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
