//! The step index (`target/.scone/index/XX.bin`): per step, the fingerprint of
//! its last successful run, the digest of its output, its action record and
//! its fingerprint inputs (for `--explain`).
//!
//! A build consults it for every step, so it is read cheaply. Opening it
//! reads only the heads of the 256 checksummed shards (in parallel, into
//! buffers reused from shard to shard): key, fingerprint and output digest of each
//! step. An entry's record (in a binary form, `record_codec`) and its input
//! list (JSON) are read from its shard's file when first asked for, one group
//! at a time (records by step kind, input lists apart: see `index/shard.rs`),
//! and the record is decoded once. A build that reuses 4,000 steps without
//! running them reads no record; one that rebuilds the mesh policy reads the
//! sign records, and nothing else. The output digest is kept in the heads so
//! a dependent's fingerprint needs no record at all.
//!
//! A damaged shard reads as empty: its steps are checked the slow way (by
//! fingerprint), which is always correct. A record that can no longer be
//! read is looked up in the action cache instead.

mod shard;

use bytes::Bytes;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::record_codec;
use super::shards::{self, shard_of, SHARDS};
use super::store::{ActionRecord, StepState};
use shard::{Body, Loc, ShardFile};

const EXT: &str = "bin";

/// Where an entry's record and input list are.
#[derive(Debug)]
enum Contents {
    /// Made by this build. Its input list (a mesh step's has thousands of
    /// entries) is encoded when its shard is saved, off the build's path.
    Own {
        record: Bytes,
        inputs: Vec<(String, String)>,
    },
    /// In the shard file the index was opened from.
    Stored {
        file: Arc<ShardFile>,
        record: Loc,
        inputs: Loc,
    },
}

/// One step's entry; its record is read and decoded on first use.
#[derive(Debug)]
pub struct IndexEntry {
    pub fingerprint: String,
    /// [`ActionRecord::output_digest`] of the record ("" without one).
    pub output: Arc<str>,
    body: Contents,
    record: OnceLock<Option<Arc<ActionRecord>>>,
    /// The record without its files (see [`IndexEntry::record_only`]).
    record_only: OnceLock<Option<Arc<ActionRecord>>>,
}

impl IndexEntry {
    /// The entry of a state; its record is kept only encoded (decoded again
    /// if asked for), so a big build does not hold every record twice.
    fn new(
        fingerprint: &str,
        inputs: Vec<(String, String)>,
        record: Option<&ActionRecord>,
    ) -> IndexEntry {
        IndexEntry {
            fingerprint: fingerprint.to_string(),
            output: record
                .map_or_else(String::new, |r| r.output_digest())
                .into(),
            body: Contents::Own {
                record: record.map(record_codec::encode).unwrap_or_default().into(),
                inputs,
            },
            record: OnceLock::new(),
            record_only: OnceLock::new(),
        }
    }

    /// The record in its binary form (empty: none, or unreadable).
    fn record_bin(&self) -> Bytes {
        match &self.body {
            Contents::Own { record, .. } => record.clone(),
            Contents::Stored { file, record, .. } => file.slice(*record).unwrap_or_default(),
        }
    }

    /// The input list as JSON (empty: none, or unreadable).
    fn inputs_json(&self) -> Bytes {
        match &self.body {
            Contents::Own { inputs, .. } => serde_json::to_vec(inputs).unwrap_or_default().into(),
            Contents::Stored { file, inputs, .. } => file.slice(*inputs).unwrap_or_default(),
        }
    }

    /// The action record of the last run (cacheable steps), read and parsed
    /// once; `None` if there is none or it cannot be read.
    pub fn record(&self) -> Option<Arc<ActionRecord>> {
        self.record
            .get_or_init(|| self.decoded(record_codec::decode))
            .clone()
    }

    /// The record decoded by `decode`, if it is this entry's.
    fn decoded(&self, decode: fn(&[u8]) -> Option<ActionRecord>) -> Option<Arc<ActionRecord>> {
        decode(&self.record_bin())
            .filter(|r| r.fingerprint == self.fingerprint)
            .map(Arc::new)
    }

    /// The record with only its step, fingerprint and `record` (see
    /// `record_codec::decode_record_only`), decoded once; the whole record if
    /// that was decoded already.
    pub fn record_only(&self) -> Option<Arc<ActionRecord>> {
        if let Some(whole) = self.record.get() {
            return whole.clone();
        }
        self.record_only
            .get_or_init(|| self.decoded(record_codec::decode_record_only))
            .clone()
    }

    /// The fingerprint inputs of the last run (`--explain`); empty if they
    /// cannot be read.
    pub fn inputs(&self) -> Vec<(String, String)> {
        if let Contents::Own { inputs, .. } = &self.body {
            return inputs.clone();
        }
        serde_json::from_slice(&self.inputs_json()).unwrap_or_default()
    }

    /// The whole state, input list included (for `--explain` and `clean -p`).
    pub fn state(&self) -> StepState {
        StepState {
            fingerprint: self.fingerprint.clone(),
            inputs: self.inputs(),
            record: self.record().map(|r| r.as_ref().clone()),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct StepIndex {
    dir: PathBuf,
    entries: Mutex<HashMap<String, Arc<IndexEntry>>>,
    /// Shards with changed entries.
    dirty: Mutex<HashSet<usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The heads of the shard file at `path`, read into `buf` (reused between
/// shards, so opening the index allocates no buffer per shard).
fn open_shard(path: &Path, buf: &mut Vec<u8>) -> Option<Vec<(String, Arc<IndexEntry>)>> {
    let mut file = File::open(path).ok()?;
    // Most heads fit in the first read; the rest of the file is not read.
    buf.resize(16 * 1024, 0);
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let end = shard::heads_end(buf.get(..16)?)?;
    if end > got {
        buf.resize(end, 0);
        file.read_exact(&mut buf[got..]).ok()?;
    }
    let (file, heads) = shard::decode_heads(path, &buf[..end])?;
    Some(
        heads
            .into_iter()
            .map(|h| {
                let entry = IndexEntry {
                    fingerprint: h.fingerprint,
                    output: h.output,
                    body: Contents::Stored {
                        file: Arc::clone(&file),
                        record: h.record,
                        inputs: h.inputs,
                    },
                    record: OnceLock::new(),
                    record_only: OnceLock::new(),
                };
                (h.key, Arc::new(entry))
            })
            .collect(),
    )
}

impl StepIndex {
    /// Opens the index kept in the folder `dir`: the heads of every shard;
    /// missing or damaged shards are empty.
    pub fn load(dir: &Path) -> StepIndex {
        let shards: Vec<Vec<(String, Arc<IndexEntry>)>> = (0..SHARDS)
            .into_par_iter()
            .map_init(Vec::new, |buf, i| {
                open_shard(&shards::shard_path(dir, i, EXT), buf).unwrap_or_default()
            })
            .collect();
        let mut entries = HashMap::with_capacity(shards.iter().map(Vec::len).sum());
        for shard in shards {
            entries.extend(shard);
        }
        StepIndex {
            dir: dir.to_path_buf(),
            entries: Mutex::new(entries),
            dirty: Mutex::default(),
        }
    }

    /// The entry of step `key` (`kind:unit`).
    pub fn get(&self, key: &str) -> Option<Arc<IndexEntry>> {
        lock(&self.entries).get(key).cloned()
    }

    /// The entry of step `kind:unit`, its key made in a buffer of the
    /// calling thread (a build looks up every step).
    pub fn get_parts(&self, kind: &str, unit: &str) -> Option<Arc<IndexEntry>> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(kind);
            key.push(':');
            key.push_str(unit);
            self.get(key)
        })
    }

    /// Sets the entry of step `key`: a run's fingerprint, inputs and record
    /// (the input list is moved in: a mesh step's has thousands of entries).
    pub fn insert(
        &self,
        key: String,
        fingerprint: &str,
        inputs: Vec<(String, String)>,
        record: Option<&ActionRecord>,
    ) {
        let entry = Arc::new(IndexEntry::new(fingerprint, inputs, record));
        lock(&self.dirty).insert(shard_of(key.as_bytes()));
        lock(&self.entries).insert(key, entry);
    }

    pub fn remove(&self, key: &str) {
        lock(&self.dirty).insert(shard_of(key.as_bytes()));
        lock(&self.entries).remove(key);
    }

    /// Rewrites the shards that changed, each atomically. The entries read
    /// from a shard file are read whole first (the file is about to be
    /// replaced); one whose record can no longer be read is left out.
    pub fn save(&self) -> io::Result<()> {
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        shards::save_with(
            &self.dir,
            EXT,
            &lock(&self.entries),
            &dirty,
            |k| k.as_bytes(),
            |entries| Ok(encode_shard(entries)),
        )
    }
}

fn encode_shard(entries: &[(&String, &Arc<IndexEntry>)]) -> Vec<u8> {
    let bodies: Vec<Body<'_>> = entries
        .iter()
        .filter_map(|(key, e)| {
            let record = e.record_bin();
            // An unreadable record of a step with an output: not kept.
            if record.is_empty() && !e.output.is_empty() {
                return None;
            }
            Some(Body {
                key,
                fingerprint: &e.fingerprint,
                output: &e.output,
                record,
                inputs: e.inputs_json(),
            })
        })
        .collect();
    shard::encode(&bodies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn state(fp: &str) -> StepState {
        StepState {
            fingerprint: fp.into(),
            inputs: vec![("file:a".into(), "d1".into())],
            record: Some(ActionRecord {
                step: "copy:x".into(),
                fingerprint: fp.into(),
                record: serde_json::json!({"k": fp}),
                files: BTreeMap::from([("f".to_string(), "b".repeat(64))]),
                publish: vec![],
                info: serde_json::Value::Null,
            }),
        }
    }

    fn put(index: &StepIndex, key: &str, s: &StepState) {
        index.insert(
            key.into(),
            &s.fingerprint,
            s.inputs.clone(),
            s.record.as_ref(),
        );
    }

    /// A folder whose index holds `copy:x` at fingerprint `f1`.
    fn saved_x() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let index = StepIndex::load(dir.path());
        put(&index, "copy:x", &state("f1"));
        index.save().unwrap();
        dir
    }

    #[test]
    fn round_trips_lazily_and_only_dirty_shards_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let index = StepIndex::load(dir.path());
        assert!(index.get("copy:x").is_none());
        put(&index, "copy:x", &state("f1"));
        put(&index, "copy:y", &state("f2"));
        index.save().unwrap();
        let again = StepIndex::load(dir.path());
        let x = again.get("copy:x").unwrap();
        assert!(Arc::ptr_eq(&again.get_parts("copy", "x").unwrap(), &x));
        assert!(again.get_parts("copy", "y").is_some() && again.get_parts("copy", "z").is_none());
        assert_eq!(x.fingerprint, "f1");
        assert!(x.record.get().is_none(), "not read until asked for");
        let only = x.record_only().unwrap();
        assert_eq!(only.record["k"], "f1");
        assert!(only.files.is_empty(), "files are not decoded");
        assert!(x.record.get().is_none());
        let rec = x.record().unwrap();
        assert_eq!(rec.record["k"], "f1");
        assert_eq!(rec.files.len(), 1);
        assert_eq!(
            x.record_only().unwrap().files.len(),
            1,
            "the whole one once decoded"
        );
        assert_eq!(&*x.output, rec.output_digest());
        assert_eq!(x.state().inputs, state("f1").inputs);
        again.remove("copy:y");
        again.save().unwrap();
        let third = StepIndex::load(dir.path());
        assert!(third.get("copy:y").is_none());
        assert_eq!(third.get("copy:x").unwrap().fingerprint, "f1");
    }

    #[test]
    fn a_record_read_after_its_shard_was_replaced_is_absent_not_another() {
        let dir = saved_x();
        let opened = StepIndex::load(dir.path());
        let x = opened.get("copy:x").unwrap();
        // Another build replaces the shard before this one reads the record.
        let other = StepIndex::load(dir.path());
        put(&other, "copy:x", &state("f2"));
        other.save().unwrap();
        assert!(x.record().is_none());
        // Saving what was opened leaves out the entry it can no longer read.
        let neighbour = (0..)
            .map(|i| format!("copy:y{i}"))
            .find(|k| shard_of(k.as_bytes()) == shard_of(b"copy:x"))
            .unwrap();
        put(&opened, &neighbour, &state("f3"));
        opened.save().unwrap();
        let again = StepIndex::load(dir.path());
        assert!(again.get("copy:x").is_none());
        assert_eq!(again.get(&neighbour).unwrap().fingerprint, "f3");
    }

    #[test]
    fn a_damaged_shard_reads_as_empty() {
        let dir = saved_x();
        let shard = shards::shard_path(dir.path(), shard_of(b"copy:x"), EXT);
        let mut bytes = std::fs::read(&shard).unwrap();
        let at = 20;
        bytes[at] ^= 1;
        std::fs::write(&shard, &bytes).unwrap();
        assert!(StepIndex::load(dir.path()).get("copy:x").is_none());
    }

    #[test]
    fn a_record_of_another_fingerprint_is_no_record() {
        let mut s = state("f1");
        if let Some(r) = s.record.as_mut() {
            r.fingerprint = "other".into();
        }
        let dir = tempfile::tempdir().unwrap();
        let index = StepIndex::load(dir.path());
        put(&index, "copy:x", &s);
        index.save().unwrap();
        assert!(StepIndex::load(dir.path())
            .get("copy:x")
            .unwrap()
            .record()
            .is_none());
    }
}
