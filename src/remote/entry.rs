//! One remote cache entry: an action record plus the sha256 of every blob it
//! names, so registries and HTTP caches (which address content by sha256) can
//! store the blobs while the local store keeps addressing them by blake3.
//!
//! ```json
//! {
//!   "format": "scone-action-v1",
//!   "record": { "step": "layer:svc-0001", "fingerprint": "…", "record": {…},
//!               "files": {"layer.tar.gz": "<blake3>"}, "publish": [ … ] },
//!   "blobs": { "<blake3>": { "sha256": "<hex>", "size": 1234,
//!                            "pack": { "sha256": "<hex>", "offset": 0 } } }
//! }
//! ```
//!
//! `pack` is there when the blob is stored in a pack ([`super::pack`]); without it,
//! the blob is stored on its own under its sha256.
//!
//! An entry read from a remote is checked before anything of it is used:
//! it must be for the fingerprint asked, name a blob entry for every blob of
//! the record, and publish only relative paths inside `target/`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path};

use super::pack::PackRef;
use crate::engine::{ActionRecord, Published};

/// The value of [`Entry::format`].
pub const FORMAT: &str = "scone-action-v1";

/// A blob as the remote addresses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    pub size: u64,
    /// Where it lies if it is stored in a pack ([`super::pack`]), not on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackRef>,
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub format: String,
    pub record: ActionRecord,
    /// blake3 → how the remote names the same bytes.
    pub blobs: BTreeMap<String, BlobRef>,
}

/// Why an entry read from a remote is not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("it is not a scone cache entry ({0})")]
    Parse(String),
    #[error("it has format `{0}`, this scone reads `{FORMAT}`")]
    Format(String),
    #[error("it is for fingerprint {found}, not {wanted}")]
    Fingerprint { wanted: String, found: String },
    #[error("it names blob {0} without its sha256")]
    MissingBlob(String),
    #[error("it publishes `{0}`, which is not a plain relative path")]
    UnsafePath(String),
    #[error("it publishes `{path}`, outside what a `{kind}` step publishes")]
    ForeignPath { path: String, kind: String },
}

impl Entry {
    pub fn new(record: ActionRecord, blobs: BTreeMap<String, BlobRef>) -> Entry {
        Entry {
            format: FORMAT.to_string(),
            record,
            blobs,
        }
    }

    /// Canonical bytes (sorted keys, compact): the same entry always has the
    /// same sha256, which the OCI tier uses as its config digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        // serde_json writes struct fields in declaration order and BTreeMaps
        // sorted; the record's JSON values keep their (sorted) map order.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks an entry read from a remote for `fingerprint`.
    pub fn parse(bytes: &[u8], fingerprint: &str) -> Result<Entry, EntryError> {
        let entry: Entry =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Parse(e.to_string()))?;
        entry.check(fingerprint)?;
        Ok(entry)
    }

    /// Checks an entry read from a remote (alone or in a build index) for
    /// `fingerprint`: its format, fingerprint, a remote name for every blob, and
    /// only plain relative published paths, each in a folder its step's kind
    /// publishes into (never `target/.scone`, nor another kind's outputs).
    pub fn check(&self, fingerprint: &str) -> Result<(), EntryError> {
        let entry = self;
        if entry.format != FORMAT {
            return Err(EntryError::Format(entry.format.clone()));
        }
        if entry.record.fingerprint != fingerprint {
            return Err(EntryError::Fingerprint {
                wanted: fingerprint.to_string(),
                found: entry.record.fingerprint.clone(),
            });
        }
        if let Some(missing) = entry
            .record
            .blob_digests()
            .find(|d| !entry.blobs.contains_key(*d))
        {
            return Err(EntryError::MissingBlob(missing.clone()));
        }
        for published in &entry.record.publish {
            let paths: Vec<&str> = match published {
                Published::Dir { dir, files } => std::iter::once(dir.as_str())
                    .chain(files.keys().map(|f| f.as_str()))
                    .collect(),
                Published::File { path, .. } => vec![path.as_str()],
            };
            if let Some(bad) = paths.iter().find(|p| !is_plain_relative(p)) {
                return Err(EntryError::UnsafePath(bad.to_string()));
            }
            let kind = entry.record.step.split(':').next().unwrap_or_default();
            let folders = crate::engine::publish::folders_of(kind);
            // In one of them: a folder published whole may be one of them, a
            // file is a name under one.
            let mut parts = Path::new(paths[0]).components();
            let top = parts.next();
            let inside = matches!(published, Published::Dir { .. }) || parts.next().is_some();
            if !inside || !top.is_some_and(|c| folders.iter().any(|f| c.as_os_str() == *f)) {
                return Err(EntryError::ForeignPath {
                    path: paths[0].to_string(),
                    kind: kind.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Non-empty, relative, and without `..`: it cannot leave the folder it is
/// joined to.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(publish: Vec<Published>) -> ActionRecord {
        ActionRecord {
            step: "image:a".into(),
            fingerprint: "f".repeat(64),
            record: serde_json::json!({"x": 1}),
            files: BTreeMap::from([("out".to_string(), "b".repeat(64))]),
            publish,
            info: serde_json::Value::Null,
            inputs: Vec::new(),
        }
    }

    fn blobs() -> BTreeMap<String, BlobRef> {
        BTreeMap::from([(
            "b".repeat(64),
            BlobRef {
                sha256: "c".repeat(64),
                size: 3,
                pack: None,
            },
        )])
    }

    #[test]
    fn round_trips_and_checks_the_fingerprint() {
        let entry = Entry::new(record(Vec::new()), blobs());
        let bytes = entry.to_bytes();
        assert_eq!(Entry::parse(&bytes, &"f".repeat(64)), Ok(entry));
        assert!(matches!(
            Entry::parse(&bytes, &"e".repeat(64)),
            Err(EntryError::Fingerprint { .. })
        ));
        assert!(matches!(
            Entry::parse(b"{", &"f".repeat(64)),
            Err(EntryError::Parse(_))
        ));
    }

    #[test]
    fn refuses_entries_without_blob_refs_or_with_escaping_paths() {
        let bytes = Entry::new(record(Vec::new()), BTreeMap::new()).to_bytes();
        assert_eq!(
            Entry::parse(&bytes, &"f".repeat(64)),
            Err(EntryError::MissingBlob("b".repeat(64)))
        );
        for bad in ["../etc/passwd", "/etc/passwd", "images/../../x", ""] {
            let publish = vec![Published::File {
                path: bad.to_string(),
                digest: "b".repeat(64),
            }];
            let bytes = Entry::new(record(publish), blobs()).to_bytes();
            assert_eq!(
                Entry::parse(&bytes, &"f".repeat(64)),
                Err(EntryError::UnsafePath(bad.to_string())),
                "{bad}"
            );
        }
        let ok = vec![Published::Dir {
            dir: "images/a".into(),
            files: BTreeMap::from([("blobs/sha256/x".to_string(), "b".repeat(64))]),
        }];
        let bytes = Entry::new(record(ok), blobs()).to_bytes();
        assert!(Entry::parse(&bytes, &"f".repeat(64)).is_ok());
    }

    /// An entry publishes only where its step's kind does: never into the
    /// build's own store, nor into another kind's outputs.
    #[test]
    fn refuses_entries_that_publish_outside_their_kind() {
        for (step, path) in [
            ("image:a", ".scone/evil"),
            ("image:a", "policy/mesh.yaml"),
            ("sbom:a", "helm/mesh/templates/zz.yaml"),
            ("copy:a", "images/a"),
            ("sbom:a", "sbom"),
        ] {
            let mut r = record(vec![Published::File {
                path: path.to_string(),
                digest: "b".repeat(64),
            }]);
            r.step = step.into();
            let bytes = Entry::new(r, blobs()).to_bytes();
            assert!(
                matches!(
                    Entry::parse(&bytes, &"f".repeat(64)),
                    Err(EntryError::ForeignPath { .. })
                ),
                "{step} publishing {path}"
            );
        }
    }
}
