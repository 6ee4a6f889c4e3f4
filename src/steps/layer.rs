//! `layer:<service>`: a deterministic, compressed tar of the staged files
//! (design §2). The layer is keyed by its uncompressed digest (diff_id) and is
//! never recompressed once cached.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::copy::CopyRecord;
use super::{from_record, to_record};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};
use crate::oci::tar::{write_layer, Compression, LayerEntry};

/// The record of a layer step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct LayerStep {
    pub id: StepId,
    pub compression: Compression,
    /// mtime of every entry (`SOURCE_DATE_EPOCH`, else 0).
    pub mtime: u64,
}

impl Step for LayerStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("compression".to_string(), format!("{:?}", self.compression)),
            ("mtime".to_string(), self.mtime.to_string()),
        ])
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let staged: CopyRecord = from_record(&cx.dep("copy")?.record)?;
        let mut entries = Vec::new();
        for e in &staged.entries {
            match (e.kind.as_str(), &e.blob, &e.target) {
                ("file", Some(blob), _) => entries.push(LayerEntry::file(
                    e.path.clone(),
                    cx.blob_path(blob)?,
                    e.size,
                    e.executable,
                )),
                ("symlink", _, Some(target)) => {
                    entries.push(LayerEntry::symlink(e.path.clone(), target.clone()))
                }
                ("dir", None, None) => entries.push(LayerEntry::dir(e.path.clone())),
                _ => {
                    return Err(StepError::new(format!(
                        "internal: bad staged entry {}",
                        e.path
                    )))
                }
            }
        }
        let blob = write_layer(&entries, self.mtime, self.compression, cx.scratch)
            .map_err(|e| StepError::context("writing the layer", e))?;
        let hex = blob.digest.trim_start_matches("sha256:");
        let file = cx.scratch.join("sha256").join(hex);
        Ok(StepOutput {
            record: to_record(&LayerRecord {
                digest: blob.digest,
                diff_id: blob.diff_id,
                size: blob.size,
                media_type: blob.media_type,
            })?,
            files: BTreeMap::from([("layer".to_string(), file)]),
            ..StepOutput::default()
        })
    }
}
