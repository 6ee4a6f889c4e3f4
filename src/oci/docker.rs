//! Docker-API engines (Docker or Podman) through bollard: load an OCI layout as a
//! `docker save`-style tarball, and export an image (for `docker-daemon:` bases).
//!
//! Each call runs on its own single-threaded tokio runtime, so sync code can call it;
//! never call these from inside an async runtime.

use std::io::Write;
use std::path::Path;

use bollard::Docker;
use futures_util::StreamExt;
use serde_json::json;

use super::digest::{digest_hex, TempFile};
use super::error::{io_at, OciError, Result};
use super::image::canonical_json;
use super::layout::{blob_path, read_layout};

fn host_name(docker_host: Option<&str>) -> String {
    docker_host
        .map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

fn runtime(host: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OciError::Docker {
            host: host.to_string(),
            reason: format!("cannot start a runtime: {e}"),
        })
}

async fn connect(host: &str) -> Result<Docker> {
    let fail = |e: bollard::errors::Error| OciError::Docker {
        host: host.to_string(),
        reason: e.to_string(),
    };
    let docker = Docker::connect_with_host(host).map_err(fail)?;
    docker.negotiate_version().await.map_err(fail)
}

/// A `repo:tag` Docker accepts: `latest` is added when the name has no tag.
fn repo_tag(name: &str) -> Result<String> {
    if name.contains('@') {
        return Err(OciError::BadReference {
            reference: name.to_string(),
            reason: "docker load needs a tag, not a digest".into(),
        });
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    Ok(if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    })
}

/// Build the `docker save`-format tarball (manifest.json + blobs) of one layout image.
pub fn save_tarball(layout_dir: &Path, tag: &str, out: impl Write) -> Result<()> {
    let image = read_layout(layout_dir, Some(tag)).or_else(|_| read_layout(layout_dir, None))?;
    let name = |d: &str| -> Result<String> { Ok(format!("blobs/sha256/{}", digest_hex(d)?)) };
    let mut layer_names = Vec::new();
    for layer in &image.layers {
        layer_names.push(name(&layer.digest)?);
    }
    let manifest = json!([{
        "Config": name(&image.config_digest)?,
        "RepoTags": [repo_tag(tag)?],
        "Layers": layer_names,
    }]);
    let mut builder = tar::Builder::new(out);
    let mut add = |path: &str, size: u64, data: &mut dyn std::io::Read| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, data)
            .map_err(|e| OciError::io(format!("writing {path} into the load tarball"), e))
    };
    let manifest_bytes = canonical_json(&manifest);
    add(
        "manifest.json",
        manifest_bytes.len() as u64,
        &mut manifest_bytes.as_slice(),
    )?;
    add(
        &name(&image.config_digest)?,
        image.config.len() as u64,
        &mut image.config.as_slice(),
    )?;
    let mut seen = std::collections::BTreeSet::new();
    for layer in &image.layers {
        if !seen.insert(layer.digest.clone()) {
            continue;
        }
        let path = blob_path(layout_dir, &layer.digest)?;
        let mut file = std::fs::File::open(&path).map_err(io_at("opening", &path))?;
        let size = file.metadata().map_err(io_at("reading", &path))?.len();
        add(&name(&layer.digest)?, size, &mut file)?;
    }
    builder
        .into_inner()
        .map_err(|e| OciError::io("finishing the load tarball", e))?;
    Ok(())
}

/// A `Write` that hands 256 KiB chunks to the async side (bounded channel: the tarball
/// is streamed, never held in memory).
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "engine stopped reading")
        })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Load the image tagged `tag` of the layout (or its only image) into the engine at
/// `docker_host` (None: `DOCKER_HOST`, else the default socket), tagged `tag`
/// (`:latest` added when it has none). Returns the engine's messages.
pub fn load(layout_dir: &Path, tag: &str, docker_host: Option<&str>) -> Result<Vec<String>> {
    let host = host_name(docker_host);
    // Fail early (before connecting) on a missing image or blob.
    read_layout(layout_dir, Some(tag)).or_else(|_| read_layout(layout_dir, None))?;
    let rt = runtime(&host)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let layout = layout_dir.to_path_buf();
    let tag_owned = tag.to_string();
    let writer = std::thread::spawn(move || {
        let mut sender = ChunkSender {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let result = save_tarball(&layout, &tag_owned, &mut sender).and_then(|()| {
            sender
                .send()
                .map_err(|e| OciError::io("streaming the load tarball", e))
        });
        if let Err(e) = &result {
            let _ = sender
                .tx
                .blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        result
    });
    let loaded = rt.block_on(async {
        let docker = connect(&host).await?;
        let options = bollard::query_parameters::ImportImageOptionsBuilder::new()
            .quiet(false)
            .build();
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut stream = docker.import_image(options, bollard::body_try_stream(body), None);
        let mut messages = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| OciError::Docker {
                host: host.clone(),
                reason: format!("load failed: {e}"),
            })?;
            if let Some(text) = info.stream.or(info.status) {
                let text = text.trim().to_string();
                if !text.is_empty() {
                    messages.push(text);
                }
            }
        }
        Ok(messages)
    });
    let written = writer.join().map_err(|_| OciError::Docker {
        host: host.clone(),
        reason: "the tarball writer panicked".into(),
    })?;
    match (loaded, written) {
        (Ok(messages), Ok(())) => Ok(messages),
        // The writer only sees a broken pipe when the engine side failed first.
        (Err(engine), Err(OciError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Err(engine)
        }
        // A tarball error explains a failed load better than the engine's reaction to it.
        (_, Err(tarball)) => Err(tarball),
        (Err(engine), Ok(())) => Err(engine),
    }
}

/// Export image `name` from the engine as a `docker save` tarball written to `dest`.
pub fn save(name: &str, docker_host: Option<&str>, dest: &Path) -> Result<()> {
    let host = host_name(docker_host);
    let rt = runtime(&host)?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let (temp, mut file) = TempFile::new_in(dir)?;
    rt.block_on(async {
        let docker = connect(&host).await?;
        docker
            .inspect_image(name)
            .await
            .map_err(|e| OciError::BaseNotFound {
                reference: format!("docker-daemon:{name}"),
                reason: e.to_string(),
            })?;
        let mut stream = docker.export_image(name);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| OciError::Docker {
                host: host.clone(),
                reason: format!("export of {name} failed: {e}"),
            })?;
            file.write_all(&chunk).map_err(io_at("writing", dest))?;
        }
        Ok::<(), OciError>(())
    })?;
    temp.persist(file, dest)
}
