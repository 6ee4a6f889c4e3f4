//! `base:<reference>`: resolve a base image (design §3.1) and put its config
//! and layers into the store, shared by every image built on it. A run on a
//! `dir:` base warns of the folder's files not everyone may read (they go
//! into the image as they are; docs/security.md).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::to_record;
use crate::engine::{Input, Step, StepContext, StepError, StepId, StepOutput};
use crate::oci::base::{resolve, BaseContext, BaseImage, BaseLayer, BaseSpec};

/// One base layer, by OCI digest and store digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseLayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
    /// Store digest of the blob.
    pub blob: String,
}

/// The record of a base step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    pub reference: String,
    /// Manifest digest: what `scone.lock` pins.
    pub digest: String,
    pub layers: Vec<BaseLayerRecord>,
}

impl BaseRecord {
    /// The [`BaseImage`] with layer paths in the store.
    pub fn to_image(
        &self,
        cx: &StepContext<'_>,
        record: &crate::engine::ActionRecord,
    ) -> Result<BaseImage, StepError> {
        let config = std::fs::read(cx.dep_file(record, "config")?)
            .map_err(|e| StepError::context("reading the base config", e))?;
        Ok(BaseImage {
            reference: self.reference.clone(),
            digest: self.digest.clone(),
            config,
            layers: self
                .layers
                .iter()
                .map(|l| {
                    Ok(BaseLayer {
                        digest: l.digest.clone(),
                        diff_id: l.diff_id.clone(),
                        size: l.size,
                        media_type: l.media_type.clone(),
                        path: cx.blob_path(&l.blob)?,
                    })
                })
                .collect::<Result<_, StepError>>()?,
        })
    }
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct BaseStep {
    pub id: StepId,
    /// The reference as the user wrote it (after making `dir:`/`oci:` absolute).
    pub reference: String,
    pub spec: BaseSpec,
    pub context: BaseContext,
}

impl BaseStep {
    /// The reference as it enters the fingerprint and the record: a `dir:`
    /// base by its name in the graph, not by where the checkout is, so two
    /// checkouts share results (its content is an input anyway).
    fn portable_reference(&self) -> String {
        match &self.spec {
            BaseSpec::Dir(_) => {
                let unit = self.id.unit.strip_prefix("dir:").unwrap_or(&self.id.unit);
                format!("dir:{unit}")
            }
            _ => self.reference.clone(),
        }
    }

    /// A local folder whose content identifies the base, if any.
    fn local_tree(&self) -> Option<PathBuf> {
        match &self.spec {
            BaseSpec::Dir(dir) => Some(dir.clone()),
            BaseSpec::Oci { dir, .. } => Some(dir.clone()),
            _ => None,
        }
    }
}

impl Step for BaseStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        let reference = match &self.spec {
            BaseSpec::Dir(_) => "dir".to_string(),
            spec => format!("{spec:?}"),
        };
        let mut p = BTreeMap::from([("reference".to_string(), reference)]);
        if let Some(pin) = &self.context.pinned {
            p.insert("pinned".into(), pin.clone());
        }
        p
    }

    fn inputs(&self) -> Vec<Input> {
        self.local_tree()
            .map(|path| Input::Rootfs {
                label: "base".into(),
                path,
            })
            .into_iter()
            .collect()
    }

    /// A registry tag or a Docker image may move: resolve it again unless
    /// `scone.lock` pins a digest.
    fn cacheable(&self) -> bool {
        match self.spec {
            BaseSpec::Registry(_) => self.context.pinned.is_some(),
            BaseSpec::DockerDaemon(_) => false,
            _ => true,
        }
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        // The step is named by the base (`base:REF`); an error naming it
        // too says "base image" once, not once more as context.
        let image = resolve(&self.spec, &self.context).map_err(|e| match e.names_the_image() {
            true => StepError::new(e.to_string()),
            false => StepError::context(format!("base image {}", self.reference), e),
        })?;
        let mut stored = BTreeMap::new();
        let mut layers = Vec::new();
        for layer in &image.layers {
            let blob = cx.store_file(&layer.path)?;
            stored.insert(format!("layer:{}", layer.digest), blob.clone());
            layers.push(BaseLayerRecord {
                digest: layer.digest.clone(),
                diff_id: layer.diff_id.clone(),
                size: layer.size,
                media_type: layer.media_type.clone(),
                blob,
            });
        }
        let config = cx.scratch.join("config.json");
        std::fs::write(&config, &image.config)
            .map_err(|e| StepError::context("writing the base config", e))?;
        Ok(StepOutput {
            record: to_record(&BaseRecord {
                reference: self.portable_reference(),
                digest: image.digest.clone(),
                layers,
            })?,
            files: BTreeMap::from([("config".to_string(), config)]),
            stored,
            changed: true,
            warnings: self.owner_only(cx.inputs).into_iter().collect(),
            ..StepOutput::default()
        })
    }
}

/// How many of the files [`BaseStep::owner_only`] names.
const NAMED: usize = 3;

impl BaseStep {
    /// The warning for a `dir:` base holding regular files not everyone may
    /// read (no `o+r`: `/etc/shadow`, a key): the layer keeps their modes,
    /// but whoever pulls the image reads their bytes. Taken from the walk
    /// that hashed the folder for the fingerprint (`inputs`), not a walk of
    /// its own.
    fn owner_only(&self, inputs: &[crate::engine::ResolvedInput]) -> Option<String> {
        if !matches!(self.spec, BaseSpec::Dir(_)) {
            return None;
        }
        let hidden: Vec<&str> = inputs
            .iter()
            .filter(|i| i.rootfs && i.kind == crate::engine::InputKind::File)
            .filter(|i| i.mode & 0o004 == 0)
            .map(|i| i.label.strip_prefix("base/").unwrap_or(&i.label))
            .collect();
        let count = hidden.len();
        if count == 0 {
            return None;
        }
        let mut names = hidden[..count.min(NAMED)].join(", ");
        if count > NAMED {
            names.push_str(", …");
        }
        let files = if count == 1 { "file" } else { "files" };
        Some(format!(
            "base {} holds {count} {files} not everyone may read (no o+r: {names}): they go \
             into the image as they are, and whoever pulls the image can read them",
            self.reference
        ))
    }
}
