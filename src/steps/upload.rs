//! `upload:<namespace>` (apply only): bring the CAS to the mesh's session. An
//! effect, not cached: it runs every apply, and uploads nothing when the CAS
//! already holds the same content. The update names the predecessor from
//! `scone.lock` (or the CAS's current hash).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::to_record;
use crate::cas::{apply_session, ApplyOutcome, Cas};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};

/// Which CAS to upload to.
pub enum CasTarget {
    /// The embedded local CAS (its folder).
    Local(std::path::PathBuf),
    /// A remote CAS at this URL (client identity from the CAS config dir).
    Remote {
        url: String,
        ca_file: Option<std::path::PathBuf>,
    },
}

/// The record of an upload step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub name: String,
    /// The session's hash on the CAS after the upload.
    pub hash: String,
}

/// See the module documentation.
pub struct UploadStep {
    pub id: StepId,
    pub namespace: String,
    pub target: CasTarget,
    /// The session hash `scone.lock` remembers.
    pub known_predecessor: Option<String>,
}

impl Step for UploadStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        let target = match &self.target {
            CasTarget::Local(dir) => format!("local:{}", dir.display()),
            CasTarget::Remote { url, .. } => format!("remote:{url}"),
        };
        BTreeMap::from([("cas".to_string(), target)])
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let policy = cx.dep("policy")?;
        let yaml = std::fs::read_to_string(cx.dep_file(policy, "session")?)
            .map_err(|e| StepError::context("reading the session", e))?;
        let cas: Box<dyn Cas> = match &self.target {
            CasTarget::Local(dir) => Box::new(
                crate::cas::local::LocalCas::open(dir)
                    .map_err(|e| StepError::context("local CAS", e))?,
            ),
            CasTarget::Remote { url, ca_file } => Box::new(
                crate::cas::remote::RemoteCas::connect_default(url, ca_file.as_deref())
                    .map_err(|e| StepError::context(format!("CAS {url}"), e))?,
            ),
        };
        let outcome = apply_session(cas.as_ref(), &yaml, self.known_predecessor.as_deref())
            .map_err(|e| StepError::context(format!("uploading session {}", self.namespace), e))?;
        let (uploaded, predecessor) = match &outcome {
            ApplyOutcome::Unchanged { .. } => (false, None),
            ApplyOutcome::Uploaded { predecessor, .. } => (true, predecessor.clone()),
        };
        Ok(StepOutput {
            record: to_record(&UploadRecord {
                name: self.namespace.clone(),
                hash: outcome.hash().to_string(),
            })?,
            info: serde_json::json!({ "uploaded": uploaded, "predecessor": predecessor }),
            changed: uploaded,
            ..StepOutput::default()
        })
    }
}
