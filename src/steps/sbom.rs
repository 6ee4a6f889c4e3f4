//! `sbom:<service>`: the SBOM of the service's image, an SPDX 2.3 document
//! ([`crate::attest::spdx`]): the files of its own layer with their digests,
//! the base by digest and the base's Debian packages. Published as
//! `target/sbom/<service>.spdx.json`, beside the image layout (not in it: the
//! layout is the image step's, and an OCI layout holds one image here); `push`
//! attaches it to the image as a referrer.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;

use super::image::ImageRecord;
use super::packages::PackagesRecord;
use super::{from_record, to_record};
use crate::attest::spdx::{self, LayerFile, SbomInput};
use crate::engine::{BlobSource, Publish, Step, StepContext, StepError, StepId, StepOutput};

/// The record of an sbom step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomRecord {
    /// SHA-256 (hex) of the document.
    pub sha256: String,
    /// Where it is under `target/`.
    pub path: String,
    /// Files listed, and Debian packages.
    pub files: usize,
    pub packages: usize,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct SbomStep {
    pub id: StepId,
    /// `build.name`.
    pub service: String,
    /// The base as the document names it: its reference, a folder relative
    /// to the workspace root (no path of this machine).
    pub base: String,
    /// `SOURCE_DATE_EPOCH` (the document's creation time).
    pub created: u64,
}

/// The regular files of a layer blob, sorted by path, with their digests.
pub fn layer_files(path: &std::path::Path) -> Result<Vec<LayerFile>, StepError> {
    let bad = |e: std::io::Error| StepError::context("reading the service's layer", e);
    let reader =
        crate::oci::rootfs::open_layer(path).map_err(|e| StepError::context("the layer", e))?;
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect::<Vec<_>>()
            .join("/");
        let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        let mut sha256 = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = entry.read(&mut buf).map_err(bad)?;
            if n == 0 {
                break;
            }
            sha1.update(&buf[..n]);
            sha256.update(&buf[..n]);
        }
        out.push(LayerFile {
            path,
            sha1: hex::encode(sha1.finish().as_ref()),
            sha256: hex::encode(sha256.finish().as_ref()),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

impl Step for SbomStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("service".to_string(), self.service.clone()),
            ("base".to_string(), self.base.clone()),
            ("created".to_string(), self.created.to_string()),
            ("format".to_string(), "SPDX-2.3".to_string()),
        ])
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let image: ImageRecord = from_record(&cx.dep("image")?.record)?;
        let base: PackagesRecord = from_record(&cx.dep("packages")?.record)?;
        let own = image
            .layer_blobs
            .last()
            .ok_or_else(|| StepError::new("internal: an image without layers"))?;
        let files = layer_files(&cx.blob_path(own)?)?;
        let bytes = spdx::document(&SbomInput {
            service: &self.service,
            reference: &image.reference,
            image_digest: &image.manifest_digest,
            base: (&self.base, &image.base_digest),
            files: &files,
            packages: &base.packages,
            created: self.created,
        });
        let sha256 = crate::oci::digest::sha256_digest(&bytes)
            .trim_start_matches("sha256:")
            .to_string();
        let file = cx.scratch.join("sbom.spdx.json");
        std::fs::write(&file, &bytes).map_err(|e| StepError::context("writing the SBOM", e))?;
        let path = format!("sbom/{}.spdx.json", self.service);
        Ok(StepOutput {
            record: to_record(&SbomRecord {
                sha256,
                path: path.clone(),
                files: files.len(),
                packages: base.packages.len(),
            })?,
            files: BTreeMap::from([("sbom.spdx.json".to_string(), file)]),
            publish: vec![Publish::File {
                path,
                source: BlobSource::Own("sbom.spdx.json".into()),
            }],
            ..StepOutput::default()
        })
    }
}
