//! `push:<service>` (apply --push): push the image layout to its registry with
//! the OCI distribution API, after the mesh's policy upload, then attach its
//! SBOM and signed provenance as OCI referrers (`subject` = the image; see
//! [`crate::oci::referrers`]). An effect, not cached: blobs the registry
//! already has are skipped (HEAD).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::image::ImageRecord;
use super::{from_record, to_record};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};
use crate::oci::reference::Reference;
use crate::oci::referrers::{Artifact, Listing, Subject};
use crate::oci::registry::{RegistryClient, RegistryOptions};

/// The SBOM and provenance envelope of the image, from the deps that made
/// them (none for a push planned without them).
fn attachments(cx: &StepContext<'_>) -> Result<Vec<Artifact>, StepError> {
    let mut out = Vec::new();
    for (kind, file, artifact_type, media_type, suffix) in [
        (
            "sbom",
            "sbom.spdx.json",
            crate::attest::spdx::MEDIA_TYPE,
            crate::attest::spdx::MEDIA_TYPE,
            "spdx.json",
        ),
        (
            "provenance",
            "envelope",
            crate::attest::dsse::PAYLOAD_TYPE,
            crate::attest::dsse::MEDIA_TYPE,
            "dsse.json",
        ),
    ] {
        let Some(dep) = cx.deps().iter().find(|d| d.id().kind == kind) else {
            continue;
        };
        let record = cx.record(dep)?;
        let bytes = std::fs::read(cx.dep_file(record, file)?)
            .map_err(|e| StepError::context(format!("reading the {kind}"), e))?;
        out.push(Artifact {
            artifact_type: artifact_type.to_string(),
            bytes,
            media_type: media_type.to_string(),
            title: format!("{}.{suffix}", dep.id().unit),
        });
    }
    Ok(out)
}

/// The record of a push step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    pub reference: String,
    pub digest: String,
    /// The manifest digests of the attached artifacts (SBOM, provenance).
    #[serde(default)]
    pub referrers: Vec<String>,
}

/// See the module documentation.
pub struct PushStep {
    pub id: StepId,
    /// `target/images/<service>`.
    pub layout: PathBuf,
    pub insecure: Vec<String>,
}

impl Step for PushStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("insecure".to_string(), self.insecure.join(","))])
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let image: ImageRecord = from_record(&cx.dep("image")?.record)?;
        let reference = Reference::parse(&image.reference)
            .map_err(|e| StepError::context(format!("image reference {}", image.reference), e))?;
        let client = RegistryClient::new(RegistryOptions {
            insecure: self.insecure.clone(),
            ..RegistryOptions::default()
        })
        .map_err(|e| StepError::context("registry client", e))?;
        let report = client
            .push_layout(&self.layout, Some(&image.reference), &reference, &|_| {})
            .map_err(|e| StepError::context(format!("pushing {}", image.reference), e))?;
        if report.manifest_digest != image.manifest_digest {
            return Err(StepError::new(format!(
                "pushed {} but the image step made {}",
                report.manifest_digest, image.manifest_digest
            )));
        }
        let changed = !report.uploaded.is_empty();
        let artifacts = attachments(cx)?;
        let (referrers, listing) = if artifacts.is_empty() {
            (Vec::new(), None)
        } else {
            let manifest = std::fs::read(cx.dep_file(cx.dep("image")?, "manifest")?)
                .map_err(|e| StepError::context("reading the image manifest", e))?;
            let subject = Subject {
                media_type: crate::oci::image::MEDIA_TYPE_MANIFEST.to_string(),
                digest: image.manifest_digest.clone(),
                size: manifest.len() as u64,
            };
            let (digests, listing) =
                client
                    .attach(&reference, &subject, &artifacts)
                    .map_err(|e| {
                        StepError::context(
                            format!("attaching the SBOM and provenance of {}", image.reference),
                            e,
                        )
                    })?;
            (digests, Some(listing))
        };
        Ok(StepOutput {
            record: to_record(&PushRecord {
                reference: image.reference,
                digest: report.manifest_digest,
                referrers,
            })?,
            info: serde_json::json!({
                "uploaded": report.uploaded,
                "skipped": report.skipped.len(),
                "referrers_listed_by": listing.map(|l| match l {
                    Listing::Api => "referrers API",
                    Listing::Tag => "referrers tag",
                }),
            }),
            changed,
            ..StepOutput::default()
        })
    }
}
