//! The binary form of `noop.bin` (see [`super`]): the [`super::super::wire`]
//! encoding, sealed with a checksum, made compact because a 1,000-service
//! build records some 26,000 paths: each path shares its prefix with the one
//! before it (they are sorted), and stats are varints, mtimes and inodes as
//! differences from the path before. Reading rebuilds the paths into one
//! buffer (no allocation per path); the steps are decoded only when something
//! changed or they are to be printed. The journal (`super::journal`) stores
//! states and step lists the same way.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::files::Files;
use super::journal::{Journal, Origin};
use super::{still, NoopRecord, Recorded, StepMessage};
use crate::engine::statcache::Stat;
use crate::engine::wire::{put_bytes, put_u64, put_var, put_zigzag, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeNP3";

/// Writes what was recorded of a path; `last` is the (mtime, inode) of the
/// state written before (updated), as its fields are stored as differences.
pub(super) fn put_state(out: &mut Vec<u8>, rec: &Option<Recorded>, last: &mut (i64, i64)) {
    match rec {
        None => out.push(0),
        Some(Recorded { stat, content }) => {
            out.push(if content.is_some() { 2 } else { 1 });
            put_var(out, stat.size);
            put_zigzag(out, stat.mtime_ns.wrapping_sub(last.0));
            put_zigzag(out, stat.ctime_ns.wrapping_sub(stat.mtime_ns));
            put_zigzag(out, (stat.inode as i64).wrapping_sub(last.1));
            put_var(out, u64::from(stat.mode));
            *last = (stat.mtime_ns, stat.inode as i64);
            if let Some(c) = content {
                out.extend_from_slice(c);
            }
        }
    }
}

/// Reads what [`put_state`] wrote.
pub(super) fn state(r: &mut Reader<'_>, last: &mut (i64, i64)) -> Option<Option<Recorded>> {
    Some(match r.take(1)? {
        [0] => None,
        [flag @ (1 | 2)] => {
            let size = r.var()?;
            let mtime = last.0.wrapping_add(r.zigzag()?);
            let ctime = mtime.wrapping_add(r.zigzag()?);
            let inode = last.1.wrapping_add(r.zigzag()?);
            let mode = u32::try_from(r.var()?).ok()?;
            *last = (mtime, inode);
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
    })
}

/// Writes a step's file list (sorted indices, as differences).
pub(super) fn put_list(out: &mut Vec<u8>, files: &[u32]) {
    put_var(out, files.len() as u64);
    let mut last = 0i64;
    for &f in files {
        put_zigzag(out, i64::from(f) - last);
        last = i64::from(f);
    }
}

/// Reads what [`put_list`] wrote; `None` if an index is not below `files`.
pub(super) fn list(r: &mut Reader<'_>, files: usize) -> Option<Vec<u32>> {
    let n = usize::try_from(r.var()?).ok()?;
    let mut out = Vec::with_capacity(n.min(1 << 22));
    let mut last = 0i64;
    for _ in 0..n {
        last = last.checked_add(r.zigzag()?)?;
        let f = u32::try_from(last).ok()?;
        if f as usize >= files {
            return None;
        }
        out.push(f);
    }
    Some(out)
}

pub(super) fn encode(r: &NoopRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 * r.files.len() + 80 * r.steps.len() + 4096);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, r.key.as_bytes());
    put_u64(&mut out, r.written_at_ns as u64);
    // In the order of their bytes; the steps' lists follow the renumbering.
    let order = r.files.ordered();
    let mut renumber = Vec::new();
    if !r.files.is_ordered() {
        renumber = vec![u32::MAX; r.files.len()];
        for (new, &i) in order.iter().enumerate() {
            renumber[i] = new as u32;
        }
    }
    put_var(&mut out, order.len() as u64);
    let mut prev: &[u8] = &[];
    let mut last = (0i64, 0i64);
    for &i in &order {
        let path = r.files.path(i).as_os_str().as_encoded_bytes();
        let shared = path.iter().zip(prev).take_while(|(a, b)| a == b).count();
        put_var(&mut out, shared as u64);
        put_var(&mut out, (path.len() - shared) as u64);
        out.extend_from_slice(&path[shared..]);
        prev = path;
        put_state(&mut out, r.files.state(i), &mut last);
    }
    put_var(&mut out, r.steps.len() as u64);
    let mut steps = Vec::with_capacity(100 * r.steps.len());
    let mut list = Vec::new();
    for s in &r.steps {
        put_bytes(&mut steps, s.kind.as_bytes());
        put_bytes(&mut steps, s.unit.as_bytes());
        put_bytes(&mut steps, s.fingerprint.as_bytes());
        if renumber.is_empty() {
            put_list(&mut steps, &s.files);
        } else {
            list.clear();
            list.extend(s.files.iter().map(|&f| renumber[f as usize]));
            list.sort_unstable();
            put_list(&mut steps, &list);
        }
    }
    put_bytes(&mut out, &steps);
    put_bytes(&mut out, r.target.as_os_str().as_encoded_bytes());
    put_bytes(&mut out, r.workspace.as_ref().map_or(&[][..], |w| &w[..]));
    seal(&mut out);
    out
}

/// A record as read back: the paths in one buffer; the key, the target and
/// the steps still point into the file's bytes. Its journal (`noop.log`, see
/// [`super::journal`]), if any, is applied as it is read.
pub(super) struct Lazy<'a> {
    pub key: &'a str,
    pub(super) written_at_ns: i64,
    pub(super) files: Files,
    pub count: usize,
    steps: &'a [u8],
    pub target: &'a Path,
    workspace: Option<[u8; 32]>,
    /// The checksum the file is sealed with: a journal names its record by it.
    seal: [u8; 32],
    /// How many paths the file has.
    base: usize,
    /// Per path of the file: whether the journal set its state (empty
    /// without a journal).
    set: Vec<bool>,
    /// Steps the journal recorded again (by index, ascending).
    overrides: Vec<(usize, String, Vec<u32>)>,
}

impl<'a> Lazy<'a> {
    /// The record of `bytes` with `journal` applied, if it is this record's
    /// (one of an earlier record is left out: see [`super::journal`]).
    pub fn decode(bytes: &'a [u8], journal: Option<Journal<'a>>) -> Option<Lazy<'a>> {
        let body = unseal(bytes)?;
        let seal: [u8; 32] = bytes[body.len()..].try_into().ok()?;
        let mut r = Reader(body.strip_prefix(MAGIC)?);
        let key = std::str::from_utf8(r.bytes()?).ok()?;
        let mut written_at_ns = r.u64()? as i64;
        let n = usize::try_from(r.var()?).ok()?;
        let mut files = Files::with_capacity(n.min(1 << 22), bytes.len().min(1 << 26));
        let mut last = (0i64, 0i64);
        for _ in 0..n {
            let shared = usize::try_from(r.var()?).ok()?;
            let len = usize::try_from(r.var()?).ok()?;
            let rest = r.take(len)?;
            let recorded = state(&mut r, &mut last)?;
            files.push_shared(shared, rest, recorded)?;
        }
        let count = usize::try_from(r.var()?).ok()?;
        let steps = r.bytes()?;
        let target = Path::new(OsStr::from_bytes(r.bytes()?));
        let workspace = match r.bytes()? {
            [] => None,
            w => Some(w.try_into().ok()?),
        };
        if !r.is_empty() {
            return None;
        }
        let mut set = Vec::new();
        let mut overrides = Vec::new();
        if let Some(j) = journal.filter(|j| j.seal == seal) {
            written_at_ns = j.written_at_ns;
            set = vec![false; n];
            for (i, state) in j.set {
                *set.get_mut(i)? = true;
                files.set(i, state);
            }
            for i in j.dropped {
                if i >= n {
                    return None;
                }
                files.drop_path(i);
            }
            for (path, state) in j.added {
                files.push(path, state);
            }
            let fits = j
                .steps
                .iter()
                .all(|(i, _, l)| *i < count && l.iter().all(|&f| (f as usize) < files.len()));
            if !fits {
                return None;
            }
            overrides = j.steps;
        }
        Some(Lazy {
            key,
            written_at_ns,
            files,
            count,
            steps,
            target,
            workspace,
            seal,
            base: n,
            set,
            overrides,
        })
    }

    /// The indices of the paths that are no longer as recorded (stat'ed in
    /// parallel, straight from the record's bytes).
    pub fn changed(&self) -> Vec<u32> {
        use rayon::prelude::*;
        let written = self.written_at_ns;
        (0..self.files.len())
            .into_par_iter()
            .filter(|&i| {
                self.files.is_live(i)
                    && !still(self.files.path(i), self.files.state(i).as_ref(), written)
            })
            .map(|i| i as u32)
            .collect()
    }

    /// The steps, as the journal left them.
    pub fn steps(&self) -> Option<Vec<StepMessage>> {
        let mut r = Reader(self.steps);
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let mut out = Vec::with_capacity(self.count.min(1 << 22));
        let mut overrides = self.overrides.iter().peekable();
        for i in 0..self.count {
            let kind = text(r.bytes()?)?;
            let unit = text(r.bytes()?)?;
            let mut fingerprint = text(r.bytes()?)?;
            let mut files = list(&mut r, self.base)?;
            if let Some((_, f, l)) = overrides.next_if(|(j, _, _)| *j == i) {
                fingerprint.clone_from(f);
                files.clone_from(l);
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

    /// The whole record, owned; it remembers its file and journal, so that
    /// saving it again can write only what changed (the next journal).
    pub fn into_record(self) -> Option<NoopRecord> {
        let steps = self.steps()?;
        let mut touched = vec![false; steps.len()];
        for (i, _, _) in &self.overrides {
            touched[*i] = true;
        }
        let origin = Origin {
            seal: self.seal,
            key: self.key.to_string(),
            target: self.target.to_path_buf(),
            workspace: self.workspace,
            set: {
                let mut set = self.set;
                set.resize(self.base, false);
                set
            },
            steps: touched,
        };
        Some(NoopRecord {
            key: self.key.to_string(),
            written_at_ns: self.written_at_ns,
            files: self.files,
            steps,
            target: self.target.to_path_buf(),
            workspace: self.workspace,
            origin: Some(origin),
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
            files: files.into_iter().collect(),
            steps: vec![StepMessage {
                kind: "copy".into(),
                unit: "svc".into(),
                fingerprint: "fp".into(),
                files: vec![3, 1, 2],
            }],
            target: "target".into(),
            workspace: Some([1; 32]),
            origin: None,
        };
        let bytes = encode(&record);
        let lazy = Lazy::decode(&bytes, None).unwrap();
        assert_eq!(lazy.files.path(2), Path::new("/w/a/c"));
        let mut read = Lazy::decode(&bytes, None).unwrap().into_record().unwrap();
        assert!(read.origin.take().is_some(), "it remembers its file");
        assert_eq!(read, record);
        let stored = bytes.windows(3).filter(|w| w == b"/w/").count();
        assert_eq!(stored, 1, "the shared prefix is stored once");
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 1);
        assert!(Lazy::decode(&cut, None).is_none());
    }
}
