//! OCI 1.1 referrers: artifacts (an SBOM, a signed provenance) attached to an
//! image by a manifest whose `subject` is the image's manifest.
//!
//! Pushing: the artifact's blob and the empty config (`{}`), then its
//! manifest by digest. A registry with the referrers API says so by answering
//! that PUT with an `OCI-Subject` header, and lists it from then on; for one
//! without (distribution 2.8, Debian's `docker-registry`), the client keeps
//! the list itself in the **referrers tag schema**: an image index tagged
//! `sha256-<hex of the subject digest>` whose manifests are the referrers,
//! read, extended and put back. Listing asks the API first
//! (`GET /v2/<name>/referrers/<digest>`) and reads that tag when the registry
//! has no API (404).

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::digest::sha256_digest;
use super::error::{OciError, Result};
use super::image::{canonical_json, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use super::registry::{Reference, RegistryClient};

/// The media type of the empty config an artifact manifest carries.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's bytes.
pub const EMPTY: &[u8] = b"{}";
/// The annotation naming an artifact's file.
pub const TITLE: &str = "org.opencontainers.image.title";

/// An artifact to attach.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// `artifactType` (e.g. `application/spdx+json`).
    pub artifact_type: String,
    /// Its one blob and that blob's media type.
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// The file name it is known by (annotation `org.opencontainers.image.title`).
    pub title: String,
}

/// The image an artifact refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// A referrer of an image: its manifest's descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub digest: String,
    pub size: u64,
    pub artifact_type: String,
    pub title: Option<String>,
}

/// How a registry keeps referrers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The referrers API.
    Api,
    /// The referrers tag schema.
    Tag,
}

/// The manifest attaching `artifact` to `subject` (its bytes are its digest).
pub fn artifact_manifest(artifact: &Artifact, subject: &Subject) -> Vec<u8> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact.artifact_type,
        "config": {
            "mediaType": MEDIA_TYPE_EMPTY,
            "digest": sha256_digest(EMPTY),
            "size": EMPTY.len(),
        },
        "layers": [{
            "mediaType": artifact.media_type,
            "digest": sha256_digest(&artifact.bytes),
            "size": artifact.bytes.len(),
            "annotations": { TITLE: artifact.title },
        }],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    });
    canonical_json(&manifest)
}

/// The referrers tag of a subject digest: `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

fn descriptors(index: &Value) -> Vec<Referrer> {
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(Referrer {
                digest: m["digest"].as_str()?.to_string(),
                size: m["size"].as_u64().unwrap_or_default(),
                artifact_type: m["artifactType"].as_str().unwrap_or_default().to_string(),
                title: m["annotations"][TITLE].as_str().map(str::to_string),
            })
        })
        .collect()
}

impl RegistryClient {
    /// Uploads `bytes` as a blob of `reference`'s repository unless it is there.
    fn ensure_blob(&self, reference: &Reference, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        if !self.has_blob(reference, &digest)? {
            let dir = tempfile::tempdir()
                .map_err(|e| OciError::io("a temp folder for an artifact", e))?;
            let path = dir.path().join("blob");
            std::fs::write(&path, bytes).map_err(|e| OciError::io("writing an artifact", e))?;
            self.upload_blob(reference, &digest, &path)?;
        }
        Ok(digest)
    }

    /// PUTs a manifest by its digest; whether the registry took its subject
    /// (the `OCI-Subject` header of the referrers API).
    fn put_referrer(&self, reference: &Reference, manifest: &[u8]) -> Result<bool> {
        let digest = sha256_digest(manifest);
        let at = reference.with_digest(&digest);
        let url = format!(
            "{}/v2/{}/manifests/{digest}",
            self.base_url(&at),
            at.repository
        );
        let response = self.send(&at, "pull,push", &|| {
            Ok(self
                .http
                .put(&url)
                .header(CONTENT_TYPE, MEDIA_TYPE_MANIFEST)
                .body(manifest.to_vec()))
        })?;
        let response = Self::check(&at, response, "storing an artifact manifest")?;
        Ok(response.headers().contains_key("oci-subject"))
    }

    /// Attaches `artifacts` to `subject` in `reference`'s repository; returns
    /// each artifact manifest's digest and how the registry lists them.
    pub fn attach(
        &self,
        reference: &Reference,
        subject: &Subject,
        artifacts: &[Artifact],
    ) -> Result<(Vec<String>, Listing)> {
        self.ensure_blob(reference, EMPTY)?;
        let mut pushed = Vec::new();
        let mut api = true;
        let mut added = Vec::new();
        for artifact in artifacts {
            self.ensure_blob(reference, &artifact.bytes)?;
            let manifest = artifact_manifest(artifact, subject);
            api &= self.put_referrer(reference, &manifest)?;
            let digest = sha256_digest(&manifest);
            added.push(json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": digest,
                "size": manifest.len(),
                "artifactType": artifact.artifact_type,
                "annotations": { TITLE: artifact.title },
            }));
            pushed.push(digest);
        }
        if api && !artifacts.is_empty() {
            return Ok((pushed, Listing::Api));
        }
        // The referrers tag schema: the index at `sha256-<hex>`, extended.
        let tag = Reference {
            tag: Some(referrers_tag(&subject.digest)),
            digest: None,
            ..reference.clone()
        };
        let mut index = match self.pull_manifest(&tag) {
            Ok(found) => serde_json::from_slice::<Value>(&found.bytes)
                .map_err(|e| OciError::invalid("the referrers tag's index", e))?,
            Err(OciError::BaseNotFound { .. }) => {
                json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": []})
            }
            Err(e) => return Err(e),
        };
        let known: Vec<String> = descriptors(&index).into_iter().map(|r| r.digest).collect();
        let fresh: Vec<Value> = added
            .into_iter()
            .filter(|d| !known.iter().any(|k| d["digest"] == k.as_str()))
            .collect();
        if !fresh.is_empty() {
            if let Some(list) = index["manifests"].as_array_mut() {
                list.extend(fresh);
            }
            self.put_manifest(&tag, &canonical_json(&index), MEDIA_TYPE_INDEX)?;
        }
        Ok((pushed, Listing::Tag))
    }

    /// The referrers of `digest` in `reference`'s repository: the API's
    /// answer, else the referrers tag's index (none when neither has any).
    pub fn referrers(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<(Vec<Referrer>, Listing)> {
        let url = format!(
            "{}/v2/{}/referrers/{digest}",
            self.base_url(reference),
            reference.repository
        );
        let response = self.send(reference, "pull", &|| {
            Ok(self.http.get(&url).header(ACCEPT, MEDIA_TYPE_INDEX))
        })?;
        if response.status() != StatusCode::NOT_FOUND {
            let response = Self::check(reference, response, "listing referrers")?;
            let index: Value = response
                .json()
                .map_err(|e| OciError::invalid("the referrers API's answer", e))?;
            return Ok((descriptors(&index), Listing::Api));
        }
        let tag = Reference {
            tag: Some(referrers_tag(digest)),
            digest: None,
            ..reference.clone()
        };
        match self.pull_manifest(&tag) {
            Ok(found) => {
                let index: Value = serde_json::from_slice(&found.bytes)
                    .map_err(|e| OciError::invalid("the referrers tag's index", e))?;
                Ok((descriptors(&index), Listing::Tag))
            }
            Err(OciError::BaseNotFound { .. }) => Ok((Vec::new(), Listing::Tag)),
            Err(e) => Err(e),
        }
    }

    /// The one blob of the artifact manifest `digest`, checked against its digest.
    pub fn artifact_blob(&self, reference: &Reference, digest: &str) -> Result<Vec<u8>> {
        let manifest = self.pull_manifest(&reference.with_digest(digest))?;
        let doc: Value = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| OciError::invalid("an artifact manifest", e))?;
        let blob = doc["layers"][0]["digest"]
            .as_str()
            .ok_or_else(|| OciError::invalid("an artifact manifest", "it has no layer"))?
            .to_string();
        let mut bytes = Vec::new();
        self.fetch_blob(reference, &blob, &mut bytes)?
            .ok_or_else(|| OciError::invalid("an artifact", format!("blob {blob} is missing")))?;
        let actual = sha256_digest(&bytes);
        if actual != blob {
            return Err(OciError::DigestMismatch {
                what: format!("artifact blob of {reference}"),
                expected: blob,
                actual,
            });
        }
        Ok(bytes)
    }
}
