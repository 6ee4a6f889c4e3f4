//! The action records the build state's steps name, one after the other in
//! `target/.scone/records`: a log that grows by what changed. A build appends
//! the records of the steps that ran whose bytes the state did not have
//! already; the steps it kept point where they pointed. The log is written
//! whole again only when less than half of it is still named (or by
//! `scone clean --gc`), so a build that ran 8 of 6,000 steps writes 8
//! records, not 6 MB (docs/performance.md).
//!
//! Each record is its JSON without the fingerprint's inputs (which stay in
//! the action cache for `--explain`), its `record` field first: a dependent
//! that reads only fields of it (a mesh step, of every service) parses those
//! out of that value and leaves the rest unread
//! ([`super::StepEntry::record_fields`]).
//!
//! A step's place in the log is its [`RecordAt`]: offset, length and the
//! blake3 of the bytes, kept in the state's head. A record is trusted only if
//! its bytes hash to that digest; otherwise (a torn append, a log removed or
//! compacted by a build whose state was never written) it reads as none, and
//! whoever asked takes it from the action cache, `actions/`.
//!
//! Every write is under the target lock and comes before the state that
//! names it: an append never touches bytes a state names, and a compacted
//! log replaces the old one only after it is whole (temp file, rename). The
//! log is appended to, and read, only as a regular file opened without
//! following links: anything else in its place is replaced whole.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{BuildState, Digest};

/// The log's name under `target/.scone`.
pub const FILE: &str = "records";

/// Dead bytes a log may hold besides twice its live ones before it is
/// compacted: a small workspace's log is not rewritten every build.
pub(super) const SLACK: u64 = 1 << 14;

/// Where a step's record is: `len` bytes at `at` of the log (or of the
/// records not written yet, while `pending`), hashing to `sum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAt {
    pub at: u64,
    pub len: u64,
    pub sum: Digest,
    pending: bool,
}

impl RecordAt {
    /// A place in the log, as the state's head names it.
    pub fn in_log(at: u64, len: u64, sum: Digest) -> RecordAt {
        RecordAt {
            at,
            len,
            sum,
            pending: false,
        }
    }
}

/// The log a state reads its records from, and the records a state just
/// assembled has that are not in it yet.
#[derive(Debug, Default)]
pub(crate) struct Records {
    log: Option<PathBuf>,
    pub(super) file: OnceLock<Option<File>>,
    /// The whole log, when a build reads most of it ([`Records::read_all`]).
    all: OnceLock<Option<Vec<u8>>>,
    pending: Vec<u8>,
}

impl Records {
    /// The log at `path`, opened when a record is first read.
    pub fn in_log(path: PathBuf) -> Records {
        Records {
            log: Some(path),
            ..Records::default()
        }
    }

    /// `bytes` as a record not written yet: its place.
    pub fn add(&mut self, bytes: &[u8]) -> RecordAt {
        let at = self.pending.len() as u64;
        self.pending.extend_from_slice(bytes);
        RecordAt {
            at,
            len: bytes.len() as u64,
            sum: *blake3::hash(bytes).as_bytes(),
            pending: true,
        }
    }

    /// The bytes at `place`, if they are the ones it names.
    pub fn read(&self, place: &RecordAt) -> Option<Vec<u8>> {
        let len = usize::try_from(place.len).ok()?;
        let slice = |from: &[u8]| -> Option<Vec<u8>> {
            let at = usize::try_from(place.at).ok()?;
            Some(from.get(at..at.checked_add(len)?)?.to_vec())
        };
        let bytes = if place.pending {
            slice(&self.pending)?
        } else if let Some(Some(all)) = self.all.get() {
            slice(all)?
        } else {
            let file = self
                .file
                .get_or_init(|| open_regular(self.log.as_ref()?))
                .as_ref()?;
            let mut bytes = vec![0; len];
            file.read_exact_at(&mut bytes, place.at).ok()?;
            bytes
        };
        (blake3::hash(&bytes).as_bytes() == &place.sum).then_some(bytes)
    }
}

impl Records {
    /// Reads the whole log now, for a build about to read most records:
    /// one read instead of one per record.
    pub fn read_all(&self) {
        self.all.get_or_init(|| {
            let file = open_regular(self.log.as_ref()?)?;
            let mut all = vec![0; usize::try_from(file.metadata().ok()?.len()).ok()?];
            file.read_exact_at(&mut all, 0).ok()?;
            Some(all)
        });
    }
}

/// The file at `path` for reading (the log, the state), if it is a regular
/// file: never through a link planted in its place, nor a FIFO that would
/// block.
pub(super) fn open_regular(path: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// Writes the records `state` has that are not in the log `<dir>/records`
/// yet, and points its steps at them: appended, or, when less than half of
/// the log would still be named (or `compact`), the log written again with
/// only the records of `state`, in step order. Then `state` reads from there.
/// `true`: the log was written again (every step's record moved).
pub fn commit(state: &mut BuildState, dir: &Path, compact: bool) -> std::io::Result<bool> {
    let path = dir.join(FILE);
    // Anything but a regular file there (a link, planted or not) is
    // replaced whole, never written through.
    let (end, regular) = match std::fs::symlink_metadata(&path) {
        Ok(meta) => (meta.len(), meta.is_file()),
        Err(_) => {
            std::fs::create_dir_all(dir)?;
            (0, true)
        }
    };
    let pending = state.records.pending.len() as u64;
    let live: u64 = state.steps.iter().map(|s| s.record.len).sum();
    if compact || !regular || end + pending > live.saturating_mul(2) + SLACK {
        let mut log = Vec::with_capacity(usize::try_from(live).unwrap_or(0));
        let mut places = Vec::with_capacity(state.steps.len());
        state.records.read_all();
        for step in &state.steps {
            // A record that does not read keeps its digest and no bytes:
            // it still reads as none.
            let bytes = state.records.read(&step.record).unwrap_or_default();
            places.push(RecordAt::in_log(
                log.len() as u64,
                bytes.len() as u64,
                step.record.sum,
            ));
            log.extend_from_slice(&bytes);
        }
        crate::durable::write_checked(&path, &log)?;
        for (step, place) in state.steps.iter_mut().zip(places) {
            step.record = place;
        }
        state.records = Records::in_log(path);
        return Ok(true);
    }
    if pending > 0 {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        file.write_all_at(&state.records.pending, end)?;
    }
    for step in state.steps.iter_mut().filter(|s| s.record.pending) {
        step.record.at += end;
        step.record.pending = false;
    }
    state.records = Records::in_log(path);
    Ok(false)
}
