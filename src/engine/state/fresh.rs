//! The fresh list: the last part of the state file, all a no-op build
//! reads. ninja decides "nothing to do" from a flat log of paths and their
//! times; this is the same for scone: the paths whose `lstat`s, if each is
//! still the one listed, make [`super::BuildState::check`] answer
//! [`super::Verdict::Fresh`] — so the check need not decode the rest.
//!
//! It is written only when that holds for the state being written
//! ([`certify`]): every path the check would look at is listed once with one
//! stat (or as absent); none of them was racy when its stat was taken (the
//! check would hash it again), and every consulted file's known digest is the
//! one its step depends on. What scone wrote itself late in the build
//! (`scone.lock`, the root; an output folder that could not be pinned) is
//! listed with its digest, and compared by it when its stat moved or was
//! racy, as the check compares it. Otherwise the list is written empty and
//! *uncertified*, and a build decodes the whole state as before. So the
//! list adds no rule of its own: it is the check's rule evaluated when the
//! state is written, for the case where nothing it lists changed.
//!
//! ```text
//! "sconeFR1", scone's version, certified (0 | 1), and if 1:
//! key, planned step count, stored warnings,
//! paths: in chunks of 512 (sorted; each looked at by one thread): the
//!        number of chunks, then each as a byte string: its count, then per
//!        path the length it shares with the one before in the chunk, the
//!        rest, its stat as a byte string (the state's stat encoding; empty:
//!        absent), then 0 (the stat alone), or 1 (not racy) or 2 (racy)
//!        and the digest of what scone wrote there
//! checksum
//! ```

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;

use super::super::stat::{content_digest, listing_digest, lstat_from, Stat};
use super::super::wire::{put_var, put_var_bytes, seal, unseal, Reader};
use super::check::is_own_name;
use super::{BuildState, Digest, PathEntry};
use crate::watch::Watch;

const MAGIC: &[u8; 8] = b"sconeFR1";

/// What a replayed no-op needs from the last build, when its list holds.
#[derive(Debug, PartialEq, Eq)]
pub struct FreshBuild {
    /// How many steps the last build planned.
    pub steps: usize,
    /// Its load's warnings, as stored (see `cli::output::stored_warnings`).
    pub warnings: Vec<String>,
}

/// Per path index of `state.paths`: the stat the check needs it to have
/// (`Some(None)`: absent), or `None` if the check does not look at it. `None`
/// as a whole if a path's stat alone cannot show that it holds.
fn certify(state: &BuildState) -> Option<Vec<Option<Need>>> {
    let last = state.last.as_ref()?;
    let mut need: Vec<Option<Need>> = vec![None; state.paths.len()];
    let mut put = |i: u32, stat: Option<Stat>, then: Then| -> Option<()> {
        let slot = need.get_mut(i as usize)?;
        match slot {
            None => *slot = Some(Need { stat, then }),
            Some(n) if n.stat != stat => return None,
            Some(n) if n.then == then => {}
            // A path some step consulted and the load watched by digest: the
            // stricter rule, the stat, holds for both; unless the digest
            // must be compared (racy), which the list cannot ask with it.
            Some(n) => match (n.then, then) {
                (Then::Stat, Then::StatOrDigest { racy: false, .. }) => {}
                (Then::StatOrDigest { racy: false, .. }, Then::Stat) => n.then = Then::Stat,
                _ => return None,
            },
        }
        Some(())
    };
    for w in &last.watched {
        // A kind is the same under the same stat. What scone wrote itself
        // late in the build is compared by what it holds when its stat moved
        // or was racy; anything else needs the stat, not racy (see
        // `check::watched_holds`).
        let then = match (w.stat, w.digest) {
            (Some(s), Some(digest)) if w.watch != Watch::Kind => Then::StatOrDigest {
                racy: s.is_racy(w.taken_ns),
                digest,
            },
            (Some(s), None) if w.watch != Watch::Kind && s.is_racy(w.taken_ns) => return None,
            _ => Then::Stat,
        };
        put(w.path, w.stat, then)?;
    }
    for &s in &last.steps {
        for c in state
            .steps
            .get(s as usize)?
            .consults
            .iter()
            .filter(|c| c.watched)
        {
            let entry = state.paths.get(c.path as usize)?;
            match (entry.stat, c.expect) {
                (None, None) => put(c.path, None, Then::Stat)?,
                (Some(stat), Some(want))
                    if !stat.is_racy(entry.taken_ns) && entry.digest == Some(want) =>
                {
                    put(c.path, Some(stat), Then::Stat)?
                }
                _ => return None,
            }
        }
    }
    Some(need)
}

/// What a listed path must be for the check to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Need {
    /// Its `lstat` (`None`: absent).
    stat: Option<Stat>,
    then: Then,
}

/// How a listed path is held to what the check needs of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Its `lstat` is the listed one.
    Stat,
    /// What scone wrote itself late in the build (`scone.lock`, the output
    /// folders, the root): its listed `lstat`, not racy when taken; or else
    /// (moved, or racy) what it holds has `digest` — a folder's listing
    /// without scone's own names, a file's content — as
    /// `check::watched_holds` compares it.
    StatOrDigest { racy: bool, digest: Digest },
}

/// A stat as the list holds it, into `out` (cleared first): compared as
/// bytes, never decoded. Empty: absent.
fn stat_bytes(stat: Option<&Stat>, out: &mut Vec<u8>) {
    out.clear();
    if let Some(s) = stat {
        super::codec::put_stat(out, s);
    }
}

/// Paths per chunk of the list: each chunk is decoded and looked at by one
/// thread, its prefix compression starting over.
const CHUNK: usize = 512;

/// The fresh list of `state`, sealed.
pub(super) fn encode(state: &BuildState) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_var_bytes(
        &mut out,
        super::super::fingerprint::tool_version().as_bytes(),
    );
    match (certify(state), &state.last) {
        (Some(need), Some(last)) => {
            out.push(1);
            out.extend_from_slice(&last.key);
            put_var(&mut out, last.steps.len() as u64);
            put_var(&mut out, last.warnings.len() as u64);
            for w in &last.warnings {
                put_var_bytes(&mut out, w.as_bytes());
            }
            let listed: Vec<(&PathEntry, &Need)> = state
                .paths
                .iter()
                .zip(&need)
                .filter_map(|(entry, need)| Some((entry, need.as_ref()?)))
                .collect();
            // A listed path takes at most its bytes and 100 more: the
            // buffer never grows (see `head::head_capacity`).
            out.reserve(
                listed
                    .iter()
                    .map(|(e, _)| e.path.as_os_str().len() + 100)
                    .sum(),
            );
            // Each chunk on its own, on every core (the build's steps are
            // done: the pool is idle), then one after the other.
            let chunks: Vec<Vec<u8>> = listed.par_chunks(CHUNK).map(encode_chunk).collect();
            put_var(&mut out, chunks.len() as u64);
            for chunk in &chunks {
                put_var_bytes(&mut out, chunk);
            }
        }
        _ => out.push(0),
    }
    seal(&mut out);
    out
}

/// One chunk of the list: its count, then each path as the module
/// documentation lays it out.
fn encode_chunk(part: &[(&PathEntry, &Need)]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(
        part.iter()
            .map(|(e, _)| e.path.as_os_str().len() + 100)
            .sum::<usize>()
            + 10,
    );
    let mut stat = Vec::new();
    put_var(&mut chunk, part.len() as u64);
    let mut previous: &[u8] = &[];
    for (entry, need) in part {
        let bytes = entry.path.as_os_str().as_encoded_bytes();
        super::codec::put_path(&mut chunk, bytes, previous);
        previous = bytes;
        stat_bytes(need.stat.as_ref(), &mut stat);
        put_var_bytes(&mut chunk, &stat);
        match need.then {
            Then::Stat => chunk.push(0),
            Then::StatOrDigest { racy, digest } => {
                chunk.push(1 + u8::from(racy));
                chunk.extend_from_slice(&digest);
            }
        }
    }
    chunk
}

/// What looking at the fresh list found.
#[derive(Debug)]
pub enum Look {
    /// Every listed path is as listed: the last build's summary.
    Holds(FreshBuild),
    /// A listed path moved: the `lstat` of every listed path, which
    /// [`super::BuildState::check_with`] takes instead of its own.
    Moved(Taken),
    /// No list for a build with this key (none, uncertified, damaged, or
    /// another scone's).
    Unknown,
}

impl Look {
    /// The last build's summary, if the list holds.
    pub fn into_fresh(self) -> Option<FreshBuild> {
        match self {
            Look::Holds(fresh) => Some(fresh),
            Look::Moved(_) | Look::Unknown => None,
        }
    }
}

/// The `lstat`s a look at the fresh list took, in its order: every path
/// the check looks at, in path-table order. So a build whose list did not
/// hold `lstat`s each path once, not once for the list and again for the
/// check. Kept as the list itself and what the look found in each chunk:
/// nothing is copied out of it until the check asks, which compares the
/// listed paths with its own as it takes their stats.
#[derive(Debug)]
pub struct Taken {
    /// The list, as read.
    list: Vec<u8>,
    /// Each chunk: where it is in `list`, and what the look found in it.
    chunks: Vec<(std::ops::Range<usize>, Chunk)>,
}

impl Taken {
    /// The stats, chunk by chunk, if the paths taken are the `n` paths
    /// `wanted(0)`, …, `wanted(n - 1)`, in that order (compared chunk by
    /// chunk, in parallel); with each chunk, whether the look found all its
    /// paths as listed — the check's own rule held for each (see
    /// [`certify`]), so the check need not hash or list them again.
    pub(super) fn stats_of<'a>(
        self,
        n: usize,
        wanted: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Option<Vec<(Vec<Option<Stat>>, bool)>> {
        let Taken { list, chunks } = self;
        // Where each chunk's paths start among the wanted ones.
        let mut starts = Vec::with_capacity(chunks.len());
        let mut count = 0;
        for (range, _) in &chunks {
            starts.push(count);
            count += Reader(list.get(range.clone())?).var_len()?;
        }
        if count != n {
            return None;
        }
        chunks
            .into_par_iter()
            .zip(starts)
            .map(|((range, looked), start)| {
                stats_in(list.get(range)?, looked, |j| wanted(start + j))
            })
            .collect()
    }
}

/// The stats of one chunk's paths, if they are `wanted(0)`, … in order:
/// those the look took again where the chunk moved, else the listed ones
/// (but the stat now of a path that held by its digest); and whether the
/// chunk held.
fn stats_in<'a>(
    chunk: &[u8],
    looked: Chunk,
    wanted: impl Fn(usize) -> &'a [u8],
) -> Option<(Vec<Option<Stat>>, bool)> {
    let (mut stats, by_digest) = match looked {
        Chunk::Taken(now) => (Some(now), Vec::new()),
        Chunk::Held(by_digest) => (None, by_digest),
        Chunk::Moved => return None,
    };
    let held = stats.is_none();
    let mut listed = Vec::new();
    let mut by_digest = by_digest.into_iter().peekable();
    let (mut at, mut same, mut decoded) = (0, true, true);
    walk(chunk, |path, want, _| {
        same = path == wanted(at);
        if same && stats.is_none() {
            listed.push(match by_digest.next_if(|(i, _)| *i == at) {
                Some((_, stat)) => stat,
                None if want.is_empty() => None,
                None => {
                    let mut r = Reader(want);
                    let stat = super::codec::stat(&mut r);
                    decoded &= stat.is_some() && r.is_empty();
                    stat
                }
            });
        }
        at += 1;
        same
    })?;
    let stats = stats.take().unwrap_or(listed);
    (same && decoded && stats.len() == at).then_some((stats, held))
}

/// Whether the fresh list in `bytes` (sealed) holds for a build with `key`:
/// its last build's summary if every listed path's `lstat` is the one listed,
/// else the `lstat`s taken (see [`Look`]).
pub(super) fn look(bytes: Vec<u8>, key: &Digest, own: &[&OsStr]) -> Look {
    look_at(bytes, key, own).unwrap_or(Look::Unknown)
}

fn look_at(bytes: Vec<u8>, key: &Digest, own: &[&OsStr]) -> Option<Look> {
    let body = unseal(&bytes)?;
    let mut r = Reader(body);
    if r.take(8)? != MAGIC
        || r.var_bytes()? != super::super::fingerprint::tool_version().as_bytes()
        || r.take(1)? != [1]
        || r.take(32)? != key
    {
        return None;
    }
    let steps = r.var_len()?;
    let n = r.var_len()?;
    let mut warnings = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        warnings.push(String::from_utf8(r.var_bytes()?.to_vec()).ok()?);
    }
    // The chunks, each decoded and looked at on its own, in parallel; every
    // one to the end, so that the check gets every stat if one moved.
    let n = r.var_len()?;
    let mut chunks: Vec<std::ops::Range<usize>> = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let len = r.var_bytes()?.len();
        let end = body.len() - r.0.len();
        chunks.push(end - len..end);
    }
    if !r.is_empty() {
        return None;
    }
    let cwd = std::env::current_dir().ok();
    let cwd = cwd.as_ref().map(|c| c.as_os_str().as_encoded_bytes());
    let looked: Vec<Chunk> = chunks
        .par_iter()
        .map(|range| look_at_chunk(&bytes[range.clone()], cwd, own))
        .collect::<Option<_>>()?;
    if looked.iter().all(|c| matches!(c, Chunk::Held(_))) {
        return Some(Look::Holds(FreshBuild { steps, warnings }));
    }
    // The stats for the check: a chunk that held has the listed ones (but
    // where it held by digest); one that moved is stat'ed again, whole.
    let chunks = chunks
        .into_par_iter()
        .zip(looked)
        .map(|(range, looked)| match looked {
            Chunk::Moved => {
                let now = stat_again(&bytes[range.clone()], cwd)?;
                Some((range, Chunk::Taken(now)))
            }
            held => Some((range, held)),
        })
        .collect::<Option<_>>()?;
    Some(Look::Moved(Taken {
        list: bytes,
        chunks,
    }))
}

/// What a look at one chunk found.
#[derive(Debug)]
enum Chunk {
    /// Every path as listed; the `lstat`s of those that held by digest
    /// with another stat, by their place in the chunk.
    Held(Vec<(usize, Option<Stat>)>),
    /// A path moved (the rest of the chunk was not looked at).
    Moved,
    /// A path moved, and every path's `lstat` was taken again, in order.
    Taken(Vec<Option<Stat>>),
}

/// Calls `each(path, listed stat bytes, then)` for every path of `chunk`, in
/// order, until it returns `false`; `None` if the chunk does not decode.
fn walk(chunk: &[u8], mut each: impl FnMut(&[u8], &[u8], Then) -> bool) -> Option<()> {
    let mut r = Reader(chunk);
    let n = r.var_len()?;
    let mut path: Vec<u8> = Vec::with_capacity(256);
    for _ in 0..n {
        let shared = r.var_len()?;
        if shared > path.len() {
            return None;
        }
        path.truncate(shared);
        path.extend_from_slice(r.var_bytes()?);
        let want = r.var_bytes()?;
        let then = match *r.take(1)?.first()? {
            0 => Then::Stat,
            code @ (1 | 2) => Then::StatOrDigest {
                racy: code == 2,
                digest: r.take(32)?.try_into().ok()?,
            },
            _ => return None,
        };
        if !each(&path, want, then) {
            return Some(());
        }
    }
    r.is_empty().then_some(())
}

/// Whether every path of one chunk is as listed; `None` if the chunk does
/// not decode.
fn look_at_chunk(chunk: &[u8], cwd: Option<&[u8]>, own: &[&OsStr]) -> Option<Chunk> {
    let mut moved = false;
    let mut by_digest = Vec::new();
    let mut now_bytes = Vec::with_capacity(64);
    let mut at = 0;
    walk(chunk, |path, want, then| {
        let p = Path::new(OsStr::from_bytes(path));
        let now = lstat_from(cwd, p);
        stat_bytes(now.as_ref(), &mut now_bytes);
        let same = now_bytes == want;
        let holds = match then {
            Then::Stat => same,
            Then::StatOrDigest { racy, digest } => {
                (same && !racy)
                    || now.is_some_and(|now| {
                        let held = if now.is_dir() {
                            listing_digest(p, |n| is_own_name(n, own))
                        } else {
                            content_digest(p, &now)
                        };
                        held == Some(digest)
                    })
            }
        };
        if holds && !same {
            by_digest.push((at, now));
        }
        at += 1;
        moved = !holds;
        holds
    })?;
    Some(if moved {
        Chunk::Moved
    } else {
        Chunk::Held(by_digest)
    })
}

/// The `lstat`s now of a chunk's paths, in order.
fn stat_again(chunk: &[u8], cwd: Option<&[u8]>) -> Option<Vec<Option<Stat>>> {
    let mut now = Vec::new();
    walk(chunk, |path, _, _| {
        now.push(lstat_from(cwd, Path::new(OsStr::from_bytes(path))));
        true
    })?;
    Some(now)
}

#[cfg(test)]
#[path = "fresh_tests.rs"]
mod tests;
