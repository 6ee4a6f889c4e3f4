//! What a step's run leaves: its action record (the value of the action
//! cache, and what dependents and messages read) and what it published.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The `(label, digest)` pairs the fingerprint was made of, so that
    /// `--explain` can name what changed since; not part of the output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<(String, String)>,
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

/// An [`ActionRecord`] as the build state keeps it: without the fingerprint's
/// inputs, which only `--explain` reads (from the action cache). It reads back
/// as an `ActionRecord` with no inputs. `record` comes first: what a
/// dependent reads of it is read without the rest
/// (`engine::state::StepEntry::record_fields`).
#[derive(Serialize)]
pub(crate) struct RecordView<'a> {
    record: &'a serde_json::Value,
    step: &'a str,
    fingerprint: &'a str,
    files: &'a BTreeMap<String, String>,
    publish: &'a [Published],
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    info: &'a serde_json::Value,
}

impl<'a> RecordView<'a> {
    pub(crate) fn of(record: &'a ActionRecord) -> RecordView<'a> {
        RecordView {
            record: &record.record,
            step: &record.step,
            fingerprint: &record.fingerprint,
            files: &record.files,
            publish: &record.publish,
            info: &record.info,
        }
    }
}
