//! `push:<service>` (apply --push): push the image layout to its registry with
//! the OCI distribution API, after the mesh's policy upload. An effect, not
//! cached: blobs the registry already has are skipped (HEAD).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::image::ImageRecord;
use super::{from_record, to_record};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};
use crate::oci::reference::Reference;
use crate::oci::registry::{RegistryClient, RegistryOptions};

/// The record of a push step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    pub reference: String,
    pub digest: String,
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
        Ok(StepOutput {
            record: to_record(&PushRecord {
                reference: image.reference,
                digest: report.manifest_digest,
            })?,
            info: serde_json::json!({ "uploaded": report.uploaded, "skipped": report.skipped.len() }),
            changed,
            ..StepOutput::default()
        })
    }
}
