//! OCI image layouts on disk: `oci-layout`, `index.json`, `blobs/sha256/…`.
//!
//! [`write_layout`] builds the whole layout in a temp sibling folder and renames it
//! over the destination, so `target/images/<service>/` is never half-written.
//! [`read_layout`] finds an image by its `org.opencontainers.image.ref.name`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::digest::{digest_hex, sha256_digest, sync_dir, temp_path, verify_file, write_atomic};
use super::error::{io_at, OciError, Result};
use super::image::{canonical_json, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

/// Annotation holding the tag of a manifest in `index.json` (what `skopeo oci:DIR:TAG` matches).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A layer of an image read from a layout (or a cache): its descriptor and blob file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutLayer {
    /// `sha256:` of the blob.
    pub digest: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Media type from the manifest.
    pub media_type: String,
    /// The blob file.
    pub path: PathBuf,
}

/// An image read from a layout.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// Manifest bytes as stored.
    pub manifest: Vec<u8>,
    /// `sha256:` of `manifest`.
    pub manifest_digest: String,
    /// Config bytes as stored.
    pub config: Vec<u8>,
    /// `sha256:` of `config`.
    pub config_digest: String,
    /// Layers bottom first.
    pub layers: Vec<LayoutLayer>,
}

/// `DIR/blobs/sha256/<hex>`.
pub fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    Ok(dir.join("blobs").join("sha256").join(digest_hex(digest)?))
}

/// Read a blob and check it against its digest.
pub fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>> {
    let path = blob_path(dir, digest)?;
    let bytes = fs::read(&path).map_err(io_at("reading", &path))?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(OciError::DigestMismatch {
            what: format!("blob {}", path.display()),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// Choose the linux/amd64 manifest of an image index (OCI or Docker list).
pub fn select_platform(index: &Value) -> Option<String> {
    let manifests = index.get("manifests")?.as_array()?;
    let linux_amd64 = manifests.iter().find(|m| {
        m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
            && m.pointer("/platform/architecture").and_then(Value::as_str) == Some("amd64")
    });
    let chosen = match linux_amd64 {
        Some(m) => m,
        None if manifests.len() == 1 && manifests[0].get("platform").is_none() => &manifests[0],
        None => return None,
    };
    chosen.get("digest")?.as_str().map(str::to_string)
}

/// Whether a manifest document is an index (by media type or shape).
pub fn is_index(doc: &Value) -> bool {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(MEDIA_TYPE_INDEX) | Some(MEDIA_TYPE_DOCKER_LIST) => true,
        Some(_) => false,
        None => doc.get("manifests").is_some() && doc.get("layers").is_none(),
    }
}

/// `(digest, size, media type)` of a blob descriptor.
pub type BlobRef = (String, u64, String);

/// The config digest and the `(digest, size, media_type)` of every layer of a manifest.
pub fn manifest_parts(manifest: &Value) -> Result<(String, Vec<BlobRef>)> {
    let bad = |reason: &str| OciError::invalid("image manifest", reason);
    let config = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no config digest"))?
        .to_string();
    let mut layers = Vec::new();
    for layer in manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no layers list"))?
    {
        let digest = layer.get("digest").and_then(Value::as_str);
        let size = layer.get("size").and_then(Value::as_u64);
        let media = layer.get("mediaType").and_then(Value::as_str);
        match (digest, size, media) {
            (Some(d), Some(s), Some(m)) => layers.push((d.to_string(), s, m.to_string())),
            _ => return Err(bad("a layer descriptor lacks digest, size or mediaType")),
        }
    }
    Ok((config, layers))
}

/// Read the image tagged `tag` (or the only image when `tag` is None) from the layout `dir`.
/// Manifest and config are verified against their digests; layers are not (see
/// [`verify_layers`]).
pub fn read_layout(dir: &Path, tag: Option<&str>) -> Result<LayoutImage> {
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path).map_err(io_at("reading", &index_path))?;
    let index: Value = serde_json::from_slice(&index_bytes)
        .map_err(|e| OciError::invalid(index_path.display().to_string(), e))?;
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = entries
        .iter()
        .filter_map(|m| m.pointer("/annotations/org.opencontainers.image.ref.name"))
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let chosen = match tag {
        Some(tag) => entries.iter().find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(Value::as_str)
                == Some(tag)
        }),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let chosen = chosen.ok_or_else(|| OciError::BaseNotFound {
        reference: format!(
            "oci:{}{}",
            dir.display(),
            tag.map(|t| format!(":{t}")).unwrap_or_default()
        ),
        reason: format!("the layout has the tags [{}]", names.join(", ")),
    })?;
    let mut digest = chosen
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| OciError::invalid("index.json", "an entry has no digest"))?
        .to_string();
    // Follow nested indexes down to the linux/amd64 manifest.
    for _ in 0..4 {
        let bytes = read_blob(dir, &digest)?;
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| OciError::invalid("manifest", e))?;
        if is_index(&doc) {
            digest = select_platform(&doc)
                .ok_or_else(|| OciError::invalid("image index", "has no linux/amd64 manifest"))?;
            continue;
        }
        let (config_digest, layer_parts) = manifest_parts(&doc)?;
        let config = read_blob(dir, &config_digest)?;
        let mut layers = Vec::new();
        for (d, size, media_type) in layer_parts {
            let path = blob_path(dir, &d)?;
            layers.push(LayoutLayer {
                digest: d,
                size,
                media_type,
                path,
            });
        }
        return Ok(LayoutImage {
            manifest: bytes,
            manifest_digest: digest,
            config,
            config_digest,
            layers,
        });
    }
    Err(OciError::invalid("image index", "nested too deeply"))
}

/// Check every layer blob exists and matches its digest.
pub fn verify_layers(layers: &[LayoutLayer]) -> Result<()> {
    for layer in layers {
        if !layer.path.exists() {
            return Err(OciError::BaseNotFound {
                reference: layer.digest.clone(),
                reason: format!("blob {} is missing", layer.path.display()),
            });
        }
        verify_file(
            &layer.path,
            &layer.digest,
            &format!("layer blob {}", layer.path.display()),
        )?;
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map_err(io_at("copying", from))?;
    Ok(())
}

/// Write an OCI image layout at `dir` holding one image (manifest + config + the blobs
/// given as `(file, digest)`), tagged `tag` in `index.json`. Atomic: built in a temp
/// sibling and renamed over `dir`. Every layer the manifest names must be in `blobs_from`.
pub fn write_layout(
    dir: &Path,
    blobs_from: &[(&Path, &str)],
    manifest: &[u8],
    config: &[u8],
    tag: &str,
) -> Result<()> {
    let manifest_doc: Value =
        serde_json::from_slice(manifest).map_err(|e| OciError::invalid("image manifest", e))?;
    let (config_digest, layers) = manifest_parts(&manifest_doc)?;
    if sha256_digest(config) != config_digest {
        return Err(OciError::invalid(
            "image manifest",
            "config digest does not match the config given",
        ));
    }
    for (digest, _, _) in &layers {
        if !blobs_from.iter().any(|(_, d)| d == digest) {
            return Err(OciError::invalid(
                "image layout",
                format!("no blob given for layer {digest}"),
            ));
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_at("creating", parent))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("layout")
        .to_string();
    let staging = temp_path(parent, &name);
    let result = (|| {
        let blobs = staging.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_at("creating", &blobs))?;
        for (from, digest) in blobs_from {
            let to = blob_path(&staging, digest)?;
            if !to.exists() {
                link_or_copy(from, &to)?;
            }
        }
        write_atomic(&blob_path(&staging, &config_digest)?, config)?;
        let manifest_digest = sha256_digest(manifest);
        write_atomic(&blob_path(&staging, &manifest_digest)?, manifest)?;
        write_atomic(
            &staging.join("oci-layout"),
            &canonical_json(&json!({"imageLayoutVersion": "1.0.0"})),
        )?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": { REF_NAME: tag },
            }],
        });
        write_atomic(&staging.join("index.json"), &canonical_json(&index))?;
        sync_dir(&blobs);
        sync_dir(&staging);
        replace_dir(&staging, dir)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Rename `staging` to `dir`, moving an existing `dir` aside first and removing it after.
fn replace_dir(staging: &Path, dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    if dir.exists() {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("layout");
        let old = temp_path(parent, &format!("{name}.old"));
        fs::rename(dir, &old).map_err(io_at("moving aside", dir))?;
        fs::rename(staging, dir).map_err(io_at("renaming into", dir))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(staging, dir).map_err(io_at("renaming into", dir))?;
    }
    sync_dir(parent);
    Ok(())
}
