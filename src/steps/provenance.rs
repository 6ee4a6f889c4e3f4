//! `provenance:<service>`: the signed provenance of the service's image: an
//! in-toto statement with a SLSA provenance predicate
//! ([`crate::attest::provenance`]) binding the image manifest digest to its
//! enclave (MRENCLAVE, MRSIGNER, SIGSTRUCT, fspf tag) and its SBOM, in a
//! DSSE envelope signed with the provenance key.
//! Published as `target/provenance/<service>.intoto.json` (the statement, the
//! envelope's payload) and `<service>.dsse.json` (the envelope); `push`
//! attaches the envelope to the image as a referrer.
//!
//! The key is read here, like the enclave key in `sign`: only its digest
//! enters the fingerprint, only its public key id the envelope. A service
//! manifest that gives a secret a fixed value is not an input (its digest
//! would be a hash of the value): the statement names it without a digest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::image::ImageRecord;
use super::sbom::SbomRecord;
use super::sign::SignRecord;
use super::{from_record, param, to_record};
use crate::attest::dsse::{Envelope, PAYLOAD_TYPE};
use crate::attest::key::ProvenanceKey;
use crate::attest::provenance::{statement, ProvenanceInput, SourceFile};
use crate::engine::{BlobSource, Input, Publish, Step, StepContext, StepError, StepId, StepOutput};

/// The record of a provenance step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceRecord {
    /// SHA-256 (hex) of the statement and of the envelope.
    pub statement_sha256: String,
    pub envelope_sha256: String,
    /// The signing key's id.
    pub keyid: String,
}

/// A manifest the statement names.
#[derive(Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path, relative to the workspace root (as the statement shows it).
    pub rel: String,
    pub path: PathBuf,
    /// It gives a secret a fixed value: named, never read or hashed.
    pub holds_secret: bool,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct ProvenanceStep {
    pub id: StepId,
    pub service: String,
    /// The base as the statement names it (see `SbomStep::base`).
    pub base: String,
    /// The service manifest.
    pub manifests: Vec<ManifestFile>,
    pub key: PathBuf,
    /// Build settings the statement records (`internalParameters`), as JSON.
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Step for ProvenanceStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        let manifests: Vec<(&str, bool)> = self
            .manifests
            .iter()
            .map(|m| (m.rel.as_str(), m.holds_secret))
            .collect();
        BTreeMap::from([
            ("service".to_string(), self.service.clone()),
            ("base".to_string(), self.base.clone()),
            ("manifests".to_string(), param(&manifests)),
            ("settings".to_string(), param(&self.settings)),
        ])
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::Read {
            label: "provenance-key".into(),
            path: self.key.clone(),
        }];
        for m in self.manifests.iter().filter(|m| !m.holds_secret) {
            inputs.push(Input::Read {
                label: format!("manifest:{}", m.rel),
                path: m.path.clone(),
            });
        }
        inputs
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let image: ImageRecord = from_record(&cx.dep("image")?.record)?;
        let sign_rec = cx.dep("sign")?;
        let sign: SignRecord = from_record(&sign_rec.record)?;
        let sbom: SbomRecord = from_record(&cx.dep("sbom")?.record)?;
        let sigstruct = std::fs::read(cx.dep_file(sign_rec, "sigstruct.bin")?)
            .map_err(|e| StepError::context("reading the SIGSTRUCT", e))?;
        // The inputs as the engine hashed them; a manifest is hashed (SHA-256)
        // from the bytes it checked.
        let mut manifests = Vec::new();
        for m in &self.manifests {
            let sha256 = if m.holds_secret {
                None
            } else {
                let bytes = std::fs::read(&m.path)
                    .map_err(|e| StepError::context(format!("reading {}", m.rel), e))?;
                let label = format!("manifest:{}", m.rel);
                let expected = cx.inputs.iter().find(|i| i.label == label);
                if expected.is_some_and(|i| i.digest != blake3::hash(&bytes).to_hex().as_str()) {
                    return Err(StepError::new(format!(
                        "{} changed during the build; build again",
                        m.rel
                    )));
                }
                Some(
                    crate::oci::digest::sha256_digest(&bytes)
                        .trim_start_matches("sha256:")
                        .to_string(),
                )
            };
            manifests.push(SourceFile {
                path: m.rel.clone(),
                sha256,
            });
        }
        let mut settings = self.settings.clone();
        settings.insert("enclave_binary".into(), sign.binary.clone().into());
        let doc = statement(&ProvenanceInput {
            service: &self.service,
            reference: &image.reference,
            image_digest: &image.manifest_digest,
            base: (&self.base, &image.base_digest),
            manifests: &manifests,
            settings,
            mrenclave: &sign.mrenclave,
            mrsigner: &sign.mrsigner,
            fspf_tag: &sign.fspf_tag,
            sigstruct: &sigstruct,
            sbom_sha256: &sbom.sha256,
        });
        let payload = crate::attest::pretty_json(&doc);
        let key = ProvenanceKey::load(&self.key).map_err(|e| StepError::new(e.to_string()))?;
        let envelope = Envelope::sign(&payload, PAYLOAD_TYPE, &key)
            .map_err(|e| StepError::new(e.to_string()))?
            .to_json();
        let sha = |b: &[u8]| {
            crate::oci::digest::sha256_digest(b)
                .trim_start_matches("sha256:")
                .to_string()
        };
        let mut files = BTreeMap::new();
        for (name, bytes) in [("statement", &payload), ("envelope", &envelope)] {
            let path = cx.scratch.join(name);
            std::fs::write(&path, bytes)
                .map_err(|e| StepError::context("writing the provenance", e))?;
            files.insert(name.to_string(), path);
        }
        Ok(StepOutput {
            record: to_record(&ProvenanceRecord {
                statement_sha256: sha(&payload),
                envelope_sha256: sha(&envelope),
                keyid: key.public().keyid(),
            })?,
            files,
            publish: vec![
                Publish::File {
                    path: format!("provenance/{}.intoto.json", self.service),
                    source: BlobSource::Own("statement".into()),
                },
                Publish::File {
                    path: format!("provenance/{}.dsse.json", self.service),
                    source: BlobSource::Own("envelope".into()),
                },
            ],
            ..StepOutput::default()
        })
    }
}
