//! The binary form of `noop.bin` (see [`super`]): the [`super::super::wire`]
//! encoding, sealed with a checksum. Reading is lazy: the paths are borrowed
//! from the file's bytes (no allocation per path) and the steps are decoded
//! only when something changed or they are to be printed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{still, NoopRecord, Recorded, StepMessage};
use crate::engine::wire::{put_bytes, put_stat, put_u64, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeNP2";

pub(super) fn encode(r: &NoopRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 * r.files.len() + 160 * r.steps.len() + 4096);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, r.key.as_bytes());
    put_u64(&mut out, r.written_at_ns as u64);
    put_u64(&mut out, r.files.len() as u64);
    for (path, rec) in &r.files {
        put_bytes(&mut out, path.as_os_str().as_encoded_bytes());
        match rec {
            None => put_u64(&mut out, 0),
            Some(Recorded { stat, content }) => {
                put_u64(&mut out, if content.is_some() { 2 } else { 1 });
                put_stat(&mut out, stat);
                if let Some(c) = content {
                    out.extend_from_slice(c);
                }
            }
        }
    }
    put_u64(&mut out, r.steps.len() as u64);
    let mut steps = Vec::with_capacity(160 * r.steps.len());
    for s in &r.steps {
        put_bytes(&mut steps, s.kind.as_bytes());
        put_bytes(&mut steps, s.unit.as_bytes());
        put_bytes(&mut steps, s.fingerprint.as_bytes());
        put_u64(&mut steps, s.files.len() as u64);
        for &f in &s.files {
            put_u64(&mut steps, u64::from(f));
        }
    }
    put_bytes(&mut out, &steps);
    put_bytes(&mut out, r.target.as_os_str().as_encoded_bytes());
    put_bytes(&mut out, r.workspace.as_ref().map_or(&[][..], |w| &w[..]));
    seal(&mut out);
    out
}

/// A record as read back: paths and steps still point into the file's bytes.
pub(super) struct Lazy<'a> {
    pub key: &'a str,
    written_at_ns: i64,
    files: Vec<(&'a Path, Option<Recorded>)>,
    pub count: usize,
    steps: &'a [u8],
    pub target: &'a Path,
    workspace: Option<[u8; 32]>,
}

impl<'a> Lazy<'a> {
    pub fn decode(bytes: &'a [u8]) -> Option<Lazy<'a>> {
        let mut r = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
        let key = std::str::from_utf8(r.bytes()?).ok()?;
        let written_at_ns = r.u64()? as i64;
        let n = r.len()?;
        let mut files = Vec::with_capacity(n.min(1 << 22));
        for _ in 0..n {
            let path = Path::new(OsStr::from_bytes(r.bytes()?));
            let rec = match r.u64()? {
                0 => None,
                flag => Some(Recorded {
                    stat: r.stat()?,
                    content: if flag == 2 {
                        Some(r.take(32)?.try_into().ok()?)
                    } else {
                        None
                    },
                }),
            };
            files.push((path, rec));
        }
        let count = r.len()?;
        let steps = r.bytes()?;
        let target = Path::new(OsStr::from_bytes(r.bytes()?));
        let workspace = match r.bytes()? {
            [] => None,
            w => Some(w.try_into().ok()?),
        };
        r.is_empty().then_some(Lazy {
            key,
            written_at_ns,
            files,
            count,
            steps,
            target,
            workspace,
        })
    }

    /// The indices of the paths that are no longer as recorded (stat'ed in
    /// parallel, straight from the record's bytes).
    pub fn changed(&self) -> Vec<u32> {
        use rayon::prelude::*;
        let written = self.written_at_ns;
        self.files
            .par_iter()
            .enumerate()
            .filter(|(_, (path, old))| !still(path, old.as_ref(), written))
            .map(|(i, _)| i as u32)
            .collect()
    }

    pub fn steps(&self) -> Option<Vec<StepMessage>> {
        let mut r = Reader(self.steps);
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let mut out = Vec::with_capacity(self.count.min(1 << 22));
        for _ in 0..self.count {
            let kind = text(r.bytes()?)?;
            let unit = text(r.bytes()?)?;
            let fingerprint = text(r.bytes()?)?;
            let n = r.len()?;
            let mut files = Vec::with_capacity(n.min(1 << 22));
            for _ in 0..n {
                let f = u32::try_from(r.u64()?).ok()?;
                if f as usize >= self.files.len() {
                    return None;
                }
                files.push(f);
            }
            out.push(StepMessage {
                kind,
                unit,
                fingerprint,
                files,
            });
        }
        r.is_empty().then_some(out)
    }

    /// The whole record, owned.
    pub fn materialize(&self) -> Option<NoopRecord> {
        Some(NoopRecord {
            key: self.key.to_string(),
            written_at_ns: self.written_at_ns,
            files: self
                .files
                .iter()
                .map(|(p, r)| (p.to_path_buf(), *r))
                .collect(),
            steps: self.steps()?,
            target: self.target.to_path_buf(),
            workspace: self.workspace,
        })
    }
}
