//! `docker-daemon:NAME` bases: export the image from the engine (bollard), turn its
//! `docker save` tarball into cached, gzip-compressed OCI blobs and a manifest.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use serde_json::Value;

use super::base::{diff_ids, BaseContext, BaseImage, BaseLayer};
use super::digest::{blob_path, digest_hex, store_blob, temp_path, HashingWriter, TempFile};
use super::error::{io_at, OciError, Result};
use super::image::manifest_json;
use super::tar::{GZIP_LEVEL, MEDIA_TYPE_LAYER_GZIP};

/// Resolve `docker-daemon:NAME` through the engine of `ctx.docker_host`.
pub(crate) fn resolve_docker_daemon(name: &str, ctx: &BaseContext) -> Result<BaseImage> {
    let reference = format!("docker-daemon:{name}");
    let work = temp_path(&ctx.cache_dir, "docker-export");
    fs::create_dir_all(&work).map_err(io_at("creating", &work))?;
    let result = (|| {
        let tarball = work.join("image.tar");
        super::docker::save(name, ctx.docker_host.as_deref(), &tarball)?;
        let unpacked = work.join("x");
        let file = File::open(&tarball).map_err(io_at("opening", &tarball))?;
        tar::Archive::new(BufReader::new(file))
            .unpack(&unpacked)
            .map_err(io_at("unpacking", &tarball))?;
        import_save_dir(&unpacked, &reference, &ctx.cache_dir)
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

/// Import an unpacked `docker save` folder (manifest.json + config + layer tars).
fn import_save_dir(dir: &Path, reference: &str, cache_dir: &Path) -> Result<BaseImage> {
    let manifest_path = dir.join("manifest.json");
    let bytes = fs::read(&manifest_path).map_err(io_at("reading", &manifest_path))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| OciError::invalid("docker save manifest", e))?;
    let entry = doc
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| OciError::invalid("docker save manifest", "no image"))?;
    let rel = |v: Option<&Value>| -> Result<std::path::PathBuf> {
        let s = v
            .and_then(Value::as_str)
            .ok_or_else(|| OciError::invalid("docker save manifest", "missing path"))?;
        if s.split('/').any(|p| p == "..") || s.starts_with('/') {
            return Err(OciError::invalid(
                "docker save manifest",
                "path escapes the archive",
            ));
        }
        Ok(dir.join(s))
    };
    let config_path = rel(entry.get("Config"))?;
    let config = fs::read(&config_path).map_err(io_at("reading", &config_path))?;
    let config_doc: Value =
        serde_json::from_slice(&config).map_err(|e| OciError::invalid("image config", e))?;
    let layer_files: Vec<&Value> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let ids = diff_ids(&config_doc, layer_files.len(), reference)?;
    let blob_dir = cache_dir.join("blobs");
    let mut layers = Vec::new();
    for (file, diff_id) in layer_files.into_iter().zip(ids) {
        let path = rel(Some(file))?;
        layers.push(compressed_layer(&path, &diff_id, &blob_dir)?);
    }
    store_blob(&blob_dir, &config)?;
    let parts: Vec<(String, u64, String)> = layers
        .iter()
        .map(|l| (l.digest.clone(), l.size, l.media_type.clone()))
        .collect();
    let manifest = manifest_json(&config, &parts)?;
    let digest = store_blob(&blob_dir, &manifest)?;
    Ok(BaseImage {
        reference: reference.to_string(),
        digest,
        config,
        layers,
    })
}

/// Store a layer file as a gzip blob; an uncompressed tar is compressed (pinned level)
/// and checked against `diff_id`.
fn compressed_layer(path: &Path, diff_id: &str, blob_dir: &Path) -> Result<BaseLayer> {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(io_at("reading", path))?;
    let sha_dir = blob_dir.join("sha256");
    let (temp, file) = TempFile::new_in(&sha_dir)?;
    let outer = HashingWriter::new(BufWriter::new(file));
    let source = File::open(path).map_err(io_at("opening", path))?;
    let mut source = BufReader::new(source);
    let (outer, actual_diff_id) = if magic == [0x1f, 0x8b] {
        let mut outer = outer;
        std::io::copy(&mut source, &mut outer).map_err(io_at("copying", path))?;
        let mut decoder = flate2::read::GzDecoder::new(BufReader::new(
            File::open(path).map_err(io_at("opening", path))?,
        ));
        let (id, _) =
            super::digest::digest_reader(&mut decoder).map_err(io_at("decompressing", path))?;
        (outer, id)
    } else {
        let encoder = flate2::GzBuilder::new()
            .mtime(0)
            .write(outer, flate2::Compression::new(GZIP_LEVEL));
        let mut inner = HashingWriter::new(encoder);
        std::io::copy(&mut source, &mut inner).map_err(io_at("compressing", path))?;
        let (encoder, id, _) = inner.finish();
        (encoder.finish().map_err(io_at("compressing", path))?, id)
    };
    if actual_diff_id != diff_id {
        return Err(OciError::DigestMismatch {
            what: format!("layer {}", path.display()),
            expected: diff_id.to_string(),
            actual: actual_diff_id,
        });
    }
    let (buffered, digest, size) = outer.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| OciError::io("writing layer", e.into_error()))?;
    let dest = blob_path(blob_dir, &digest)?;
    digest_hex(&digest)?;
    temp.persist(file, &dest)?;
    Ok(BaseLayer {
        digest,
        diff_id: diff_id.to_string(),
        size,
        media_type: MEDIA_TYPE_LAYER_GZIP.to_string(),
        path: dest,
    })
}
