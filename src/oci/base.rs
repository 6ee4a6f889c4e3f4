//! Base images: parse `build.from` (`scratch`, `dir:ROOTFS`, `oci:DIR[:TAG]`,
//! `docker-daemon:NAME[:TAG]`, registry references) and resolve it to a manifest digest
//! (pinned in `scone.lock`), a config and verified layer blobs in the user cache.
//!
//! The cache (`$SCONE_CACHE_DIR`, else `<user cache dir>/scone`) is shared by all
//! projects: `blobs/sha256/<hex>` (manifests, configs, layers), `refs/` (last digest
//! seen per registry reference) and `dir-layers/` (layers of `dir:` bases by content).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::digest::{blob_path, digest_hex, verify_file, write_atomic};
use super::error::{io_at, OciError, Result};
use super::image::{build, canonical_json, ImageInput};
use super::layout::{is_index, manifest_parts, read_layout, select_platform, verify_layers};
use super::reference::Reference;
use super::registry::{RegistryClient, RegistryOptions};
use super::tar::{entries_from_dir, write_layer, Compression, EntryKind, LayerBlob, ModePolicy};

/// Where a base image comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BaseSpec {
    /// No base: our layers only.
    Scratch,
    /// A root file system folder, turned into one deterministic layer.
    Dir(PathBuf),
    /// An image in an OCI layout folder, by tag or the only one.
    Oci { dir: PathBuf, tag: Option<String> },
    /// An image in the local Docker-API engine.
    DockerDaemon(String),
    /// An image in a registry.
    Registry(Reference),
}

impl BaseSpec {
    /// Parse a `build.from` value.
    pub fn parse(input: &str) -> Result<BaseSpec> {
        let input = input.trim();
        let bad = |reason: &str| OciError::BadReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input == "scratch" {
            return Ok(BaseSpec::Scratch);
        }
        if let Some(path) = input.strip_prefix("dir:") {
            if path.is_empty() {
                return Err(bad("`dir:` needs a folder"));
            }
            return Ok(BaseSpec::Dir(PathBuf::from(path)));
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            // `oci:DIR[:TAG]`: the tag is after the last `:` unless that is part of the path.
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((dir, tag)) if !tag.contains('/') && !dir.is_empty() => {
                    (dir, Some(tag.to_string()))
                }
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err(bad("`oci:` needs a layout folder"));
            }
            return Ok(BaseSpec::Oci {
                dir: PathBuf::from(dir),
                tag,
            });
        }
        if let Some(name) = input.strip_prefix("docker-daemon:") {
            if name.is_empty() {
                return Err(bad("`docker-daemon:` needs an image name"));
            }
            return Ok(BaseSpec::DockerDaemon(name.to_string()));
        }
        let reference = input.strip_prefix("docker://").unwrap_or(input);
        Ok(BaseSpec::Registry(Reference::parse(reference)?))
    }
}

/// How to resolve a base.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BaseContext {
    /// The user cache (see [`default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Never touch the network.
    pub offline: bool,
    /// Manifest digest from `scone.lock`; registry bases are fetched at this digest.
    pub pinned: Option<String>,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Docker-API engine for `docker-daemon:` (None: `DOCKER_HOST` or the default socket).
    pub docker_host: Option<String>,
}

/// A layer of a base image, its blob in the cache (or the source layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLayer {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Blob size.
    pub size: u64,
    /// Media type (OCI or Docker).
    pub media_type: String,
    /// The verified blob file.
    pub path: PathBuf,
}

/// A resolved base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference as the user wrote it (normalised).
    pub reference: String,
    /// Manifest digest (what `scone.lock` pins).
    pub digest: String,
    /// The image config bytes.
    pub config: Vec<u8>,
    /// Layers, bottom first.
    pub layers: Vec<BaseLayer>,
}

impl BaseImage {
    /// The layer blob files, bottom first (for [`super::rootfs`]).
    pub fn layer_paths(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.path.clone()).collect()
    }

    /// `(file, digest)` of each layer, as [`super::layout::write_layout`] takes them.
    pub fn blobs(&self) -> Vec<(&Path, &str)> {
        self.layers
            .iter()
            .map(|l| (l.path.as_path(), l.digest.as_str()))
            .collect()
    }
}

/// `$SCONE_CACHE_DIR`, else `<user cache dir>/scone` (`~/.cache/scone` on Linux).
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("SCONE_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("scone"),
    }
}

/// Resolve a base image: fetch/compute, verify, cache.
pub fn resolve(spec: &BaseSpec, ctx: &BaseContext) -> Result<BaseImage> {
    match spec {
        BaseSpec::Scratch => synthesized("scratch", Vec::new(), &ctx.cache_dir),
        BaseSpec::Dir(root) => resolve_dir(root, ctx),
        BaseSpec::Oci { dir, tag } => resolve_oci(dir, tag.as_deref()),
        BaseSpec::DockerDaemon(name) => super::base_docker::resolve_docker_daemon(name, ctx),
        BaseSpec::Registry(reference) => resolve_registry(reference, ctx),
    }
}

/// A base made of our own layers (scratch, `dir:`): a config and manifest built the
/// same deterministic way as our images, so the digest depends on content only.
pub(crate) fn synthesized(
    reference: &str,
    layers: Vec<LayerBlob>,
    cache_dir: &Path,
) -> Result<BaseImage> {
    let blobs = build(
        &ImageInput {
            layers: layers.clone(),
            ..ImageInput::default()
        },
        0,
    )?;
    let blob_dir = cache_dir.join("blobs");
    let mut base_layers = Vec::new();
    for layer in layers {
        base_layers.push(BaseLayer {
            path: blob_path(&blob_dir, &layer.digest)?,
            digest: layer.digest,
            diff_id: layer.diff_id,
            size: layer.size,
            media_type: layer.media_type,
        });
    }
    Ok(BaseImage {
        reference: reference.to_string(),
        digest: blobs.manifest_digest,
        config: blobs.config,
        layers: base_layers,
    })
}

/// The content key of a folder's entries: paths, modes, link targets and
/// file contents.
fn dir_key(entries: &[super::tar::LayerEntry]) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"scone dir-layer v1\0");
    let mut sorted: Vec<&super::tar::LayerEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for entry in sorted {
        hasher.update(entry.path.as_bytes());
        hasher.update(&entry.mode.to_le_bytes());
        match &entry.kind {
            EntryKind::Dir => {
                hasher.update(b"d");
            }
            EntryKind::Symlink(target) => {
                hasher.update(b"l");
                hasher.update(target.as_bytes());
            }
            EntryKind::File { source, size } => {
                hasher.update(b"f");
                hasher.update(&size.to_le_bytes());
                let mut file = fs::File::open(source).map_err(io_at("opening", source))?;
                let mut h = blake3::Hasher::new();
                std::io::copy(&mut file, &mut h).map_err(io_at("reading", source))?;
                hasher.update(h.finalize().as_bytes());
            }
        }
        hasher.update(b"\0");
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Marks a user-cache file as used now (its mtime), for
/// [`collect_user_cache`]; `true`, so it can sit in a condition.
fn used(path: &Path) -> bool {
    let _ = filetime::set_file_mtime(path, filetime::FileTime::now());
    true
}

/// How long a temp file of the user cache (`.<name>.tmp-<pid>-<n>`, see
/// `crate::durable`) is taken to be another process's write in flight: the
/// cache is shared by every project of the user, and a build elsewhere may be
/// writing it now, whatever `--keep-days` says. One left by a killed build is
/// removed once it is older.
const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `name` is a temp file written within [`IN_FLIGHT`].
fn in_flight(name: &std::ffi::OsStr, meta: &fs::Metadata) -> bool {
    name.as_encoded_bytes().starts_with(b".")
        && meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age < IN_FLIGHT)
}

/// What [`collect_user_cache`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: usize,
    pub bytes: u64,
}

/// Removes from the user cache every base blob that is not in `keep` (the
/// digests the calling workspace's bases use) and was not used since
/// `cutoff` (other projects share the cache: what they used lately stays),
/// then the `dir:` layer keys and registry refs whose blobs are gone.
pub fn collect_user_cache(
    cache_dir: &Path,
    keep: &std::collections::HashSet<String>,
    cutoff: std::time::SystemTime,
) -> std::io::Result<Collected> {
    let mut out = Collected::default();
    let sha = cache_dir.join("blobs").join("sha256");
    let entries = match fs::read_dir(&sha) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        let meta = entry.metadata()?;
        let recent = meta.modified().is_ok_and(|m| m > cutoff);
        if keep.contains(&digest) || recent || in_flight(&entry.file_name(), &meta) {
            continue;
        }
        out.bytes += meta.len();
        out.files += 1;
        crate::durable::remove_all(&entry.path())?;
    }
    let gone =
        |digest: &str| blob_path(&cache_dir.join("blobs"), digest).map_or(true, |p| !p.exists());
    for (dir, digest_of) in [
        (
            "dir-layers",
            (|bytes: &[u8]| {
                serde_json::from_slice::<LayerBlob>(bytes)
                    .ok()
                    .map(|l| l.digest)
            }) as fn(&[u8]) -> Option<String>,
        ),
        ("refs", |bytes: &[u8]| {
            Some(String::from_utf8_lossy(bytes).trim().to_string())
        }),
    ] {
        let Ok(files) = fs::read_dir(cache_dir.join(dir)) else {
            continue;
        };
        for file in files.flatten() {
            if file
                .metadata()
                .is_ok_and(|meta| in_flight(&file.file_name(), &meta))
            {
                continue;
            }
            let digest = fs::read(file.path()).ok().and_then(|b| digest_of(&b));
            if digest.is_none_or(|d| gone(&d)) {
                out.files += 1;
                out.bytes += file.metadata().map_or(0, |m| m.len());
                crate::durable::remove_all(&file.path())?;
            }
        }
    }
    Ok(out)
}

fn resolve_dir(root: &Path, ctx: &BaseContext) -> Result<BaseImage> {
    let reference = format!("dir:{}", root.display());
    if !root.is_dir() {
        return Err(OciError::BaseNotFound {
            reference,
            reason: "no such folder".into(),
        });
    }
    let entries = entries_from_dir(root, "", ModePolicy::Preserve)?;
    let key = dir_key(&entries)?;
    let index = ctx.cache_dir.join("dir-layers").join(format!("{key}.json"));
    let blob_dir = ctx.cache_dir.join("blobs");
    let cached: Option<LayerBlob> = fs::read(&index)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let layer = match cached {
        Some(layer)
            if blob_path(&blob_dir, &layer.digest)
                .map(|p| verify_file(&p, &layer.digest, "cached layer").is_ok() && used(&p))
                .unwrap_or(false) =>
        {
            layer
        }
        _ => {
            let layer = write_layer(&entries, 0, Compression::Gzip, &blob_dir)?;
            // The layer read the files again: it is cached under the key only
            // if they still hold what the key was made of.
            if dir_key(&entries)? != key {
                return Err(OciError::BaseNotFound {
                    reference,
                    reason: "a file changed while the layer was made; build again".into(),
                });
            }
            let json = serde_json::to_value(&layer).map_err(|e| OciError::invalid("layer", e))?;
            write_atomic(&index, &canonical_json(&json))?;
            layer
        }
    };
    synthesized(&reference, vec![layer], &ctx.cache_dir)
}

fn resolve_oci(dir: &Path, tag: Option<&str>) -> Result<BaseImage> {
    let reference = format!(
        "oci:{}{}",
        dir.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    if !dir.join("index.json").is_file() {
        return Err(OciError::BaseNotFound {
            reference,
            reason: "not an OCI image layout (no index.json)".into(),
        });
    }
    let image = read_layout(dir, tag)?;
    verify_layers(&image.layers)?;
    let config: Value =
        serde_json::from_slice(&image.config).map_err(|e| OciError::invalid("base config", e))?;
    let diff_ids = diff_ids(&config, image.layers.len(), &reference)?;
    let layers = image
        .layers
        .into_iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| BaseLayer {
            digest: l.digest,
            diff_id,
            size: l.size,
            media_type: l.media_type,
            path: l.path,
        })
        .collect();
    Ok(BaseImage {
        reference,
        digest: image.manifest_digest,
        config: image.config,
        layers,
    })
}

/// The config's `rootfs.diff_ids`, checked to match the number of layers.
pub(crate) fn diff_ids(config: &Value, layers: usize, reference: &str) -> Result<Vec<String>> {
    let ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if ids.len() != layers {
        return Err(OciError::invalid(
            format!("base {reference}"),
            format!("config lists {} diff_ids for {layers} layers", ids.len()),
        ));
    }
    Ok(ids)
}

fn ref_file(cache_dir: &Path, reference: &Reference) -> PathBuf {
    let name: String = reference
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir.join("refs").join(name)
}

fn resolve_registry(reference: &Reference, ctx: &BaseContext) -> Result<BaseImage> {
    let blob_dir = ctx.cache_dir.join("blobs");
    let offline_err = || OciError::Offline {
        reference: reference.to_string(),
        cache: ctx.cache_dir.display().to_string(),
    };
    let pinned = ctx.pinned.clone().or_else(|| reference.digest.clone());
    if ctx.offline {
        let digest = match pinned {
            Some(d) => d,
            None => fs::read_to_string(ref_file(&ctx.cache_dir, reference))
                .map(|s| s.trim().to_string())
                .map_err(|_| offline_err())?,
        };
        return from_cache(reference, &digest, &blob_dir, None).map_err(|e| match e {
            OciError::BaseNotFound { .. } => offline_err(),
            other => other,
        });
    }
    let client = RegistryClient::new(RegistryOptions {
        insecure: ctx.insecure_registries.clone(),
        ..RegistryOptions::default()
    })?;
    let target = match &pinned {
        Some(d) => reference.with_digest(d),
        None => reference.clone(),
    };
    // A pinned digest already in the cache needs no network at all.
    if let Some(d) = &pinned {
        if let Ok(image) = from_cache(reference, d, &blob_dir, None) {
            return Ok(image);
        }
    }
    let mut pulled = client.pull_manifest(&target)?;
    let doc: Value =
        serde_json::from_slice(&pulled.bytes).map_err(|e| OciError::invalid("manifest", e))?;
    if is_index(&doc) {
        let digest = select_platform(&doc).ok_or_else(|| OciError::BaseNotFound {
            reference: reference.to_string(),
            reason: "the image index has no linux/amd64 manifest".into(),
        })?;
        pulled = client.pull_manifest(&reference.with_digest(&digest))?;
    }
    let manifest_path = blob_path(&blob_dir, &pulled.digest)?;
    write_atomic(&manifest_path, &pulled.bytes)?;
    let image = from_cache(reference, &pulled.digest, &blob_dir, Some(&client))?;
    write_atomic(
        &ref_file(&ctx.cache_dir, reference),
        image.digest.as_bytes(),
    )?;
    Ok(image)
}

/// Load a base from the cache by manifest digest; with a client, fetch missing blobs.
fn from_cache(
    reference: &Reference,
    digest: &str,
    blob_dir: &Path,
    client: Option<&RegistryClient>,
) -> Result<BaseImage> {
    let not_cached = |what: &str| OciError::BaseNotFound {
        reference: reference.to_string(),
        reason: format!("{what} is not in the cache"),
    };
    let fetch = |d: &str, what: &str| -> Result<PathBuf> {
        let path = blob_path(blob_dir, d)?;
        if path.is_file() && verify_file(&path, d, what).is_ok() && used(&path) {
            return Ok(path);
        }
        match client {
            Some(c) => {
                fs::create_dir_all(blob_dir.join("sha256")).map_err(io_at("creating", blob_dir))?;
                c.pull_blob(reference, d, &path)?;
                Ok(path)
            }
            None => Err(not_cached(what)),
        }
    };
    digest_hex(digest)?;
    let manifest_path = fetch(digest, "manifest")?;
    let manifest_bytes = fs::read(&manifest_path).map_err(io_at("reading", &manifest_path))?;
    let manifest: Value =
        serde_json::from_slice(&manifest_bytes).map_err(|e| OciError::invalid("manifest", e))?;
    if is_index(&manifest) {
        let chosen =
            select_platform(&manifest).ok_or_else(|| not_cached("linux/amd64 manifest"))?;
        return from_cache(reference, &chosen, blob_dir, client);
    }
    let (config_digest, parts) = manifest_parts(&manifest)?;
    let config_path = fetch(&config_digest, "config")?;
    let config = fs::read(&config_path).map_err(io_at("reading", &config_path))?;
    let config_doc: Value =
        serde_json::from_slice(&config).map_err(|e| OciError::invalid("base config", e))?;
    let ids = diff_ids(&config_doc, parts.len(), &reference.to_string())?;
    let mut layers = Vec::new();
    for ((d, size, media_type), diff_id) in parts.into_iter().zip(ids) {
        let path = fetch(&d, &format!("layer {d}"))?;
        layers.push(BaseLayer {
            digest: d,
            diff_id,
            size,
            media_type,
            path,
        });
    }
    Ok(BaseImage {
        reference: reference.to_string(),
        digest: digest.to_string(),
        config,
        layers,
    })
}

#[cfg(test)]
#[path = "base_tests.rs"]
mod tests;
