//! The remote cache in an OCI registry (`oci://HOST[:PORT]/REPO`).
//!
//! One OCI image manifest per fingerprint, tagged `fp-<fingerprint>`:
//!
//! ```json
//! { "schemaVersion": 2,
//!   "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!   "artifactType": "application/vnd.scone.action.v1+json",
//!   "config": { "mediaType": "application/vnd.scone.action.v1+json",
//!               "digest": "sha256:<the entry JSON>", "size": …,
//!               "data": "<the entry, base64, when ≤ 64 KiB>" },
//!   "layers": [ { "mediaType": "application/vnd.scone.blob.v1",
//!                 "digest": "sha256:…", "size": …,
//!                 "annotations": { "dev.scone.blake3": "…" } } ],
//!   "annotations": { "dev.scone.step": "layer:svc-0001" } }
//! ```
//!
//! The entry ([`Entry`]) is the config blob (also embedded in the manifest when
//! small, so a lookup is one request); the step's blobs are the layers.
//! Blobs are checked with `HEAD` before upload; auth is the push auth (Docker
//! `config.json`, basic or bearer token); loopback registries and those given
//! with `--insecure-registry` are reached over plain HTTP.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;

use crate::oci::error::OciError;
use crate::oci::registry::{Reference, RegistryClient, RegistryOptions};

use super::{Backend, Entry, RemoteError, RemoteOptions};

/// `artifactType` and config media type of an entry.
pub const ARTIFACT_TYPE: &str = "application/vnd.scone.action.v1+json";
/// Media type of a blob layer.
pub const BLOB_MEDIA_TYPE: &str = "application/vnd.scone.blob.v1";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// See the module documentation.
pub struct OciBackend {
    client: RegistryClient,
    /// `HOST[:PORT]/REPO`.
    repository: String,
}

impl OciBackend {
    /// `rest` is the URL after `oci://`.
    pub fn new(rest: &str, opts: &RemoteOptions) -> Result<OciBackend, String> {
        let repository = rest.trim_end_matches('/').to_string();
        if !repository.contains('/') {
            return Err("name a repository: oci://HOST[:PORT]/REPO".into());
        }
        // Parse once now, so a bad name fails before the build.
        Reference::parse(&format!("{repository}:probe")).map_err(|e| e.to_string())?;
        let client = RegistryClient::new(RegistryOptions {
            insecure: opts.insecure.clone(),
            timeout: Some(opts.timeout),
            ..RegistryOptions::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(OciBackend { client, repository })
    }

    fn reference(&self, tag: &str) -> Result<Reference, RemoteError> {
        Reference::parse(&format!("{}:{tag}", self.repository))
            .map_err(|e| RemoteError::Transport(e.to_string()))
    }

    fn blob_ref(&self) -> Result<Reference, RemoteError> {
        self.reference("latest")
    }
}

fn transport(e: OciError) -> RemoteError {
    RemoteError::Transport(e.to_string())
}

impl Backend for OciBackend {
    fn get_entry(&self, fingerprint: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let reference = self.reference(&format!("fp-{fingerprint}"))?;
        let manifest = match self.client.pull_manifest(&reference) {
            Ok(m) => m,
            Err(OciError::BaseNotFound { .. }) => return Ok(None),
            Err(e) => return Err(transport(e)),
        };
        let value: serde_json::Value = match serde_json::from_slice(&manifest.bytes) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let config = &value["config"];
        if config["mediaType"] != ARTIFACT_TYPE {
            return Ok(None);
        }
        let Some(digest) = config["digest"].as_str() else {
            return Ok(None);
        };
        // Small entries ride along in the descriptor's `data` (OCI 1.1): one
        // request instead of two. Checked against the digest like a download.
        let embedded = config["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        let bytes = match embedded {
            Some(bytes) => bytes,
            None => {
                let mut bytes = Vec::new();
                match self.client.fetch_blob(&reference, digest, &mut bytes) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(transport(e)),
                }
                bytes
            }
        };
        // The entry's own digest is checked here; its blobs by the tier.
        if crate::oci::digest::sha256_digest(&bytes) != digest {
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    fn get_blob(&self, sha256: &str, out: &mut dyn Write) -> Result<bool, RemoteError> {
        let reference = self.blob_ref()?;
        self.client
            .fetch_blob(&reference, &format!("sha256:{sha256}"), out)
            .map(|found| found.is_some())
            .map_err(transport)
    }

    fn has_blob(&self, sha256: &str) -> Result<bool, RemoteError> {
        let reference = self.blob_ref()?;
        self.client
            .has_blob(&reference, &format!("sha256:{sha256}"))
            .map_err(transport)
    }

    fn put_blob(&self, sha256: &str, _size: u64, path: &Path) -> Result<(), RemoteError> {
        let reference = self.blob_ref()?;
        self.client
            .upload_blob(&reference, &format!("sha256:{sha256}"), path)
            .map(|_| ())
            .map_err(transport)
    }

    fn put_entry(&self, fingerprint: &str, entry: &Entry) -> Result<(), RemoteError> {
        let reference = self.reference(&format!("fp-{fingerprint}"))?;
        let bytes = entry.to_bytes();
        let config_digest = crate::oci::digest::sha256_digest(&bytes);
        let config_hex = config_digest.trim_start_matches("sha256:").to_string();
        let has_config = self
            .client
            .has_blob(&reference, &config_digest)
            .map_err(transport)?;
        if !has_config {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join(&config_hex);
            std::fs::write(&path, &bytes)?;
            self.client
                .upload_blob(&reference, &config_digest, &path)
                .map_err(transport)?;
        }
        let manifest = manifest_json(entry, &bytes, &config_digest);
        self.client
            .put_manifest(&reference, &manifest, MANIFEST_MEDIA_TYPE)
            .map(|_| ())
            .map_err(transport)
    }
}

/// Entries up to this size are also embedded in the manifest.
const EMBED_LIMIT: usize = 64 * 1024;

/// The manifest of an entry (deterministic: the same entry, the same bytes).
fn manifest_json(entry: &Entry, config: &[u8], config_digest: &str) -> Vec<u8> {
    let mut seen = std::collections::BTreeSet::new();
    let layers: Vec<serde_json::Value> = entry
        .blobs
        .iter()
        .filter(|(_, b)| seen.insert(b.sha256.clone()))
        .map(|(blake3, b)| {
            serde_json::json!({
                "mediaType": BLOB_MEDIA_TYPE,
                "digest": format!("sha256:{}", b.sha256),
                "size": b.size,
                "annotations": { "dev.scone.blake3": blake3 },
            })
        })
        .collect();
    let mut descriptor = serde_json::json!({
        "mediaType": ARTIFACT_TYPE,
        "digest": config_digest,
        "size": config.len(),
    });
    if config.len() <= EMBED_LIMIT {
        descriptor["data"] = base64::engine::general_purpose::STANDARD
            .encode(config)
            .into();
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": descriptor,
        "layers": layers,
        "annotations": { "dev.scone.step": entry.record.step },
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ActionRecord;
    use crate::remote::BlobRef;
    use std::collections::BTreeMap;

    #[test]
    fn manifest_lists_each_blob_once_with_its_blake3() {
        let record = ActionRecord {
            step: "copy:a".into(),
            fingerprint: "f".repeat(64),
            record: serde_json::json!({}),
            files: BTreeMap::new(),
            publish: Vec::new(),
            info: serde_json::Value::Null,
            inputs: Vec::new(),
        };
        let blob = |s: &str| BlobRef {
            sha256: s.repeat(64),
            size: 1,
        };
        let entry = Entry::new(
            record,
            BTreeMap::from([("1".repeat(64), blob("a")), ("2".repeat(64), blob("b"))]),
        );
        let bytes = manifest_json(&entry, b"{}", "sha256:cc");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v["config"]["digest"], "sha256:cc");
        let layers = v["layers"].as_array().cloned().unwrap_or_default();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(layers[1]["annotations"]["dev.scone.blake3"], "2".repeat(64));
        assert_eq!(v["config"]["data"], "e30=", "small entries are embedded");
        assert_eq!(
            bytes,
            manifest_json(&entry, b"{}", "sha256:cc"),
            "deterministic"
        );
    }
}
