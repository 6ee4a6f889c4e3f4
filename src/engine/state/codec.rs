//! The encodings of the build state's entries — a stat, what is known of a
//! path, a step, the last build — as [`super::super::wire`] varints and byte
//! strings: shared by the state file's head ([`super::head`]) and its
//! patches ([`super::patch`]).

use std::sync::{Arc, OnceLock};

use super::super::id::StepId;
use super::super::stat::Stat;
use super::super::wire::{put_var, put_var_bytes, put_zigzag, Reader};
use super::{Consult, Digest, LastBuild, PathEntry, RecordAt, StepEntry, Watched};
use crate::watch::Watch;

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

/// What a consult of a path with this entry depends on when the file does
/// not write it out: what the entry holds (`None`: it cannot be implied, the
/// entry knows no digest of a path that exists).
pub(super) fn implied_by(entry: &PathEntry) -> Option<Option<Digest>> {
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
pub(super) fn put_last(out: &mut Vec<u8>, last: Option<&LastBuild>) {
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
pub(super) fn last(r: &mut Reader<'_>, paths: usize, steps: usize) -> Option<Option<LastBuild>> {
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
pub(super) trait FromBytes {
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
