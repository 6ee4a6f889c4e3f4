//! The state file's encoding: [`super::super::wire`] varints and byte
//! strings in two sealed parts. The head holds all a check needs, and where
//! each step's action record is in the log beside it ([`super::records`]),
//! read only when a build first asks for that record (a no-op never does).
//! A damaged head reads as no state.
//!
//! ```text
//! fresh length (u64, little-endian)
//! fresh:  the fresh list (`super::fresh`), sealed: all a no-op reads
//! head length (u64, little-endian)
//! head:   "sconeST5", scone's version
//! paths:  count, then per path (sorted): the length it shares with the one
//!         before, the rest of its bytes, flags, [stat], [digest], taken_ns
//! steps:  count, then per step (sorted): kind, unit, fingerprint, output,
//!         its record's offset and length in the log and their blake3,
//!         consults (path index ×4, + 2 when the expected digest
//!         is written out, i.e. differs from the path table's, + 1 when the
//!         consult is not watched)
//! last:   present?, key, started_ns, watched paths, planned steps, warnings,
//!         the plan (`crate::plan::stored`; empty: none)
//!         checksum of the head
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

const MAGIC: &[u8; 8] = b"sconeST5";

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

fn put_known(out: &mut Vec<u8>, stat: Option<&Stat>, digest: Option<&Digest>) {
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

fn known(r: &mut Reader<'_>) -> Option<(Option<Stat>, Option<Digest>)> {
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

fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.var_bytes()?.to_vec()).ok()
}

/// The state file, in parts to be written one after the other: the fresh
/// list and the head, each after its length (see the module documentation).
pub struct Encoded {
    fresh_len: [u8; 8],
    fresh: Vec<u8>,
    head_len: [u8; 8],
    head: Vec<u8>,
}

impl Encoded {
    /// The parts, in file order.
    pub fn parts(&self) -> [&[u8]; 4] {
        [&self.fresh_len, &self.fresh, &self.head_len, &self.head]
    }

    /// The whole file.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// The state as the parts of its file; `None` if a step's fingerprint or
/// output is not a digest (then no state is written, and the next build is
/// a full one). The two parts are made at once, on two cores. The records
/// must be in the log ([`super::records::commit`]).
pub fn encode(state: &BuildState) -> Option<Encoded> {
    let (fresh, head) = rayon::join(|| super::fresh::encode(state), || encode_head(state));
    let head = head?;
    Some(Encoded {
        fresh_len: (fresh.len() as u64).to_le_bytes(),
        fresh,
        head_len: (head.len() as u64).to_le_bytes(),
        head,
    })
}

/// The head, sealed.
fn encode_head(state: &BuildState) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(head_capacity(state));
    out.extend_from_slice(MAGIC);
    put_var_bytes(
        &mut out,
        super::super::fingerprint::tool_version().as_bytes(),
    );
    put_var(&mut out, state.paths.len() as u64);
    let mut previous: &[u8] = &[];
    for p in &state.paths {
        // Sorted paths share long prefixes: each is written as the length it
        // shares with the one before, and the rest.
        let bytes = p.path.as_os_str().as_encoded_bytes();
        let shared = bytes
            .iter()
            .zip(previous)
            .take_while(|(a, b)| a == b)
            .count();
        put_var(&mut out, shared as u64);
        put_var_bytes(&mut out, &bytes[shared..]);
        previous = bytes;
        put_known(&mut out, p.stat.as_ref(), p.digest.as_ref());
        put_zigzag(&mut out, p.taken_ns);
    }
    put_var(&mut out, state.steps.len() as u64);
    for s in &state.steps {
        put_var_bytes(&mut out, s.id.kind.as_bytes());
        put_var_bytes(&mut out, s.id.unit.as_bytes());
        put_hex(&mut out, &s.fingerprint)?;
        put_hex(&mut out, &s.output)?;
        put_var(&mut out, s.record.at);
        put_var(&mut out, s.record.len);
        out.extend_from_slice(&s.record.sum);
        put_var(&mut out, s.consults.len() as u64);
        for c in &s.consults {
            let table = state.paths.get(c.path as usize)?;
            let implied = table.stat.is_some() == c.expect.is_some()
                && (c.expect.is_none() || table.digest == c.expect);
            put_var(
                &mut out,
                u64::from(c.path) * 4 + u64::from(!implied) * 2 + u64::from(!c.watched),
            );
            if !implied {
                put_known(&mut out, None, c.expect.as_ref());
            }
        }
    }
    match &state.last {
        None => out.push(0),
        Some(last) => {
            out.push(1);
            out.extend_from_slice(&last.key);
            put_zigzag(&mut out, last.started_ns);
            put_var(&mut out, last.watched.len() as u64);
            for w in &last.watched {
                put_var(&mut out, u64::from(w.path));
                out.push(w.watch.code());
                put_known(&mut out, w.stat.as_ref(), w.digest.as_ref());
                put_zigzag(&mut out, w.taken_ns);
            }
            put_var(&mut out, last.steps.len() as u64);
            for &s in &last.steps {
                put_var(&mut out, u64::from(s));
            }
            put_var(&mut out, last.warnings.len() as u64);
            for w in &last.warnings {
                put_var_bytes(&mut out, w.as_bytes());
            }
            put_var_bytes(&mut out, &last.plan);
        }
    }
    seal_from(&mut out, 0);
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

/// The fresh list of a state file; `None` if the file is cut off.
pub(super) fn read_fresh(file: &File) -> Option<Vec<u8>> {
    let mut len = [0; 8];
    file.read_exact_at(&mut len, 0).ok()?;
    let fresh_len = u64::from_le_bytes(len);
    // A length past the end (a cut file, another format) is not allocated.
    if fresh_len > file.metadata().ok()?.len().checked_sub(8)? {
        return None;
    }
    let mut fresh = vec![0; usize::try_from(fresh_len).ok()?];
    file.read_exact_at(&mut fresh, 8).ok()?;
    Some(fresh)
}

/// Appends the blake3 of `out[from..]`.
fn seal_from(out: &mut Vec<u8>, from: usize) {
    let sum = blake3::hash(&out[from..]);
    out.extend_from_slice(sum.as_bytes());
}

/// The state in `file`, its records in the log at `log` (read when first
/// asked for). `None` if the head is damaged, cut off, or written by another
/// scone.
pub fn read(file: File, log: PathBuf) -> Option<BuildState> {
    let size = file.metadata().ok()?.len();
    let mut len = [0; 8];
    file.read_exact_at(&mut len, 0).ok()?;
    let at = u64::from_le_bytes(len).checked_add(8)?;
    file.read_exact_at(&mut len, at).ok()?;
    let head_len = u64::from_le_bytes(len);
    let head_at = at.checked_add(8)?;
    if head_at.checked_add(head_len)? != size {
        return None;
    }
    let mut head = vec![0; usize::try_from(head_len).ok()?];
    file.read_exact_at(&mut head, head_at).ok()?;
    let mut state = decode_head(&head)?;
    state.records = Records::in_log(log);
    Some(state)
}

/// The state of a whole file's `bytes`, its records in the log at `log`.
#[cfg(test)]
pub fn decode(bytes: Vec<u8>, log: PathBuf) -> Option<BuildState> {
    let len_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let at = len_at(0)?.checked_add(8)?;
    let head_len = len_at(at)?;
    let head_at = at + 8;
    if head_at.checked_add(head_len)? != bytes.len() {
        return None;
    }
    let mut state = decode_head(bytes.get(head_at..)?)?;
    state.records = Records::in_log(log);
    Some(state)
}

/// The head of a state file; `None` if it is damaged, cut off, or written
/// by another version of scone.
fn decode_head(bytes: &[u8]) -> Option<BuildState> {
    let mut r = Reader(unseal(bytes)?);
    if r.take(8)? != MAGIC || r.var_bytes()? != super::super::fingerprint::tool_version().as_bytes()
    {
        return None;
    }
    let count = r.var_len()?;
    let mut paths: Vec<PathEntry> = Vec::with_capacity(count.min(1 << 24));
    let mut joined: Vec<u8> = Vec::new();
    for _ in 0..count {
        let shared = r.var_len()?;
        let rest = r.var_bytes()?;
        let previous = paths
            .last()
            .map_or(&b""[..], |p| p.path.as_os_str().as_encoded_bytes());
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
    let count = r.var_len()?;
    let mut steps = Vec::with_capacity(count.min(1 << 24));
    for _ in 0..count {
        let kind = text(&mut r)?;
        let unit = text(&mut r)?;
        let fingerprint = hex::encode(digest(&mut r)?);
        let output: Arc<str> = hex::encode(digest(&mut r)?).into();
        let record = RecordAt::in_log(r.var()?, r.var()?, digest(&mut r)?);
        let n = r.var_len()?;
        let mut consults = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let v = r.var()?;
            let path = u32::try_from(v / 4).ok()?;
            let table = paths.get(path as usize)?;
            let expect = if v & 2 != 0 {
                known(&mut r)?.1
            } else if table.stat.is_some() {
                Some(table.digest?)
            } else {
                None
            };
            consults.push(Consult {
                path,
                expect,
                watched: v & 1 == 0,
            });
        }
        steps.push(StepEntry {
            id: StepId { kind, unit },
            fingerprint,
            output,
            record,
            parsed: OnceLock::new(),
            consults,
        });
    }
    let last = match *r.take(1)?.first()? {
        0 => None,
        _ => {
            let key = digest(&mut r)?;
            let started_ns = r.zigzag()?;
            let n = r.var_len()?;
            let mut watched = Vec::with_capacity(n.min(1 << 24));
            for _ in 0..n {
                let path = u32::try_from(r.var()?).ok()?;
                paths.get(path as usize)?;
                let watch = Watch::from_code(*r.take(1)?.first()?)?;
                let (stat, digest) = known(&mut r)?;
                watched.push(Watched {
                    path,
                    watch,
                    stat,
                    digest,
                    taken_ns: r.zigzag()?,
                });
            }
            let n = r.var_len()?;
            let mut planned = Vec::with_capacity(n.min(1 << 24));
            for _ in 0..n {
                let s = u32::try_from(r.var()?).ok()?;
                steps.get(s as usize)?;
                planned.push(s);
            }
            let n = r.var_len()?;
            let mut warnings = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                warnings.push(text(&mut r)?);
            }
            let plan = Arc::from(r.var_bytes()?);
            Some(LastBuild {
                key,
                started_ns,
                watched,
                steps: planned,
                warnings,
                plan,
            })
        }
    };
    if !r.is_empty() {
        return None;
    }
    Some(BuildState {
        records: Records::default(),
        paths,
        steps,
        last,
    })
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
