//! The OCI image config and manifest over the base's layers plus ours, as canonical JSON
//! (sorted keys, no insignificant whitespace) so the same inputs give the same digests.

use std::collections::BTreeMap;

use oci_spec::image::{
    DescriptorBuilder, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde_json::{json, Map, Value};

use super::base::BaseImage;
use super::digest::sha256_digest;
use super::error::{OciError, Result};
use super::tar::{LayerBlob, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};

/// OCI media type of an image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI media type of an image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI media type of an image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The PATH an image gets when neither its base nor the service sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything that goes into an image besides the base.
#[derive(Debug, Clone, Default)]
pub struct ImageInput<'a> {
    /// The resolved base (None = scratch).
    pub base: Option<&'a BaseImage>,
    /// Our layers, bottom first, on top of the base's.
    pub layers: Vec<LayerBlob>,
    /// Non-secret environment; overrides base variables of the same name.
    pub env: Vec<(String, String)>,
    /// WorkingDir (the service's `pwd`).
    pub working_dir: Option<String>,
    /// Entrypoint; when non-empty it replaces the base's Entrypoint and Cmd.
    pub entrypoint: Vec<String>,
    /// Cmd (arguments to the entrypoint).
    pub cmd: Vec<String>,
    /// Labels, e.g. the source digests; merged over the base's.
    pub labels: BTreeMap<String, String>,
}

/// The serialized config and manifest with their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBlobs {
    /// Canonical JSON of the image config.
    pub config: Vec<u8>,
    /// `sha256:` of `config`.
    pub config_digest: String,
    /// Canonical JSON of the image manifest.
    pub manifest: Vec<u8>,
    /// `sha256:` of `manifest` (the image's identity).
    pub manifest_digest: String,
}

/// The build time to stamp into layers and configs: `SOURCE_DATE_EPOCH` (seconds since
/// the epoch) when set, else 0. A value that is not a number is an error.
pub fn source_date_epoch(value: Option<&str>) -> Result<u64> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            OciError::invalid(
                "SOURCE_DATE_EPOCH",
                format!("`{v}` is not a whole number of seconds"),
            )
        }),
    }
}

/// RFC 3339 UTC timestamp of seconds since the epoch (`1970-01-01T00:00:00Z` for 0).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Serialize with every object's keys sorted, recursively, and no whitespace.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sort(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // Serializing a Value cannot fail (keys are strings).
    serde_json::to_vec(&sort(value)).unwrap_or_default()
}

/// The OCI equivalent of a (possibly Docker) layer media type.
pub fn oci_layer_media_type(media_type: &str) -> Result<&'static str> {
    match media_type {
        MEDIA_TYPE_LAYER_GZIP | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            Ok(MEDIA_TYPE_LAYER_GZIP)
        }
        MEDIA_TYPE_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            Ok(MEDIA_TYPE_LAYER_ZSTD)
        }
        MEDIA_TYPE_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
            Ok(MEDIA_TYPE_LAYER_TAR)
        }
        other => Err(OciError::invalid(
            "layer media type",
            format!("`{other}` is not a supported layer type"),
        )),
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn merge_env(base: Vec<String>, ours: &[(String, String)]) -> Vec<String> {
    let mut env = base;
    for (key, value) in ours {
        let entry = format!("{key}={value}");
        let prefix = format!("{key}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == key) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// Build the config and manifest of an image; `created` is seconds since the epoch
/// (`SOURCE_DATE_EPOCH`, or 0).
pub fn build(input: &ImageInput<'_>, created: u64) -> Result<ImageBlobs> {
    let base_config: Value = match input.base {
        Some(base) if !base.config.is_empty() => serde_json::from_slice(&base.config)
            .map_err(|e| OciError::invalid(format!("config of base {}", base.reference), e))?,
        _ => json!({}),
    };
    let base_layers = input.base.map(|b| b.layers.as_slice()).unwrap_or(&[]);
    let created = rfc3339(created);

    // Runtime config: the base's, with ours on top.
    let mut run: Map<String, Value> = base_config
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let env = merge_env(string_list(run.get("Env")), &input.env);
    run.insert("Env".into(), json!(env));
    if let Some(dir) = &input.working_dir {
        run.insert("WorkingDir".into(), json!(dir));
    }
    if !input.entrypoint.is_empty() {
        run.insert("Entrypoint".into(), json!(input.entrypoint));
        run.remove("Cmd");
    }
    if !input.cmd.is_empty() {
        run.insert("Cmd".into(), json!(input.cmd));
    }
    if !input.labels.is_empty() {
        let mut labels = run
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &input.labels {
            labels.insert(k.clone(), json!(v));
        }
        run.insert("Labels".into(), Value::Object(labels));
    }

    // rootfs and history.
    let base_diff_ids = string_list(base_config.pointer("/rootfs/diff_ids"));
    if base_diff_ids.len() != base_layers.len() {
        return Err(OciError::invalid(
            "base image",
            format!(
                "config lists {} diff_ids but the manifest {} layers",
                base_diff_ids.len(),
                base_layers.len()
            ),
        ));
    }
    let mut diff_ids = base_diff_ids;
    diff_ids.extend(input.layers.iter().map(|l| l.diff_id.clone()));
    let base_history: Vec<Value> = base_config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let non_empty = base_history
        .iter()
        .filter(|h| h.get("empty_layer").and_then(Value::as_bool) != Some(true))
        .count();
    let mut history = if non_empty == base_layers.len() {
        base_history
    } else {
        base_layers
            .iter()
            .map(|_| json!({"created": created, "created_by": "scone: base layer"}))
            .collect()
    };
    for _ in &input.layers {
        history.push(json!({"created": created, "created_by": "scone: copy"}));
    }

    let mut config = Map::new();
    config.insert("created".into(), json!(created));
    for key in ["architecture", "os", "os.version", "variant"] {
        if let Some(v) = base_config.get(key) {
            config.insert(key.into(), v.clone());
        }
    }
    config
        .entry("architecture")
        .or_insert_with(|| json!("amd64"));
    config.entry("os").or_insert_with(|| json!("linux"));
    config.insert("config".into(), Value::Object(run));
    config.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    config.insert("history".into(), Value::Array(history));
    let config_value = Value::Object(config);
    serde_json::from_value::<ImageConfiguration>(config_value.clone())
        .map_err(|e| OciError::invalid("image config", e))?;
    let config_bytes = canonical_json(&config_value);
    let config_digest = sha256_digest(&config_bytes);

    // Manifest.
    let layers: Vec<(String, u64, String)> = base_layers
        .iter()
        .map(|l| (l.digest.clone(), l.size, l.media_type.clone()))
        .chain(
            input
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size, l.media_type.clone())),
        )
        .collect();
    let manifest_bytes = manifest_json(&config_bytes, &layers)?;
    let manifest_digest = sha256_digest(&manifest_bytes);
    Ok(ImageBlobs {
        config: config_bytes,
        config_digest,
        manifest: manifest_bytes,
        manifest_digest,
    })
}

/// Canonical OCI manifest over `config` and `(digest, size, media type)` layers (Docker
/// layer media types are mapped to their OCI equivalents: same bytes).
pub fn manifest_json(config: &[u8], layers: &[(String, u64, String)]) -> Result<Vec<u8>> {
    let mut descriptors = Vec::new();
    for (digest, size, media_type) in layers {
        descriptors.push(descriptor(
            MediaType::from(oci_layer_media_type(media_type)?),
            digest,
            *size,
        )?);
    }
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &sha256_digest(config),
            config.len() as u64,
        )?)
        .layers(descriptors)
        .build()
        .map_err(|e| OciError::invalid("image manifest", e))?;
    let value =
        serde_json::to_value(&manifest).map_err(|e| OciError::invalid("image manifest", e))?;
    Ok(canonical_json(&value))
}

fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: u64,
) -> Result<oci_spec::image::Descriptor> {
    let parsed: oci_spec::image::Digest =
        digest.parse().map_err(|e| OciError::invalid("digest", e))?;
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(parsed)
        .size(size)
        .build()
        .map_err(|e| OciError::invalid("descriptor", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn source_date_epoch_parsing() {
        assert_eq!(source_date_epoch(None).unwrap(), 0);
        assert_eq!(source_date_epoch(Some("")).unwrap(), 0);
        assert_eq!(
            source_date_epoch(Some("1700000000")).unwrap(),
            1_700_000_000
        );
        assert!(source_date_epoch(Some("yesterday")).is_err());
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v = json!({"b": 1, "a": {"d": [ {"z": 0, "y": 1} ], "c": 2}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn env_overrides_keep_order_and_add_path() {
        let env = merge_env(
            vec!["A=1".into(), "B=2".into()],
            &[("B".into(), "3".into()), ("C".into(), "4".into())],
        );
        assert_eq!(
            env,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "A=1".into(),
                "B=3".into(),
                "C=4".into()
            ]
        );
    }
}
