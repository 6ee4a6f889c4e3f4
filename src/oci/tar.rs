//! Deterministic layer tarballs: sorted entries, uid/gid 0, a fixed mtime, fixed modes,
//! no xattrs, compressed with a pinned codec and level.
//!
//! The same entries always give the same bytes, whatever the umask, the clock, the
//! folder the sources live in or the order the caller lists them in.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::digest::{HashingWriter, TempFile};

mod gzip;
use super::error::{io_at, OciError, Result};
use gzip::ParallelGzip;

/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Pinned gzip level (changing it changes every layer digest).
pub const GZIP_LEVEL: u32 = 6;
/// Pinned zstd level (changing it changes every layer digest).
pub const ZSTD_LEVEL: i32 = 3;

/// What a layer entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file whose content is read from `source` (`size` bytes, checked).
    File { source: PathBuf, size: u64 },
    /// A symbolic link to the given target (kept verbatim).
    Symlink(String),
}

/// One entry of a layer: a path inside the image (no leading slash), a mode, a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path inside the image, relative to `/`, `/`-separated, e.g. `python/print_env.py`.
    pub path: String,
    /// Permission bits (`0o7777` mask) written as they are.
    pub mode: u32,
    /// Directory, file or symlink.
    pub kind: EntryKind,
}

impl LayerEntry {
    /// A directory, mode 0755.
    pub fn dir(path: impl Into<String>) -> Self {
        LayerEntry {
            path: path.into(),
            mode: 0o755,
            kind: EntryKind::Dir,
        }
    }

    /// A regular file with a normalised mode: 0755 if `executable`, else 0644.
    pub fn file(path: impl Into<String>, source: PathBuf, size: u64, executable: bool) -> Self {
        LayerEntry {
            path: path.into(),
            mode: if executable { 0o755 } else { 0o644 },
            kind: EntryKind::File { source, size },
        }
    }

    /// A symlink, mode 0777.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        LayerEntry {
            path: path.into(),
            mode: 0o777,
            kind: EntryKind::Symlink(target.into()),
        }
    }
}

/// Layer compression (codec and level are pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    /// gzip, level [`GZIP_LEVEL`], no name, mtime 0 (the default, readable everywhere).
    #[default]
    Gzip,
    /// zstd, level [`ZSTD_LEVEL`].
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this codec.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }
}

/// How [`entries_from_dir`] sets modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModePolicy {
    /// 0755 for dirs and executables, 0644 for other files (umask-independent).
    Normalize,
    /// Keep the permission bits found on disk (for whole root file systems).
    Preserve,
}

/// A layer blob written to `out_dir/sha256/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    /// `sha256:` of the compressed bytes (the blob's name).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// OCI media type.
    pub media_type: String,
}

/// Check and normalise an in-image path: relative, `/`-separated, no `.`/`..`/empty parts.
pub fn clean_path(path: &str) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    let bad = |reason: &str| OciError::Entry {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if trimmed.is_empty() {
        return Err(bad("empty path"));
    }
    if trimmed.starts_with('/') {
        return Err(bad("must be relative to the image root (no leading `/`)"));
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad("must not contain empty, `.` or `..` components"));
        }
        if part.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
    }
    Ok(trimmed.to_string())
}

/// Sort, de-duplicate-check and complete `entries` with their parent directories (0755).
pub fn plan_entries(entries: &[LayerEntry]) -> Result<Vec<LayerEntry>> {
    let mut by_path: BTreeMap<String, LayerEntry> = BTreeMap::new();
    for entry in entries {
        let path = clean_path(&entry.path)?;
        let mut normalized = entry.clone();
        normalized.path = path.clone();
        normalized.mode &= 0o7777;
        if let Some(previous) = by_path.insert(path.clone(), normalized) {
            if previous != by_path[&path] {
                return Err(OciError::Entry {
                    path,
                    reason: "listed twice with different content".into(),
                });
            }
        }
    }
    let parents: Vec<String> = by_path
        .keys()
        .flat_map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();
    for parent in parents {
        match by_path.get(&parent) {
            Some(LayerEntry {
                kind: EntryKind::Dir,
                ..
            }) => {}
            Some(_) => {
                return Err(OciError::Entry {
                    path: parent,
                    reason: "is a parent of other entries but not a directory".into(),
                })
            }
            None => {
                by_path.insert(parent.clone(), LayerEntry::dir(parent));
            }
        }
    }
    // Sort by path components so `a/b` comes right after `a` (before `a.txt`), as tar tools do.
    let mut sorted: Vec<LayerEntry> = by_path.into_values().collect();
    sorted.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    Ok(sorted)
}

/// Write the uncompressed deterministic tar of `entries` (already planned) to `out`.
pub fn write_tar(entries: &[LayerEntry], mtime: u64, out: impl Write) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_mode(entry.mode);
        let ctx = |e: io::Error| OciError::Entry {
            path: entry.path.clone(),
            reason: e.to_string(),
        };
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", entry.path), io::empty())
                    .map_err(ctx)?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &entry.path, target)
                    .map_err(ctx)?;
            }
            EntryKind::File { source, size } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let file = File::open(source).map_err(io_at("opening", source))?;
                let actual = file.metadata().map_err(io_at("reading", source))?.len();
                if actual != *size {
                    return Err(OciError::Entry {
                        path: entry.path.clone(),
                        reason: format!(
                            "{} changed size while building the layer ({size} → {actual} bytes)",
                            source.display()
                        ),
                    });
                }
                // Pieces of up to 256 KiB; a small file's buffer its size
                // (one of 256 KiB for each of 20,000 small files was a
                // fifth of the layer's time).
                let capacity = (*size).min(256 * 1024) as usize + 1;
                let reader = BufReader::with_capacity(capacity, file).take(*size);
                builder
                    .append_data(&mut header, &entry.path, reader)
                    .map_err(ctx)?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| OciError::io("finishing tar", e))?;
    Ok(())
}

/// Build the layer of `entries` (parents added, sorted) with `mtime` on every entry,
/// compress it and store it crash-safely as `out_dir/sha256/<hex>`.
pub fn write_layer(
    entries: &[LayerEntry],
    mtime: u64,
    compression: Compression,
    out_dir: &Path,
) -> Result<LayerBlob> {
    let planned = plan_entries(entries)?;
    let blob_dir = out_dir.join("sha256");
    let (temp, file) = TempFile::new_in(&blob_dir)?;
    let outer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let (outer, diff_id) = match compression {
        Compression::Gzip => {
            let encoder = ParallelGzip::new(outer, GZIP_LEVEL);
            let mut inner = HashingWriter::new(encoder);
            write_tar(&planned, mtime, &mut inner)?;
            let (encoder, diff_id, _) = inner.finish();
            let outer = encoder
                .finish()
                .map_err(|e| OciError::io("compressing layer", e))?;
            (outer, diff_id)
        }
        Compression::Zstd => {
            let encoder = zstd::Encoder::new(outer, ZSTD_LEVEL)
                .map_err(|e| OciError::io("starting zstd", e))?;
            let mut inner = HashingWriter::new(encoder);
            write_tar(&planned, mtime, &mut inner)?;
            let (encoder, diff_id, _) = inner.finish();
            let outer = encoder
                .finish()
                .map_err(|e| OciError::io("compressing layer", e))?;
            (outer, diff_id)
        }
    };
    let (buffered, digest, size) = outer.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| OciError::io("writing layer", e.into_error()))?;
    let dest = blob_dir.join(super::digest::digest_hex(&digest)?);
    temp.persist(file, &dest)?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        media_type: compression.media_type().to_string(),
    })
}

/// Walk `root` and list its content as entries under `prefix` (`""` = image root).
/// Symlinks are kept as symlinks (never followed); sockets, fifos and devices are skipped;
/// hard links become separate regular files.
pub fn entries_from_dir(root: &Path, prefix: &str, modes: ModePolicy) -> Result<Vec<LayerEntry>> {
    let prefix = prefix.trim_matches('/');
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| {
            OciError::io(
                format!("walking {}", root.display()),
                e.into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop")),
            )
        })?;
        let rel = item
            .path()
            .strip_prefix(root)
            .map_err(|e| OciError::invalid("path", e))?;
        let rel = rel.to_str().ok_or_else(|| OciError::Entry {
            path: rel.display().to_string(),
            reason: "is not valid UTF-8".into(),
        })?;
        let path = if prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{prefix}/{rel}")
        };
        let meta = fs::symlink_metadata(item.path()).map_err(io_at("reading", item.path()))?;
        let disk_mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let entry = if ft.is_dir() {
            LayerEntry {
                path,
                mode: match modes {
                    ModePolicy::Normalize => 0o755,
                    ModePolicy::Preserve => disk_mode,
                },
                kind: EntryKind::Dir,
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(item.path()).map_err(io_at("reading link", item.path()))?;
            let target = target.to_str().ok_or_else(|| OciError::Entry {
                path: path.clone(),
                reason: "symlink target is not valid UTF-8".into(),
            })?;
            LayerEntry::symlink(path, target)
        } else if ft.is_file() {
            let mut entry = LayerEntry::file(
                path,
                item.path().to_path_buf(),
                meta.size(),
                disk_mode & 0o111 != 0,
            );
            if modes == ModePolicy::Preserve {
                entry.mode = disk_mode;
            }
            entry
        } else {
            continue;
        };
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_sorted_with_parents_and_fixed_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        fs::write(&a, b"hello").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o700)).unwrap();
        let entries = vec![
            LayerEntry::file("app/z.txt", a.clone(), 5, false),
            LayerEntry::file("app/bin/run", a.clone(), 5, true),
            LayerEntry::symlink("app/link", "z.txt"),
            LayerEntry::file("app.txt", a.clone(), 5, false),
        ];
        let planned = plan_entries(&entries).unwrap();
        let mut tar = Vec::new();
        write_tar(&planned, 42, &mut tar).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let listing: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = listing.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "app/",
                "app/bin/",
                "app/bin/run",
                "app/link",
                "app/z.txt",
                "app.txt"
            ]
        );
        assert!(listing.iter().all(|l| l.2 == 42));
        assert_eq!(listing[2].1, 0o755);
        assert_eq!(listing[4].1, 0o644);
        assert_eq!(listing[4].3, 5);
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["/abs", "a/../b", "", "a//b", "./a"] {
            assert!(plan_entries(&[LayerEntry::dir(bad)]).is_err(), "{bad}");
        }
        let clash = [LayerEntry::symlink("a", "b"), LayerEntry::dir("a/c")];
        assert!(plan_entries(&clash).is_err());
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"abc").unwrap();
        let wrong_size = [LayerEntry::file("f", f, 10, false)];
        let err = write_layer(&wrong_size, 0, Compression::Gzip, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("changed size"), "{err}");
        // No temp file left behind.
        assert_eq!(fs::read_dir(tmp.path().join("sha256")).unwrap().count(), 0);
    }
}
