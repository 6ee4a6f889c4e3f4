//! The build index: one remote object listing every result of a build (the
//! [`Entry`] of each step, its blobs in [`super::pack`]s), stored under a key the
//! next checkout computes before its first step runs: a digest of the steps it
//! planned. One request then answers for every fingerprint of a build, instead of a
//! round trip per step and per level of the step graph.
//!
//! The index is a hint, never a result: an entry is used only for the fingerprint
//! it names (one the build computed itself), and its blobs are checked like any
//! download. So an index left by another commit of the same workspace (same steps,
//! other sources) still serves the steps that did not change, and the others are
//! looked up one by one. The last writing build of a plan wins.
//!
//! ```json
//! { "format": "scone-index-v1", "scope": "<key>",
//!   "entries": [ { "format": "scone-action-v1", "record": {…}, "blobs": {…} } ],
//!   "packs": [ { "sha256": "…", "size": 2097152 } ] }
//! ```
//! stored gzip-compressed.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::pack::PackInfo;
use super::Entry;
use crate::engine::StepId;

/// The value of [`Index::format`].
pub const FORMAT: &str = "scone-index-v1";

/// The largest index read (decompressed): a 10,000-service build's is ~60 MB.
const MAX_INDEX: u64 = 1 << 30;

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub format: String,
    /// [`scope`] of the plan it was made for.
    pub scope: String,
    pub entries: Vec<Entry>,
    pub packs: Vec<PackInfo>,
}

/// The key of a plan's index: a digest of the ids of the steps it planned (64 hex
/// digits, the shape of a fingerprint, in another domain).
pub fn scope(planned: &[StepId]) -> String {
    let mut ids: Vec<String> = planned.iter().map(|id| id.to_string()).collect();
    ids.sort();
    let mut h = blake3::Hasher::new();
    h.update(FORMAT.as_bytes());
    for id in &ids {
        h.update(&(id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

impl Index {
    pub fn new(scope: String, entries: Vec<Entry>, packs: Vec<PackInfo>) -> Index {
        Index {
            format: FORMAT.to_string(),
            scope,
            entries,
            packs,
        }
    }

    /// The stored form (gzip of the JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(&json);
        gz.finish().unwrap_or_default()
    }

    /// Reads an index fetched for `scope`. Its entries are checked one by one when
    /// used ([`Entry::parse`]'s rules), not here.
    pub fn parse(bytes: &[u8], scope: &str) -> Result<Index, String> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_INDEX + 1)
            .read_to_end(&mut json)
            .map_err(|e| format!("it is not a gzip stream ({e})"))?;
        if json.len() as u64 > MAX_INDEX {
            return Err("it is larger than 1 GiB".into());
        }
        let index: Index =
            serde_json::from_slice(&json).map_err(|e| format!("it is not an index ({e})"))?;
        if index.format != FORMAT {
            return Err(format!(
                "it has format `{}`, this scone reads `{FORMAT}`",
                index.format
            ));
        }
        if index.scope != scope {
            return Err(format!("it is for plan {}, not {scope}", index.scope));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ActionRecord;
    use std::collections::BTreeMap;

    #[test]
    fn scope_depends_on_the_steps_not_their_order() {
        let a = StepId::new("copy", "a");
        let b = StepId::new("layer", "a");
        assert_eq!(
            scope(&[a.clone(), b.clone()]),
            scope(&[b.clone(), a.clone()])
        );
        assert_ne!(scope(std::slice::from_ref(&a)), scope(&[a, b]));
        assert_eq!(scope(&[]).len(), 64);
    }

    #[test]
    fn round_trips_and_refuses_another_plan_or_garbage() {
        let record = ActionRecord {
            step: "copy:a".into(),
            fingerprint: "f".repeat(64),
            record: serde_json::json!({}),
            files: BTreeMap::new(),
            publish: Vec::new(),
            info: serde_json::Value::Null,
            inputs: Vec::new(),
        };
        let index = Index::new(
            "s".repeat(64),
            vec![Entry::new(record, BTreeMap::new())],
            vec![PackInfo {
                sha256: "p".repeat(64),
                size: 3,
            }],
        );
        let bytes = index.to_bytes();
        assert_eq!(Index::parse(&bytes, &"s".repeat(64)), Ok(index));
        let other = Index::parse(&bytes, &"t".repeat(64)).unwrap_err();
        assert!(other.contains("is for plan"), "{other}");
        let garbage = Index::parse(b"not gzip", &"s".repeat(64)).unwrap_err();
        assert!(garbage.contains("gzip"), "{garbage}");
    }
}
