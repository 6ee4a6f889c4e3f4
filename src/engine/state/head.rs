//! The state file: its parts, written and read, each sealed; their entries
//! as [`super::codec`] encodes them. The head holds all a check needs, and
//! where each step's action record is in the log beside it ([`super::records`]),
//! read only when a build first asks for that record (a no-op never does).
//! The patches after it ([`super::patch`]) are applied as the file is read,
//! up to the first that does not read. A damaged head reads as no state.
//!
//! The head is in two sealed parts, the paths and the rest, read and decoded
//! on two threads at once (see [`read`]); the second part's seal also covers
//! the first's, so that the two are always of one head.
//!
//! ```text
//! head length (u64, little-endian)
//! head:   the first part's length, the path count (u64s, little-endian:
//!         where to split, and a hint checked against the first part)
//!   first part:
//!   "sconeST7", scone's version
//!   paths:  count, then per path: the length it shares with the one before,
//!           the rest of its bytes, flags, [stat], [digest], taken_ns (in path
//!           order, but for the paths patches appended, at the end)
//!           seal of the first part
//!   second part:
//!   steps:  count, then per step (sorted): kind, unit, fingerprint, output,
//!           its record's offset and length in the log and their blake3,
//!           consults (path index ×4, + 2 when the expected digest
//!           is written out, i.e. differs from the path table's, + 1 when the
//!           consult is not watched)
//!   last:   present?, key, started_ns, watched paths, planned steps, warnings,
//!           the plan (`crate::plan::stored`; empty: none)
//!           seal of the first part's seal and the second part
//! { patch length (u64, little-endian), patch (`super::patch`) }*
//! fresh:  the fresh list (`super::fresh`), sealed: all a no-op reads
//! fresh length (u64, little-endian)
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::super::wire::{put_var, put_var_bytes, put_zigzag, unseal, Reader};
use super::codec::{
    implied_by, known, last, put_known, put_last, put_path, put_step, step, FromBytes,
};
use super::{BuildState, LastBuild, PathEntry, Records, StepEntry};

const MAGIC: &[u8; 8] = b"sconeST7";

/// Marks a consult of the head whose expected digest the path table implies
/// (see [`implied_by`]), decoded before the table is: its path index carries
/// this bit until [`resolve_implied`] clears it. A table has fewer paths.
const IMPLIED: u32 = 1 << 31;

/// The head's own opening: the first part's length and the path count.
const SPLIT: usize = 16;

/// Where the first part starts in the file: after the head's length and
/// the opening.
const FIRST_AT: u64 = (8 + SPLIT) as u64;

/// The state file, in parts to be written one after the other: the head
/// after its length, then the fresh list before its length (see the module
/// documentation).
pub struct Encoded {
    head_len: [u8; 8],
    head: Vec<u8>,
    fresh: Vec<u8>,
    fresh_len: [u8; 8],
}

impl Encoded {
    /// The parts, in file order.
    pub fn parts(&self) -> [&[u8]; 4] {
        [&self.head_len, &self.head, &self.fresh, &self.fresh_len]
    }

    /// The whole file.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// Where the parts of a state file that was read are: the next patch is
/// written at `end`, over the fresh list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// The head's length, with its own.
    pub head: u64,
    /// Where the last patch that reads ends.
    pub end: u64,
    /// How many patches were read.
    pub patches: u32,
}

/// The state as the parts of its file; `None` if a step's fingerprint or
/// output is not a digest (then no state is written, and the next build is
/// a full one). The two parts are made at once, on two cores. The records
/// must be in the log ([`super::records::commit`]).
pub fn encode(state: &BuildState) -> Option<Encoded> {
    let (fresh, head) = rayon::join(|| super::fresh::encode(state), || encode_head(state));
    let head = head?;
    Some(Encoded {
        head_len: (head.len() as u64).to_le_bytes(),
        head,
        fresh_len: (fresh.len() as u64).to_le_bytes(),
        fresh,
    })
}

/// The head, in its two sealed parts.
fn encode_head(state: &BuildState) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(head_capacity(state));
    out.extend_from_slice(&[0; SPLIT]);
    out.extend_from_slice(MAGIC);
    put_var_bytes(
        &mut out,
        super::super::fingerprint::tool_version().as_bytes(),
    );
    put_var(&mut out, state.paths.len() as u64);
    let mut previous: &[u8] = &[];
    for p in &state.paths {
        let bytes = p.path.as_os_str().as_encoded_bytes();
        put_path(&mut out, bytes, previous);
        previous = bytes;
        put_known(&mut out, p.stat.as_ref(), p.digest.as_ref());
        put_zigzag(&mut out, p.taken_ns);
    }
    seal_from(&mut out, SPLIT);
    let first = out.len() - SPLIT;
    out[..8].copy_from_slice(&(first as u64).to_le_bytes());
    out[8..SPLIT].copy_from_slice(&(state.paths.len() as u64).to_le_bytes());
    put_var(&mut out, state.steps.len() as u64);
    let implied = |i: u32| state.paths.get(i as usize).and_then(implied_by);
    for s in &state.steps {
        put_step(&mut out, s, implied)?;
    }
    put_last(&mut out, state.last.as_ref());
    // The first part's seal and the second part, sealed.
    seal_from(&mut out, SPLIT + first - 32);
    Some(out)
}

/// At least the head's length: the buffer never grows while it is
/// encoded (growing a 6 MB buffer from 1 MB copied 7 MB and touched 15 MB of
/// fresh pages; capacity never written to is never touched).
fn head_capacity(state: &BuildState) -> usize {
    const STAT: usize = 5 * 10;
    let known = 1 + STAT + 32;
    let paths: usize = state
        .paths
        .iter()
        .map(|p| 2 * 10 + p.path.as_os_str().len() + known + 10)
        .sum();
    let steps: usize = state
        .steps
        .iter()
        .map(|s| 4 * 10 + s.id.kind.len() + s.id.unit.len() + 3 * 32 + s.consults.len() * (10 + 33))
        .sum();
    let last = state.last.as_ref().map_or(1, |l| {
        100 + l.watched.len() * (10 + 1 + known + 10)
            + l.steps.len() * 10
            + l.warnings.iter().map(|w| 10 + w.len()).sum::<usize>()
            + 10
            + l.plan.len()
    });
    // The opening, the magic, the version and counts, and the two seals.
    SPLIT + MAGIC.len() + 100 + paths + steps + last + 2 * 32
}

/// Where the fresh list of a state file of `size` bytes starts, by the
/// length at its end; `None` if that length does not fit.
fn fresh_at(file: &File, size: u64) -> Option<u64> {
    let mut len = [0; 8];
    file.read_exact_at(&mut len, size.checked_sub(8)?).ok()?;
    size.checked_sub(8)?.checked_sub(u64::from_le_bytes(len))
}

/// The fresh list of a state file; `None` if the file is cut off.
pub(super) fn read_fresh(file: &File) -> Option<Vec<u8>> {
    let size = file.metadata().ok()?.len();
    let at = fresh_at(file, size)?;
    let mut fresh = vec![0; usize::try_from(size - 8 - at).ok()?];
    file.read_exact_at(&mut fresh, at).ok()?;
    Some(fresh)
}

/// Appends the seal of `out[from..]` ([`super::super::wire::seal`]).
fn seal_from(out: &mut Vec<u8>, from: usize) {
    let sum = super::super::wire::seal_of(&out[from..]);
    out.extend_from_slice(sum.as_bytes());
}

/// The state in `file`, its records in the log at `log` (read when first
/// asked for), with the patches after its head applied, up to the first that
/// does not read (it was cut off: the build that wrote it was killed; the
/// state is the one before it, which that build's files are checked
/// against). `None` if the head is damaged, cut off, or written by another
/// scone.
///
/// The head's two parts are read, unsealed and decoded at once, the paths
/// on this thread and the steps and the last build on another: a change
/// build reads the head after its look at the fresh list, when both cores
/// are free (`docs/performance.md`, "The head read on two threads after the
/// look").
pub fn read(file: File, log: PathBuf) -> Option<BuildState> {
    let size = file.metadata().ok()?.len();
    let mut opening = [0; FIRST_AT as usize];
    file.read_exact_at(&mut opening, 0).ok()?;
    let number = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            opening.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let head_end = number(0)?.checked_add(8)?;
    let first_end = number(8)?.checked_add(FIRST_AT)?;
    let count = usize::try_from(number(16)?).ok()?;
    // The second part is read with the first's seal, which its own covers.
    let second_at = first_end.checked_sub(32)?;
    if second_at < FIRST_AT || first_end > head_end || head_end > size {
        return None;
    }
    // A part of the file: never past its end (the lengths are not sealed).
    let part = |from: u64, to: u64| -> Option<Vec<u8>> {
        let len = to.checked_sub(from).filter(|_| to <= size)?;
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        file.read_exact_at(&mut bytes, from).ok()?;
        Some(bytes)
    };
    let rest = || decode_rest(&part(second_at, head_end)?, count);
    let (paths, rest) = std::thread::scope(|s| {
        // A thread that cannot be made: the second part after the first.
        let second = std::thread::Builder::new().spawn_scoped(s, rest).ok();
        let paths = part(FIRST_AT, first_end).and_then(|b| decode_paths(&b));
        let rest = match second {
            Some(thread) => thread.join().ok().flatten(),
            None => rest(),
        };
        (paths, rest)
    });
    let ((paths, sorted), (mut steps, last)) = (paths?, rest?);
    if paths.len() != count {
        return None;
    }
    resolve_implied(&mut steps, &paths)?;
    let mut state = BuildState {
        paths,
        steps,
        last,
        ..BuildState::default()
    };
    let table = state.paths.len();
    state.index_appended(sorted.unwrap_or(table));
    // The patches end where the fresh list starts, if its length says so.
    let fresh = fresh_at(&file, size).filter(|&at| at >= head_end);
    let patches = part(head_end, fresh.unwrap_or(size))?;
    let mut patches = &patches[..];
    let (mut end, mut count) = (head_end, 0);
    while let Some(next) = super::patch::next(&mut state, &mut patches) {
        end += next;
        count += 1;
    }
    state.records = Records::in_log(log);
    state.file = Some(Extent {
        head: head_end,
        end,
        patches: count,
    });
    Some(state)
}

/// The state of a whole file's `bytes`, its records in the log at `log`.
#[cfg(test)]
pub fn decode(bytes: Vec<u8>, log: PathBuf) -> Option<BuildState> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("state");
    std::fs::write(&path, bytes).ok()?;
    read(File::open(path).ok()?, log)
}

/// The path table of the head's first part; with where its paths stop
/// being in order (those after were appended by patches before the state
/// was written whole: see `index_appended`). `None` if it is damaged, cut
/// off, or written by another version of scone.
fn decode_paths(bytes: &[u8]) -> Option<(Vec<PathEntry>, Option<usize>)> {
    let mut r = Reader(unseal(bytes)?);
    if r.take(8)? != MAGIC || r.var_bytes()? != super::super::fingerprint::tool_version().as_bytes()
    {
        return None;
    }
    let count = r.var_len()?;
    if count >= IMPLIED as usize {
        return None;
    }
    // Room for the paths patches append: growing a table of 32,000 paths
    // by one copied 4 MB (capacity never written to is never touched).
    let mut paths: Vec<PathEntry> = Vec::with_capacity(count.min(1 << 24) * 5 / 4 + 1024);
    let mut joined: Vec<u8> = Vec::new();
    let mut sorted = None;
    for i in 0..count {
        let shared = r.var_len()?;
        let rest = r.var_bytes()?;
        let previous = paths
            .last()
            .map_or(&b""[..], |p| p.path.as_os_str().as_encoded_bytes());
        // Both start with `previous[..shared]`: the rest decides the order.
        if sorted.is_none() && i > 0 && rest <= previous.get(shared..)? {
            sorted = Some(i);
        }
        joined.clear();
        joined.extend_from_slice(previous.get(..shared)?);
        joined.extend_from_slice(rest);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes_checked(&joined));
        let (stat, digest) = known(&mut r)?;
        paths.push(PathEntry {
            path,
            stat,
            digest,
            taken_ns: r.zigzag()?,
        });
    }
    r.is_empty().then_some((paths, sorted))
}

/// The steps and the last build of the head's second part (read with the
/// first part's seal before it), for a table of `paths` paths; the consults
/// the table implies are marked ([`IMPLIED`]) for [`resolve_implied`].
fn decode_rest(bytes: &[u8], paths: usize) -> Option<(Vec<StepEntry>, Option<LastBuild>)> {
    let mut r = Reader(unseal(bytes)?.get(32..)?);
    if paths >= IMPLIED as usize {
        return None;
    }
    let count = r.var_len()?;
    let mut steps = Vec::with_capacity(count.min(1 << 24));
    for _ in 0..count {
        steps.push(step(&mut r, paths, |i| Some((i | IMPLIED, None)))?);
    }
    let last = last(&mut r, paths, steps.len())?;
    r.is_empty().then_some((steps, last))
}

/// Fills in the expected digests of the consults [`decode_rest`] marked,
/// from the path table; `None` if one cannot be implied.
fn resolve_implied(steps: &mut [StepEntry], paths: &[PathEntry]) -> Option<()> {
    for c in steps.iter_mut().flat_map(|s| s.consults.iter_mut()) {
        if c.path & IMPLIED != 0 {
            c.path &= !IMPLIED;
            c.expect = implied_by(paths.get(c.path as usize)?)?;
        }
    }
    Some(())
}
