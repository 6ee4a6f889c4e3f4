//! The state file's encoding: [`super::super::wire`] varints and byte
//! strings in sealed parts. The head holds all a check needs, and where
//! each step's action record is in the log beside it ([`super::records`]),
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
use std::sync::{Arc, OnceLock};

use super::super::id::StepId;
use super::super::stat::Stat;
use super::super::wire::{put_var, put_var_bytes, put_zigzag, unseal, Reader};
use super::{
    BuildState, Consult, Digest, LastBuild, PathEntry, RecordAt, Records, StepEntry, Watched,
};
use crate::watch::Watch;

const MAGIC: &[u8; 8] = b"sconeST7";

/// Marks a consult of the head whose expected digest the path table implies
/// (see [`implied_by`]), decoded before the table is: its path index carries
/// this bit until [`resolve_implied`] clears it. A table has fewer paths.
const IMPLIED: u32 = 1 << 31;

/// The head's own opening: the first part's length and the path count.
const SPLIT: usize = 16;

const HAS_STAT: u8 = 1;
const HAS_DIGEST: u8 = 2;

pub(super) fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    put_var(out, s.size);
    put_zigzag(out, s.mtime_ns);
    put_zigzag(out, s.ctime_ns);
    put_var(out, s.inode);
    put_var(out, u64::from(s.mode));
}

pub(super) fn stat(r: &mut Reader<'_>) -> Option<Stat> {
    Some(Stat {
        size: r.var()?,
        mtime_ns: r.zigzag()?,
        ctime_ns: r.zigzag()?,
        inode: r.var()?,
        mode: u32::try_from(r.var()?).ok()?,
    })
}

pub(super) fn put_known(out: &mut Vec<u8>, stat: Option<&Stat>, digest: Option<&Digest>) {
    let flags =
        if stat.is_some() { HAS_STAT } else { 0 } | if digest.is_some() { HAS_DIGEST } else { 0 };
    out.push(flags);
    if let Some(s) = stat {
        put_stat(out, s);
    }
    if let Some(d) = digest {
        out.extend_from_slice(d);
    }
}

pub(super) fn known(r: &mut Reader<'_>) -> Option<(Option<Stat>, Option<Digest>)> {
    let flags = *r.take(1)?.first()?;
    let stat = if flags & HAS_STAT != 0 {
        Some(stat(r)?)
    } else {
        None
    };
    let digest = if flags & HAS_DIGEST != 0 {
        Some(digest(r)?)
    } else {
        None
    };
    Some((stat, digest))
}

/// A path's bytes as the length it shares with `previous` and the rest:
/// sorted paths share long prefixes.
pub(super) fn put_path(out: &mut Vec<u8>, bytes: &[u8], previous: &[u8]) {
    let shared = bytes
        .iter()
        .zip(previous)
        .take_while(|(a, b)| a == b)
        .count();
    put_var(out, shared as u64);
    put_var_bytes(out, &bytes[shared..]);
}

fn digest(r: &mut Reader<'_>) -> Option<Digest> {
    r.take(32)?.try_into().ok()
}

/// A 64-digit hex digest as its 32 bytes.
fn put_hex(out: &mut Vec<u8>, hex: &str) -> Option<()> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(hex, &mut raw).ok()?;
    out.extend_from_slice(&raw);
    Some(())
}

/// A digest as 64 lowercase hex digits, as the store names it (blake3's
/// spelling, a byte at a time: `hex::encode` builds its string a char at a
/// time, and a state holds two digests for every step).
fn hex32(digest: &Digest) -> String {
    blake3::Hash::from_bytes(*digest).to_hex().to_string()
}

fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.var_bytes()?.to_vec()).ok()
}

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
    MAGIC.len() + 100 + paths + steps + last + 32
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
    let mut opening = [0; 8 + SPLIT];
    file.read_exact_at(&mut opening, 0).ok()?;
    let number = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            opening.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let head_end = number(0)?.checked_add(8)?;
    let first_end = number(8)?.checked_add((8 + SPLIT) as u64)?;
    let count = usize::try_from(number(16)?).ok()?;
    // The second part is read with the first's seal, which its own covers.
    let second_at = first_end.checked_sub(32)?;
    if second_at < (8 + SPLIT) as u64 || first_end > head_end || head_end > size {
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
        let paths = part((8 + SPLIT) as u64, first_end).and_then(|b| decode_paths(&b));
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

/// What a consult of a path with this entry depends on when the file does
/// not write it out: what the entry holds (`None`: it cannot be implied, the
/// entry knows no digest of a path that exists).
fn implied_by(entry: &PathEntry) -> Option<Option<Digest>> {
    match entry.stat {
        Some(_) => entry.digest.map(Some),
        None => Some(None),
    }
}

/// One step's entry. `implied(i)`: what a consult of path `i` depends on
/// when it is not written out ([`implied_by`]; `None`: always written).
pub(super) fn put_step(
    out: &mut Vec<u8>,
    s: &StepEntry,
    implied: impl Fn(u32) -> Option<Option<Digest>>,
) -> Option<()> {
    put_var_bytes(out, s.id.kind.as_bytes());
    put_var_bytes(out, s.id.unit.as_bytes());
    put_hex(out, &s.fingerprint)?;
    put_hex(out, &s.output)?;
    put_var(out, s.record.at);
    put_var(out, s.record.len);
    out.extend_from_slice(&s.record.sum);
    put_var(out, s.consults.len() as u64);
    for c in &s.consults {
        let implied = implied(c.path) == Some(c.expect);
        put_var(
            out,
            u64::from(c.path) * 4 + u64::from(!implied) * 2 + u64::from(!c.watched),
        );
        if !implied {
            put_known(out, None, c.expect.as_ref());
        }
    }
    Some(())
}

/// A step's entry as [`put_step`] wrote it; `paths`: how many paths the
/// table has. `implied(i)`: the path and expected digest of a consult of
/// path `i` whose digest is not written out (the head's are marked, and
/// resolved once its table is decoded: [`resolve_implied`]; a patch writes
/// every digest out).
pub(super) fn step(
    r: &mut Reader<'_>,
    paths: usize,
    implied: impl Fn(u32) -> Option<(u32, Option<Digest>)>,
) -> Option<StepEntry> {
    let kind = text(r)?;
    let unit = text(r)?;
    let fingerprint = hex32(&digest(r)?);
    let output: Arc<str> = hex32(&digest(r)?).into();
    let record = RecordAt::in_log(r.var()?, r.var()?, digest(r)?);
    let n = r.var_len()?;
    let mut consults = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let v = r.var()?;
        let path = u32::try_from(v / 4).ok()?;
        if path as usize >= paths {
            return None;
        }
        let (path, expect) = if v & 2 != 0 {
            (path, known(r)?.1)
        } else {
            implied(path)?
        };
        consults.push(Consult {
            path,
            expect,
            watched: v & 1 == 0,
        });
    }
    Some(StepEntry {
        id: StepId { kind, unit },
        fingerprint,
        output,
        record,
        parsed: OnceLock::new(),
        consults,
    })
}

/// The last build, as the head holds it.
fn put_last(out: &mut Vec<u8>, last: Option<&LastBuild>) {
    let Some(last) = last else {
        out.push(0);
        return;
    };
    put_last_opening(out, last);
    for w in &last.watched {
        put_watched(out, w);
    }
    put_var(out, last.steps.len() as u64);
    for &s in &last.steps {
        put_var(out, u64::from(s));
    }
    put_warnings(out, &last.warnings);
    put_var_bytes(out, &last.plan);
}

/// What opens a last build that is there, in the head and in a patch: its
/// key, when it started, how many paths its load read.
pub(super) fn put_last_opening(out: &mut Vec<u8>, last: &LastBuild) {
    out.push(1);
    out.extend_from_slice(&last.key);
    put_zigzag(out, last.started_ns);
    put_var(out, last.watched.len() as u64);
}

pub(super) fn put_watched(out: &mut Vec<u8>, w: &Watched) {
    put_var(out, u64::from(w.path));
    out.push(w.watch.code());
    put_known(out, w.stat.as_ref(), w.digest.as_ref());
    put_zigzag(out, w.taken_ns);
}

pub(super) fn put_warnings(out: &mut Vec<u8>, warnings: &[String]) {
    put_var(out, warnings.len() as u64);
    for w in warnings {
        put_var_bytes(out, w.as_bytes());
    }
}

/// The last build as [`put_last`] wrote it, for a table of `paths` paths and
/// `steps` steps.
fn last(r: &mut Reader<'_>, paths: usize, steps: usize) -> Option<Option<LastBuild>> {
    if *r.take(1)?.first()? == 0 {
        return Some(None);
    }
    let key = digest(r)?;
    let started_ns = r.zigzag()?;
    let n = r.var_len()?;
    let mut watched = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        watched.push(watched_entry(r, paths)?);
    }
    let planned = planned(r, steps)?;
    let warnings = warnings(r)?;
    let plan = Arc::from(r.var_bytes()?);
    Some(Some(LastBuild {
        key,
        started_ns,
        watched,
        steps: planned,
        warnings,
        plan,
    }))
}

/// A watched path as [`put_watched`] wrote it, of a table of `paths` paths.
pub(super) fn watched_entry(r: &mut Reader<'_>, paths: usize) -> Option<Watched> {
    let path = u32::try_from(r.var()?).ok()?;
    if path as usize >= paths {
        return None;
    }
    let watch = Watch::from_code(*r.take(1)?.first()?)?;
    let (stat, digest) = known(r)?;
    Some(Watched {
        path,
        watch,
        stat,
        digest,
        taken_ns: r.zigzag()?,
    })
}

/// The places of the planned steps, of `steps` steps: a count, then each.
pub(super) fn planned(r: &mut Reader<'_>, steps: usize) -> Option<Vec<u32>> {
    let n = r.var_len()?;
    let mut planned = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let s = u32::try_from(r.var()?).ok()?;
        if s as usize >= steps {
            return None;
        }
        planned.push(s);
    }
    Some(planned)
}

pub(super) fn warnings(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let n = r.var_len()?;
    let mut warnings = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        warnings.push(text(r)?);
    }
    Some(warnings)
}

/// `OsStr` from raw bytes (Unix paths are any bytes).
trait FromBytes {
    fn from_bytes_checked(bytes: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_bytes_checked(bytes: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    /// The digests the state spells out are `hex::encode`'s.
    #[test]
    fn hex32_spells_a_digest_as_hex_does() {
        let digests = [[0u8; 32], [0xff; 32], *blake3::hash(b"scone").as_bytes()];
        for d in digests {
            assert_eq!(super::hex32(&d), hex::encode(d));
        }
    }
}
