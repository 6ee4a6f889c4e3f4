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
//!               "data": "<the entry, base64, when ≤ 256 KiB>" },
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

use super::pack::PackInfo;
use super::{Backend, BlobRef, Entry, RemoteError, RemoteOptions};

/// `artifactType` and config media type of an entry.
pub const ARTIFACT_TYPE: &str = "application/vnd.scone.action.v1+json";
/// Media type of a blob layer.
pub const BLOB_MEDIA_TYPE: &str = "application/vnd.scone.blob.v1";
/// Media type of a pack layer ([`super::pack`]).
pub const PACK_MEDIA_TYPE: &str = "application/vnd.scone.pack.v1";
/// `artifactType` and config media type of a build index ([`super::index`]).
pub const INDEX_TYPE: &str = "application/vnd.scone.index.v1+gzip";
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
        let authority = repository.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            // Never quoted: what comes before the `@` is a credential.
            return Err(
                "an oci:// remote cache takes no credentials in its URL: a registry's \
                        come from the Docker config (`docker login`, DOCKER_CONFIG), as for \
                        pushes"
                    .into(),
            );
        }
        let Some((authority, path)) = repository.split_once('/') else {
            return Err("name a repository: oci://HOST[:PORT]/REPO".into());
        };
        if path.contains('@') {
            return Err(match path.rsplit_once('@') {
                Some((repo, digest)) if !repo.contains('@') && super::is_digest(digest) => format!(
                    "`{authority}/{repo}@{digest}` names one manifest by its digest; a remote \
                     cache names a repository (scone tags a manifest per step in it): give \
                     oci://{authority}/{repo}"
                ),
                // Never quoted: what comes before an `@` may be a credential.
                _ => "an oci:// remote cache takes no credentials in its URL: a registry's \
                      come from the Docker config (`docker login`, DOCKER_CONFIG), as for pushes"
                    .into(),
            });
        }
        check_port(authority)?;
        let last = path.rsplit('/').next().unwrap_or_default();
        if let Some((_, tag)) = last.split_once(':') {
            let repo = &repository[..repository.len() - tag.len() - 1];
            return Err(format!(
                "`:{tag}` is a tag; a remote cache names a repository (scone tags a manifest \
                 per step in it): give oci://{repo}"
            ));
        }
        // Parse once now, so a bad name fails before the build.
        Reference::parse(&format!("{repository}:probe")).map_err(|e| match e {
            crate::oci::error::OciError::BadReference { reason, .. } => {
                format!("`{repository}` is no registry repository (HOST[:PORT]/REPO): {reason}")
            }
            e => e.to_string(),
        })?;
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

/// Refuses a port that is no number from 1 to 65535 in `authority`
/// (`HOST[:PORT]`, `[IPV6][:PORT]`), as an `http://` URL's is.
fn check_port(authority: &str) -> Result<(), String> {
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .and_then(|(_, rest)| rest.strip_prefix(':')),
        None => authority.split_once(':').map(|(_, port)| port),
    };
    match port {
        Some(port) if !matches!(port.parse::<u16>(), Ok(1..)) => Err(format!(
            "`{authority}`: the port must be a number from 1 to 65535, not `{port}`"
        )),
        _ => Ok(()),
    }
}

fn transport(e: OciError) -> RemoteError {
    RemoteError::Transport(e.to_string())
}

impl Backend for OciBackend {
    fn get_entry(&self, fingerprint: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let reference = self.reference(&format!("fp-{fingerprint}"))?;
        // The entry's own digest is checked here; its blobs by the tier.
        self.get_config(&reference, ARTIFACT_TYPE, super::ENTRY_LIMIT)
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
        let config_digest = self.put_config(&reference, &bytes)?;
        let blobs: Vec<(&String, &BlobRef)> = entry.blobs.iter().collect();
        let manifest = manifest_json(
            ARTIFACT_TYPE,
            &blobs,
            &bytes,
            &config_digest,
            &entry.record.step,
        );
        self.client
            .put_manifest(&reference, &manifest, MANIFEST_MEDIA_TYPE)
            .map(|_| ())
            .map_err(transport)
    }

    fn get_index(&self, scope: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let reference = self.reference(&format!("ix-{scope}"))?;
        self.get_config(&reference, INDEX_TYPE, super::INDEX_LIMIT)
    }

    fn put_index(&self, scope: &str, bytes: &[u8], stored: &[PackInfo]) -> Result<(), RemoteError> {
        let reference = self.reference(&format!("ix-{scope}"))?;
        let config_digest = self.put_config(&reference, bytes)?;
        // The packs and the blobs stored on their own are its layers: a registry's
        // garbage collection keeps what a tagged manifest names.
        let refs: Vec<(String, BlobRef)> = stored
            .iter()
            .map(|b| {
                let blob = BlobRef {
                    sha256: b.sha256.clone(),
                    size: b.size,
                    pack: None,
                };
                (String::new(), blob)
            })
            .collect();
        let listed: Vec<(&String, &BlobRef)> = refs.iter().map(|(k, b)| (k, b)).collect();
        let manifest = manifest_json(INDEX_TYPE, &listed, bytes, &config_digest, "index");
        self.client
            .put_manifest(&reference, &manifest, MANIFEST_MEDIA_TYPE)
            .map(|_| ())
            .map_err(transport)
    }
}

impl OciBackend {
    /// Uploads `bytes` as a config blob unless the registry has it; its digest.
    fn put_config(&self, reference: &Reference, bytes: &[u8]) -> Result<String, RemoteError> {
        let config_digest = crate::oci::digest::sha256_digest(bytes);
        let config_hex = config_digest.trim_start_matches("sha256:").to_string();
        let has_config = self
            .client
            .has_blob(reference, &config_digest)
            .map_err(transport)?;
        if !has_config {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join(&config_hex);
            std::fs::write(&path, bytes)?;
            self.client
                .upload_blob(reference, &config_digest, &path)
                .map_err(transport)?;
        }
        Ok(config_digest)
    }

    /// The config of the manifest tagged `reference` if it is of `media_type`
    /// (embedded in the manifest when small), checked against its digest.
    /// The config blob of the manifest `reference` names if it has
    /// `media_type`, refused past `limit` bytes.
    fn get_config(
        &self,
        reference: &Reference,
        media_type: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let manifest = match self.client.pull_manifest(reference) {
            Ok(m) => m,
            Err(OciError::BaseNotFound { .. }) => return Ok(None),
            Err(e) => return Err(transport(e)),
        };
        let tag = reference.manifest_ref();
        let broken =
            |what: String| Err(RemoteError::Broken(format!("the manifest `{tag}` {what}")));
        let value: serde_json::Value = match serde_json::from_slice(&manifest.bytes) {
            Ok(v) => v,
            Err(e) => return broken(format!("is not JSON ({e})")),
        };
        let config = &value["config"];
        if config["mediaType"] != media_type {
            return broken(format!(
                "is not a scone manifest (its config's media type is {}, not {media_type})",
                config["mediaType"]
            ));
        }
        let Some(digest) = config["digest"].as_str() else {
            return broken("has no config digest".into());
        };
        if config["size"].as_u64().is_some_and(|n| n > limit) {
            return Err(RemoteError::Transport(format!(
                "{reference}: {}",
                crate::bounded::BoundedError::TooLarge { limit }
            )));
        }
        // Small configs ride along in the descriptor's `data` (OCI 1.1): one
        // request instead of two. Checked against the digest like a download.
        let embedded = config["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        let bytes = match embedded {
            Some(bytes) => bytes,
            None => {
                let mut bytes = Vec::new();
                let mut capped = crate::bounded::Capped {
                    out: &mut bytes,
                    limit,
                };
                match self.client.fetch_blob(reference, digest, &mut capped) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return broken(format!("names config {digest}, which the registry lacks"))
                    }
                    Err(e) => return Err(transport(e)),
                }
                bytes
            }
        };
        if crate::oci::digest::sha256_digest(&bytes) != digest {
            return broken(format!(
                "has a config that does not match its digest {digest}"
            ));
        }
        Ok(Some(bytes))
    }
}

/// Configs (entries, indexes) up to this size are also embedded in the manifest.
const EMBED_LIMIT: usize = 256 * 1024;

/// The manifest of an entry or index (deterministic: the same input, the same
/// bytes): `config` (digest `config_digest`) as its config, of type
/// `artifact_type`; as layers, each remote blob `blobs` names once (a pack once for
/// all the blobs in it).
fn manifest_json(
    artifact_type: &str,
    blobs: &[(&String, &BlobRef)],
    config: &[u8],
    config_digest: &str,
    step: &str,
) -> Vec<u8> {
    let mut seen = std::collections::BTreeSet::new();
    let layers: Vec<serde_json::Value> = blobs
        .iter()
        .filter_map(|(blake3, b)| match &b.pack {
            Some(pack) => seen.insert(pack.sha256.clone()).then(|| {
                serde_json::json!({
                    "mediaType": PACK_MEDIA_TYPE,
                    "digest": format!("sha256:{}", pack.sha256),
                    "size": pack.size,
                })
            }),
            None => seen.insert(b.sha256.clone()).then(|| {
                serde_json::json!({
                    "mediaType": BLOB_MEDIA_TYPE,
                    "digest": format!("sha256:{}", b.sha256),
                    "size": b.size,
                    "annotations": { "dev.scone.blake3": blake3 },
                })
            }),
        })
        .collect();
    let mut descriptor = serde_json::json!({
        "mediaType": artifact_type,
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
        "artifactType": artifact_type,
        "config": descriptor,
        "layers": layers,
        "annotations": { "dev.scone.step": step },
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
            pack: None,
        };
        let packed = |s: &str| BlobRef {
            pack: Some(crate::remote::pack::PackRef {
                sha256: "p".repeat(64),
                size: 9,
                offset: 0,
            }),
            ..blob(s)
        };
        let blobs = BTreeMap::from([
            ("1".repeat(64), blob("a")),
            ("2".repeat(64), blob("b")),
            ("3".repeat(64), packed("c")),
            ("4".repeat(64), packed("d")),
        ]);
        let entry = Entry::new(record, blobs);
        let listed: Vec<(&String, &BlobRef)> = entry.blobs.iter().collect();
        let bytes = manifest_json(ARTIFACT_TYPE, &listed, b"{}", "sha256:cc", "copy:a");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v["config"]["digest"], "sha256:cc");
        let layers = v["layers"].as_array().cloned().unwrap_or_default();
        assert_eq!(layers.len(), 3, "the pack once for its two blobs");
        assert_eq!(layers[0]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(layers[1]["annotations"]["dev.scone.blake3"], "2".repeat(64));
        assert_eq!(layers[2]["digest"], format!("sha256:{}", "p".repeat(64)));
        assert_eq!(layers[2]["size"], 9);
        assert_eq!(layers[2]["mediaType"], PACK_MEDIA_TYPE);
        assert_eq!(v["config"]["data"], "e30=", "small entries are embedded");
        assert_eq!(
            bytes,
            manifest_json(ARTIFACT_TYPE, &listed, b"{}", "sha256:cc", "copy:a"),
            "deterministic"
        );
    }
}
