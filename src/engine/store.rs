//! The content-addressed store under `target/.scone/`: blobs, action records and
//! per-step state.
//!
//! ```text
//! target/.scone/
//!   lock                      advisory lock held for a whole build (lock.rs)
//!   stat-cache/XX.bin         path+stat → blake3 (statcache.rs), in 256 checksummed shards
//!   parse-cache.bin           parsed manifests by their text (workspace/load/parse_cache.rs)
//!   blobs/<2 hex>/<blake3>    every file a step made, by content; mtime pinned
//!   actions/<2 hex>/<fp>.json fingerprint → ActionRecord (the action cache)
//!   index/XX.bin              per step (256 shards): the last fingerprint, its output
//!                             digest, its action record and its input list (for
//!                             --explain and `clean -p`); records and input lists
//!                             are read on first use (index.rs, index/shard.rs)
//!   memo/<blake3 of step>.bin what a mesh step read of its deps, by their output
//!                             digests, for its next run (memo.rs)
//!   tmp/                      scratch folders of running steps; wiped per build
//! ```
//!
//! A cache hit counts only when the action record parses and every blob it
//! names is present with the right digest (checked through the stat cache, so
//! an untouched blob is not re-read, and a flipped byte is seen).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::index::{IndexEntry, StepIndex};
use super::memo::{self, Section};
use super::statcache::{self, StatCache};
use super::step::StepId;
use crate::durable;

/// A published entry with its blob digests resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Published {
    Dir {
        dir: String,
        files: BTreeMap<String, String>,
    },
    File {
        path: String,
        digest: String,
    },
}

/// The result of one step: what the action cache maps a fingerprint to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `<kind>:<unit>`.
    pub step: String,
    pub fingerprint: String,
    /// The step's small JSON record.
    pub record: serde_json::Value,
    /// Files the step made: name → blob digest.
    pub files: BTreeMap<String, String>,
    /// What the step published under `target/`.
    pub publish: Vec<Published>,
    /// What the run did; not part of [`ActionRecord::output_digest`].
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub info: serde_json::Value,
}

impl ActionRecord {
    /// What a step's messages show of this result: its record and what the
    /// run did (`info`).
    pub fn outputs(&self) -> serde_json::Value {
        let mut outputs = self.record.clone();
        if let (Some(out), Some(info)) = (outputs.as_object_mut(), self.info.as_object()) {
            out.extend(info.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        outputs
    }

    /// The digest of everything downstream steps can see of this result. Deps
    /// enter fingerprints through it, so a rebuilt step whose output did not
    /// change leaves its dependents fresh.
    pub fn output_digest(&self) -> String {
        let canonical = serde_json::json!({
            "record": self.record,
            "files": self.files,
            "publish": self.publish,
        });
        blake3::hash(canonical.to_string().as_bytes())
            .to_hex()
            .to_string()
    }

    /// Every blob digest this record depends on.
    pub fn blob_digests(&self) -> impl Iterator<Item = &String> {
        self.files.values().chain(self.publish.iter().flat_map(|p| {
            let v: Box<dyn Iterator<Item = &String>> = match p {
                Published::Dir { files, .. } => Box::new(files.values()),
                Published::File { digest, .. } => Box::new(std::iter::once(digest)),
            };
            v
        }))
    }
}

/// The last successful run of a step: for `--explain` and `clean -p`, and its
/// record so a fresh step needs no file of its own.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepState {
    pub fingerprint: String,
    /// `(label, digest)` of every fingerprint input, in order.
    pub inputs: Vec<(String, String)>,
    /// The action record of that run (cacheable steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ActionRecord>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    stats: StatCache,
    index: StepIndex,
    /// Memos of the steps that ran, to write at [`Store::save`].
    memos: Mutex<Vec<(StepId, Vec<Section>)>>,
}

fn fan_out(dir: &Path, key: &str, suffix: &str) -> PathBuf {
    let prefix = key.get(..2).unwrap_or("xx");
    dir.join(prefix).join(format!("{key}{suffix}"))
}

impl Store {
    /// Opens (creating) the store in `<target>/.scone`.
    pub fn open(target_dir: &Path) -> io::Result<Store> {
        let root = target_dir.join(".scone");
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("actions"))?;
        let stats = StatCache::load(&root.join("stat-cache"));
        let index = StepIndex::load(&root.join("index"));
        Ok(Store {
            root,
            stats,
            index,
            memos: Mutex::new(Vec::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stats(&self) -> &StatCache {
        &self.stats
    }

    /// Empties `tmp/` (left-overs of an interrupted build) and returns it.
    pub fn reset_tmp(&self) -> io::Result<PathBuf> {
        let tmp = self.root.join("tmp");
        durable::remove_all(&tmp)?;
        fs::create_dir_all(&tmp)?;
        Ok(tmp)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        fan_out(&self.root.join("blobs"), digest, "")
    }

    /// Whether the blob is present with the right content.
    pub fn blob_intact(&self, digest: &str) -> bool {
        match self.stats.digest(&self.blob_path(digest)) {
            Ok(d) => d.digest == digest,
            Err(_) => false,
        }
    }

    /// Moves a finished file into the store; returns its digest.
    pub fn ingest_move(&self, path: &Path) -> io::Result<String> {
        let (digest, _) = statcache::hash_file(path)?;
        let dest = self.blob_path(&digest);
        if self.blob_intact(&digest) {
            fs::remove_file(path)?;
            return Ok(digest);
        }
        File::open(path)?.sync_all()?;
        self.place(path, &dest, &digest)?;
        Ok(digest)
    }

    /// Puts bytes made in memory into the store; returns their digest. Bytes
    /// the store already holds are not written at all (a chart whose files
    /// mostly did not change).
    pub fn ingest_bytes(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        if self.blob_intact(&digest) {
            return Ok(digest);
        }
        let tmp = self.temp_blob_path(&digest)?;
        let written = (|| {
            let mut file = File::create(&tmp)?;
            std::io::Write::write_all(&mut file, bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.place(&tmp, &self.blob_path(&digest), &digest)?;
        Ok(digest)
    }

    /// Copies a file into the store (the original stays); returns its digest.
    pub fn ingest_copy(&self, path: &Path) -> io::Result<String> {
        let (digest, _) = statcache::hash_file(path)?;
        if self.blob_intact(&digest) {
            return Ok(digest);
        }
        let tmp = self.temp_blob_path(&digest)?;
        fs::copy(path, &tmp)?;
        File::open(&tmp)?.sync_all()?;
        // Verify what we copied: the source may have changed under us.
        let (copied, _) = statcache::hash_file(&tmp)?;
        if copied != digest {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::other(format!(
                "{} changed while it was being stored",
                path.display()
            )));
        }
        self.place(&tmp, &self.blob_path(&digest), &digest)?;
        Ok(digest)
    }

    /// A fresh temporary path beside where blob `digest` goes (its folder
    /// made), for bytes moved into place once written and verified (a
    /// download: [`Store::adopt`]).
    pub fn temp_blob_path(&self, digest: &str) -> io::Result<PathBuf> {
        let dest = self.blob_path(digest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(durable::temp_sibling(&dest))
    }

    /// Moves a downloaded file whose blake3 the caller has verified to be
    /// `digest` into the store (fsynced first).
    pub fn adopt(&self, path: &Path, digest: &str) -> io::Result<()> {
        if self.blob_intact(digest) {
            return fs::remove_file(path);
        }
        File::open(path)?.sync_all()?;
        self.place(path, &self.blob_path(digest), digest)
    }

    fn place(&self, from: &Path, dest: &Path, digest: &str) -> io::Result<()> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut perms = fs::metadata(from)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(from, perms)?;
        statcache::pin_mtime(from)?;
        // Linked, not renamed, into place: a step storing the same content at
        // the same time (every image's `oci-layout`) must not swap the inode
        // under the hard links already published from it. A damaged blob is
        // replaced.
        match fs::hard_link(from, dest) {
            Ok(()) => fs::remove_file(from)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if self.blob_intact(digest) {
                    fs::remove_file(from)?;
                    return Ok(());
                }
                fs::rename(from, dest)?;
            }
            Err(_) => fs::rename(from, dest)?,
        }
        self.stats.record_written(dest, digest)
    }

    fn action_path(&self, fingerprint: &str) -> PathBuf {
        fan_out(&self.root.join("actions"), fingerprint, ".json")
    }

    /// The action record for a fingerprint, if present and whole.
    pub fn load_action(&self, fingerprint: &str) -> Option<ActionRecord> {
        let bytes = fs::read(self.action_path(fingerprint)).ok()?;
        let rec: ActionRecord = serde_json::from_slice(&bytes).ok()?;
        (rec.fingerprint == fingerprint).then_some(rec)
    }

    /// Whether every blob of a record is present and intact.
    pub fn action_intact(&self, rec: &ActionRecord) -> bool {
        rec.blob_digests().all(|d| self.blob_intact(d))
    }

    pub fn save_action(&self, rec: &ActionRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        // No fsync: a record is used only if it parses whole and names its own
        // fingerprint, and every blob it names is checked by digest; a record
        // torn by a power loss is a miss.
        durable::write_checked(&self.action_path(&rec.fingerprint), &bytes)
    }

    /// Removes one action record (e.g. for `clean -p`).
    pub fn remove_action(&self, fingerprint: &str) -> io::Result<()> {
        durable::remove_all(&self.action_path(fingerprint))
    }

    /// The whole last state of a step (input list included).
    pub fn load_state(&self, id: &StepId) -> Option<StepState> {
        self.index.get(&id.to_string()).map(|e| e.state())
    }

    /// The index entry of a step: its last fingerprint and output digest, and
    /// its record parsed on demand.
    pub fn indexed(&self, id: &StepId) -> Option<Arc<IndexEntry>> {
        self.index.get_parts(&id.kind, &id.unit)
    }

    /// Records a step's last successful run: its fingerprint, the inputs
    /// that went into it and its record (cacheable steps).
    pub fn save_state(
        &self,
        id: &StepId,
        fingerprint: &str,
        inputs: Vec<(String, String)>,
        record: Option<&ActionRecord>,
    ) {
        self.index
            .insert(id.to_string(), fingerprint, inputs, record);
    }

    pub fn remove_state(&self, id: &StepId) -> io::Result<()> {
        self.index.remove(&id.to_string());
        Ok(())
    }

    /// Keeps what a step that just ran read of its deps, for its next run
    /// (written by [`Store::save`], off the build's path).
    pub fn keep_memo(&self, id: &StepId, sections: Vec<Section>) {
        self.memos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((id.clone(), sections));
    }

    /// Saves the stat cache and the step index (if they changed) and the
    /// kept memos.
    pub fn save(&self) -> io::Result<()> {
        let memos = std::mem::take(
            &mut *self
                .memos
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (stats, index) = rayon::join(
            || self.stats.save(),
            || {
                for (id, sections) in memos {
                    memo::save(&self.root, &id, sections);
                }
                self.index.save()
            },
        );
        stats.and(index)
    }
}
