//! `packages:<base>`: the Debian packages a base image was made from, read
//! once from its dpkg status (`var/lib/dpkg/status`, which
//! `scripts/python-rootfs.sh` records and Debian images have), for the SBOM
//! of every image on it. A base without one has no packages.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::base::BaseRecord;
use super::{from_record, to_record};
use crate::attest::dpkg::{parse_status, DebPackage, STATUS_PATH};
use crate::engine::{Step, StepContext, StepError, StepId, StepOutput};

/// The record of a packages step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagesRecord {
    /// The base's reference (as its record gives it) and manifest digest.
    pub reference: String,
    pub digest: String,
    pub packages: Vec<DebPackage>,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct PackagesStep {
    pub id: StepId,
}

impl Step for PackagesStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("status".to_string(), STATUS_PATH.to_string())])
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let base: BaseRecord = from_record(&cx.dep("base")?.record)?;
        let layers: Vec<PathBuf> = base
            .layers
            .iter()
            .map(|l| cx.blob_path(&l.blob))
            .collect::<Result<_, _>>()?;
        let status = crate::oci::rootfs::read_file(&layers, STATUS_PATH)
            .map_err(|e| StepError::context("reading the base image", e))?;
        let packages = status
            .map(|bytes| parse_status(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        Ok(StepOutput {
            record: to_record(&PackagesRecord {
                reference: base.reference,
                digest: base.digest,
                packages,
            })?,
            ..StepOutput::default()
        })
    }
}
