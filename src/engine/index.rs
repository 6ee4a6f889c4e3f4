//! The step index (`target/.scone/index/XX.bin`): per step, the fingerprint of
//! its last successful run, the digest of its output, its action record and
//! its fingerprint inputs (for `--explain`).
//!
//! A build consults it for every step, so it is read cheaply: each of the 256
//! checksummed shards is read whole (in parallel), but an entry's record (in a
//! binary form, `record_codec`) and input list (JSON) stay slices of the
//! shard's buffer (not copied) and are decoded only when asked for, and then
//! once. A build that reuses 4,000 steps without running them decodes none;
//! one that rebuilds the mesh policy decodes the records of the steps it
//! reads, and nothing else. The output digest is kept beside the record so a
//! dependent's fingerprint needs no record at all.
//!
//! A damaged shard reads as empty: its steps are checked the slow way (by
//! fingerprint), which is always correct.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::record_codec;
use super::shards::{self, shard_of};
use super::store::{ActionRecord, StepState};
use super::wire::{put_bytes, put_u64, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeIX4";
const EXT: &str = "bin";

/// One step's entry; its record is decoded on first use.
#[derive(Debug)]
pub struct IndexEntry {
    pub fingerprint: String,
    /// [`ActionRecord::output_digest`] of the record ("" without one).
    pub output: Arc<str>,
    /// Slices of the shard as read (no copy per entry): the record in its
    /// binary form (`record_codec`), the inputs as JSON.
    record_bin: Bytes,
    record: OnceLock<Option<Arc<ActionRecord>>>,
    inputs_json: Bytes,
}

impl IndexEntry {
    /// The entry of a state; its record is kept only encoded (decoded again
    /// if asked for), so a big build does not hold every record twice.
    fn new(state: &StepState) -> IndexEntry {
        let record = state.record.as_ref();
        IndexEntry {
            fingerprint: state.fingerprint.clone(),
            output: record
                .map_or_else(String::new, |r| r.output_digest())
                .into(),
            record_bin: record.map(record_codec::encode).unwrap_or_default().into(),
            record: OnceLock::new(),
            inputs_json: serde_json::to_vec(&state.inputs).unwrap_or_default().into(),
        }
    }

    /// The action record of the last run (cacheable steps), parsed once.
    pub fn record(&self) -> Option<Arc<ActionRecord>> {
        self.record
            .get_or_init(|| {
                if self.record_bin.is_empty() {
                    return None;
                }
                record_codec::decode(&self.record_bin)
                    .filter(|r| r.fingerprint == self.fingerprint)
                    .map(Arc::new)
            })
            .clone()
    }

    /// The whole state, input list included (for `--explain` and `clean -p`).
    pub fn state(&self) -> StepState {
        StepState {
            fingerprint: self.fingerprint.clone(),
            inputs: serde_json::from_slice(&self.inputs_json).unwrap_or_default(),
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

impl StepIndex {
    /// Reads the index kept in the folder `dir`; missing or damaged shards
    /// are empty.
    pub fn load(dir: &Path) -> StepIndex {
        let entries = shards::load_with(dir, EXT, decode_shard);
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

    pub fn insert(&self, key: String, state: &StepState) {
        let entry = Arc::new(IndexEntry::new(state));
        lock(&self.dirty).insert(shard_of(key.as_bytes()));
        lock(&self.entries).insert(key, entry);
    }

    pub fn remove(&self, key: &str) {
        lock(&self.dirty).insert(shard_of(key.as_bytes()));
        lock(&self.entries).remove(key);
    }

    /// Rewrites the shards that changed, each atomically.
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
    let size: usize = entries
        .iter()
        .map(|(k, e)| 64 + k.len() + e.record_bin.len() + e.inputs_json.len() + 128)
        .sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(MAGIC);
    put_u64(&mut out, entries.len() as u64);
    for (key, e) in entries {
        put_bytes(&mut out, key.as_bytes());
        put_bytes(&mut out, e.fingerprint.as_bytes());
        put_bytes(&mut out, e.output.as_bytes());
        put_bytes(&mut out, &e.record_bin);
        put_bytes(&mut out, &e.inputs_json);
    }
    seal(&mut out);
    out
}

/// The entries of a shard; their records and inputs stay in its buffer.
fn decode_shard(bytes: Vec<u8>) -> Option<Vec<(String, Arc<IndexEntry>)>> {
    let shard = Bytes::from(bytes);
    let body = unseal(&shard)?.strip_prefix(MAGIC)?;
    let mut r = Reader(body);
    // A slice of the shard, by where `r` read it.
    let slice = |b: &[u8]| shard.slice_ref(b);
    let n = r.len()?;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    for _ in 0..n {
        let key = text(r.bytes()?)?;
        let fingerprint = text(r.bytes()?)?;
        let output: Arc<str> = std::str::from_utf8(r.bytes()?).ok()?.into();
        let record_bin = slice(r.bytes()?);
        let inputs_json = slice(r.bytes()?);
        out.push((
            key,
            Arc::new(IndexEntry {
                fingerprint,
                output,
                record_bin,
                record: OnceLock::new(),
                inputs_json,
            }),
        ));
    }
    r.is_empty().then_some(out)
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

    #[test]
    fn round_trips_lazily_and_only_dirty_shards_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let index = StepIndex::load(dir.path());
        assert!(index.get("copy:x").is_none());
        index.insert("copy:x".into(), &state("f1"));
        index.insert("copy:y".into(), &state("f2"));
        index.save().unwrap();
        let again = StepIndex::load(dir.path());
        let x = again.get("copy:x").unwrap();
        assert_eq!(x.fingerprint, "f1");
        assert!(x.record.get().is_none(), "not parsed until asked for");
        let rec = x.record().unwrap();
        assert_eq!(rec.record["k"], "f1");
        assert_eq!(&*x.output, rec.output_digest());
        assert_eq!(x.state().inputs, state("f1").inputs);
        again.remove("copy:y");
        again.save().unwrap();
        let third = StepIndex::load(dir.path());
        assert!(third.get("copy:y").is_none());
        assert_eq!(third.get("copy:x").unwrap().fingerprint, "f1");
    }

    #[test]
    fn a_damaged_shard_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let index = StepIndex::load(dir.path());
        index.insert("copy:x".into(), &state("f1"));
        index.save().unwrap();
        let shard = shards::shard_path(dir.path(), shard_of(b"copy:x"), EXT);
        let mut bytes = std::fs::read(&shard).unwrap();
        let at = bytes.len() / 2;
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
        index.insert("copy:x".into(), &s);
        index.save().unwrap();
        assert!(StepIndex::load(dir.path())
            .get("copy:x")
            .unwrap()
            .record()
            .is_none());
    }
}
