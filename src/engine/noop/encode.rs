//! The binary form of `noop.bin` (see [`super`]): the [`super::super::wire`]
//! encoding, sealed with a checksum, made compact because a 1,000-service
//! build records some 26,000 paths and an incremental build writes it again:
//! each path shares its prefix with the one before it (they are sorted), and
//! stats are varints, mtimes and inodes as differences from the path before.
//! Reading rebuilds the paths into one buffer (no allocation per path); the
//! steps are decoded only when something changed or they are to be printed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{still, NoopRecord, Recorded, StepMessage};
use crate::engine::statcache::Stat;
use crate::engine::wire::{put_bytes, put_u64, put_var, put_zigzag, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeNP3";

pub(super) fn encode(r: &NoopRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 * r.files.len() + 80 * r.steps.len() + 4096);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, r.key.as_bytes());
    put_u64(&mut out, r.written_at_ns as u64);
    put_var(&mut out, r.files.len() as u64);
    let mut prev: &[u8] = &[];
    let (mut mtime, mut inode) = (0i64, 0i64);
    for (path, rec) in &r.files {
        let path = path.as_os_str().as_encoded_bytes();
        let shared = path.iter().zip(prev).take_while(|(a, b)| a == b).count();
        put_var(&mut out, shared as u64);
        put_var(&mut out, (path.len() - shared) as u64);
        out.extend_from_slice(&path[shared..]);
        prev = path;
        match rec {
            None => out.push(0),
            Some(Recorded { stat, content }) => {
                out.push(if content.is_some() { 2 } else { 1 });
                put_var(&mut out, stat.size);
                put_zigzag(&mut out, stat.mtime_ns.wrapping_sub(mtime));
                put_zigzag(&mut out, stat.ctime_ns.wrapping_sub(stat.mtime_ns));
                put_zigzag(&mut out, (stat.inode as i64).wrapping_sub(inode));
                put_var(&mut out, u64::from(stat.mode));
                (mtime, inode) = (stat.mtime_ns, stat.inode as i64);
                if let Some(c) = content {
                    out.extend_from_slice(c);
                }
            }
        }
    }
    put_var(&mut out, r.steps.len() as u64);
    let mut steps = Vec::with_capacity(100 * r.steps.len());
    for s in &r.steps {
        put_bytes(&mut steps, s.kind.as_bytes());
        put_bytes(&mut steps, s.unit.as_bytes());
        put_bytes(&mut steps, s.fingerprint.as_bytes());
        put_var(&mut steps, s.files.len() as u64);
        let mut last = 0i64;
        for &f in &s.files {
            put_zigzag(&mut steps, i64::from(f) - last);
            last = i64::from(f);
        }
    }
    put_bytes(&mut out, &steps);
    put_bytes(&mut out, r.target.as_os_str().as_encoded_bytes());
    put_bytes(&mut out, r.workspace.as_ref().map_or(&[][..], |w| &w[..]));
    seal(&mut out);
    out
}

/// A record as read back: the paths rebuilt in one buffer; the key, the
/// target and the steps still point into the file's bytes.
pub(super) struct Lazy<'a> {
    pub key: &'a str,
    written_at_ns: i64,
    /// Every path, one after the other.
    paths: Vec<u8>,
    /// Per path: where it ends in `paths` (it starts where the one before ends).
    files: Vec<(usize, Option<Recorded>)>,
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
        let n = usize::try_from(r.var()?).ok()?;
        let mut files = Vec::with_capacity(n.min(1 << 22));
        let mut paths: Vec<u8> = Vec::with_capacity(bytes.len().min(1 << 26));
        let (mut start, mut mtime, mut inode) = (0usize, 0i64, 0i64);
        for _ in 0..n {
            let shared = usize::try_from(r.var()?).ok()?;
            let len = usize::try_from(r.var()?).ok()?;
            let end = paths.len();
            if shared > end - start {
                return None;
            }
            paths.extend_from_within(start..start + shared);
            paths.extend_from_slice(r.take(len)?);
            start = end;
            let rec = match r.take(1)? {
                [0] => None,
                [flag @ (1 | 2)] => {
                    let size = r.var()?;
                    mtime = mtime.wrapping_add(r.zigzag()?);
                    let ctime = mtime.wrapping_add(r.zigzag()?);
                    inode = inode.wrapping_add(r.zigzag()?);
                    let mode = u32::try_from(r.var()?).ok()?;
                    Some(Recorded {
                        stat: Stat {
                            size,
                            mtime_ns: mtime,
                            ctime_ns: ctime,
                            inode: inode as u64,
                            mode,
                        },
                        content: if *flag == 2 {
                            Some(r.take(32)?.try_into().ok()?)
                        } else {
                            None
                        },
                    })
                }
                _ => return None,
            };
            files.push((paths.len(), rec));
        }
        let count = usize::try_from(r.var()?).ok()?;
        let steps = r.bytes()?;
        let target = Path::new(OsStr::from_bytes(r.bytes()?));
        let workspace = match r.bytes()? {
            [] => None,
            w => Some(w.try_into().ok()?),
        };
        r.is_empty().then_some(Lazy {
            key,
            written_at_ns,
            paths,
            files,
            count,
            steps,
            target,
            workspace,
        })
    }

    /// The `i`th path.
    fn path(&self, i: usize) -> &Path {
        let start = match i {
            0 => 0,
            _ => self.files[i - 1].0,
        };
        Path::new(OsStr::from_bytes(&self.paths[start..self.files[i].0]))
    }

    /// The indices of the paths that are no longer as recorded (stat'ed in
    /// parallel, straight from the record's bytes).
    pub fn changed(&self) -> Vec<u32> {
        use rayon::prelude::*;
        let written = self.written_at_ns;
        self.files
            .par_iter()
            .enumerate()
            .filter(|(i, (_, old))| !still(self.path(*i), old.as_ref(), written))
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
            let n = usize::try_from(r.var()?).ok()?;
            let mut files = Vec::with_capacity(n.min(1 << 22));
            let mut last = 0i64;
            for _ in 0..n {
                last = last.checked_add(r.zigzag()?)?;
                let f = u32::try_from(last).ok()?;
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
            files: (0..self.files.len())
                .map(|i| (self.path(i).to_path_buf(), self.files[i].1))
                .collect(),
            steps: self.steps()?,
            target: self.target.to_path_buf(),
            workspace: self.workspace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_record_round_trips_and_shared_prefixes_are_stored_once() {
        let stat = |size, mtime_ns, ctime_ns, inode, mode| Stat {
            size,
            mtime_ns,
            ctime_ns,
            inode,
            mode,
        };
        let files: Vec<(PathBuf, Option<Recorded>)> = vec![
            ("/w/a".into(), None),
            (
                "/w/a/b".into(),
                Some(Recorded {
                    stat: stat(
                        3,
                        1_700_000_000_123_456_789,
                        1_700_000_001_000_000_000,
                        99,
                        0o100644,
                    ),
                    content: None,
                }),
            ),
            (
                "/w/a/c".into(),
                Some(Recorded {
                    // Older than the one before, and a lower inode.
                    stat: stat(0, 5, -7, 1, 0o40755),
                    content: Some([7; 32]),
                }),
            ),
            ("/w/é/ü".into(), None),
        ];
        let record = NoopRecord {
            key: "k".into(),
            written_at_ns: 42,
            files,
            steps: vec![StepMessage {
                kind: "copy".into(),
                unit: "svc".into(),
                fingerprint: "fp".into(),
                files: vec![3, 1, 2],
            }],
            target: "target".into(),
            workspace: Some([1; 32]),
        };
        let bytes = encode(&record);
        let lazy = Lazy::decode(&bytes).unwrap();
        assert_eq!(lazy.materialize().unwrap(), record);
        assert_eq!(lazy.path(2), Path::new("/w/a/c"));
        let plain: usize = record.files.iter().map(|(p, _)| p.as_os_str().len()).sum();
        assert_eq!(lazy.paths.len(), plain);
        let stored = bytes.windows(3).filter(|w| w == b"/w/").count();
        assert_eq!(stored, 1, "the shared prefix is stored once");
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 1);
        assert!(Lazy::decode(&cut).is_none());
    }
}
