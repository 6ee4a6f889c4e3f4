//! `image:<service>`: the OCI manifest and config over the base's layers plus
//! ours, published as an OCI image layout in `target/images/<service>/`, tagged
//! with `build.to`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::base::BaseRecord;
use super::layer::LayerRecord;
use super::{from_record, param, to_record};
use crate::engine::{
    BlobSource, Publish, PublishFile, Step, StepContext, StepError, StepId, StepOutput,
};
use crate::oci::image::{build, canonical_json, ImageInput, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::oci::layout::REF_NAME;
use crate::oci::tar::LayerBlob;

/// The record of an image step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `build.to`.
    pub reference: String,
    pub manifest_digest: String,
    pub config_digest: String,
    /// The base's manifest digest.
    pub base_digest: String,
    /// Store digests of every layer blob, bottom first (base layers, then ours).
    pub layer_blobs: Vec<String>,
    /// The image's PATH (for the sign step's entry-binary lookup).
    pub path_var: String,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct ImageStep {
    pub id: StepId,
    /// `build.to`.
    pub to: String,
    /// Non-secret environment baked into the image.
    pub env: Vec<(String, String)>,
    pub pwd: String,
    /// The command, split into argv.
    pub argv: Vec<String>,
    /// `build.name`, as a label.
    pub service: String,
    /// Config `created` (`SOURCE_DATE_EPOCH`, else 0).
    pub created: u64,
}

impl Step for ImageStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("to".to_string(), self.to.clone()),
            ("env".to_string(), param(&self.env)),
            ("pwd".to_string(), self.pwd.clone()),
            ("argv".to_string(), param(&self.argv)),
            ("service".to_string(), self.service.clone()),
            ("created".to_string(), self.created.to_string()),
        ])
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let base_rec = cx.dep("base")?;
        let base: BaseRecord = from_record(&base_rec.record)?;
        let base_image = base.to_image(cx, base_rec)?;
        let layer_rec = cx.dep("layer")?;
        let layer: LayerRecord = from_record(&layer_rec.record)?;
        let layer_blob = layer_rec
            .files
            .get("layer")
            .cloned()
            .ok_or_else(|| StepError::new("internal: layer step made no layer"))?;
        let labels = BTreeMap::from([
            ("dev.scone.service".to_string(), self.service.clone()),
            ("dev.scone.layer.diff_id".to_string(), layer.diff_id.clone()),
            (
                "org.opencontainers.image.ref.name".to_string(),
                self.to.clone(),
            ),
        ]);
        let input = ImageInput {
            base: Some(&base_image),
            layers: vec![LayerBlob {
                digest: layer.digest.clone(),
                diff_id: layer.diff_id.clone(),
                size: layer.size,
                media_type: layer.media_type.clone(),
            }],
            env: self.env.clone(),
            working_dir: Some(self.pwd.clone()),
            entrypoint: self.argv.clone(),
            cmd: Vec::new(),
            labels,
        };
        let blobs =
            build(&input, self.created).map_err(|e| StepError::context("building the image", e))?;
        let config: serde_json::Value = serde_json::from_slice(&blobs.config)
            .map_err(|e| StepError::context("internal: image config", e))?;
        let path_var = config["config"]["Env"]
            .as_array()
            .and_then(|env| {
                env.iter()
                    .filter_map(|v| v.as_str())
                    .find_map(|v| v.strip_prefix("PATH="))
            })
            .unwrap_or(crate::oci::image::DEFAULT_PATH)
            .to_string();

        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": blobs.manifest_digest,
                "size": blobs.manifest.len(),
                "annotations": { REF_NAME: self.to },
            }],
        });
        let layout = serde_json::json!({"imageLayoutVersion": "1.0.0"});
        let mut files = BTreeMap::new();
        for (name, bytes) in [
            ("config", blobs.config.clone()),
            ("manifest", blobs.manifest.clone()),
            ("index.json", canonical_json(&index)),
            ("oci-layout", canonical_json(&layout)),
        ] {
            let path = cx.scratch.join(name);
            std::fs::write(&path, bytes).map_err(|e| StepError::context("writing the image", e))?;
            files.insert(name.to_string(), path);
        }
        let blob_file =
            |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let mut publish = vec![
            PublishFile {
                path: "oci-layout".into(),
                source: BlobSource::Own("oci-layout".into()),
            },
            PublishFile {
                path: "index.json".into(),
                source: BlobSource::Own("index.json".into()),
            },
            PublishFile {
                path: blob_file(&blobs.config_digest),
                source: BlobSource::Own("config".into()),
            },
            PublishFile {
                path: blob_file(&blobs.manifest_digest),
                source: BlobSource::Own("manifest".into()),
            },
        ];
        let mut layer_blobs = Vec::new();
        for l in &base.layers {
            publish.push(PublishFile {
                path: blob_file(&l.digest),
                source: BlobSource::Stored(l.blob.clone()),
            });
            layer_blobs.push(l.blob.clone());
        }
        publish.push(PublishFile {
            path: blob_file(&layer.digest),
            source: BlobSource::Stored(layer_blob.clone()),
        });
        layer_blobs.push(layer_blob);
        publish.sort_by(|a, b| a.path.cmp(&b.path));
        publish.dedup_by(|a, b| a.path == b.path);
        Ok(StepOutput {
            record: to_record(&ImageRecord {
                reference: self.to.clone(),
                manifest_digest: blobs.manifest_digest,
                config_digest: blobs.config_digest,
                base_digest: base.digest,
                layer_blobs,
                path_var,
            })?,
            files,
            publish: vec![Publish::Dir {
                dir: format!("images/{}", self.service),
                files: publish,
            }],
            ..StepOutput::default()
        })
    }
}
