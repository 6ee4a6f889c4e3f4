//! Content digests (`sha256:<hex>`) and crash-safe, content-addressed file writes.
//!
//! Every blob scone writes goes through [`TempFile`]: a temp file in the destination
//! folder, fsynced, then renamed into place, so a crash never leaves a torn blob.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use super::error::{io_at, OciError, Result};

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, validated (64 lowercase hex digits).
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| OciError::invalid("digest", format!("`{digest}` is not a sha256 digest")))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(OciError::invalid(
            "digest",
            format!("`{digest}` is not a sha256 digest"),
        ));
    }
    Ok(hex)
}

/// A writer that hashes (sha256) and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Give back the inner writer, the `sha256:` digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:` digest and size of a reader's content.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut sink)?;
    let (_, digest, size) = sink.finish();
    Ok((digest, size))
}

/// `sha256:` digest and size of a file.
pub fn digest_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).map_err(io_at("opening", path))?;
    digest_reader(io::BufReader::new(file)).map_err(io_at("reading", path))
}

/// Check that the file at `path` has `expected` digest; `what` names it in the error.
pub fn verify_file(path: &Path, expected: &str, what: &str) -> Result<u64> {
    let (actual, size) = digest_file(path)?;
    if actual != expected {
        return Err(OciError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(size)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temp name (`.<stem>.tmp-<pid>-<n>`) inside `dir`.
pub fn temp_path(dir: &Path, stem: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{stem}.tmp-{}-{n}", std::process::id()))
}

/// A temp file being written in its final folder; removed on drop unless persisted.
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Create a temp file in `dir` (created if missing); returns the guard and the open file.
    pub fn new_in(dir: &Path) -> Result<(TempFile, File)> {
        fs::create_dir_all(dir).map_err(io_at("creating", dir))?;
        let path = temp_path(dir, "blob");
        // Made new: a link planted at the name is refused, never written through.
        let file = crate::durable::create_new(&path).map_err(io_at("creating", &path))?;
        Ok((TempFile { path }, file))
    }

    /// fsync `file` (the one [`TempFile::new_in`] gave) and rename the temp file to `dest`.
    /// If `dest` already exists it is replaced (content-addressed: same bytes).
    pub fn persist(mut self, file: File, dest: &Path) -> Result<()> {
        file.sync_all().map_err(io_at("syncing", &self.path))?;
        drop(file);
        fs::rename(&self.path, dest).map_err(io_at("renaming into", dest))?;
        sync_dir(dest.parent().unwrap_or(Path::new(".")));
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsync a directory so a rename in it is durable (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write `bytes` to `dest` crash-safely (temp in the same folder + fsync + rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    crate::durable::write(dest, bytes).map_err(io_at("writing", dest))
}

/// Store `bytes` as `dir/sha256/<hex>` (content-addressed) and return its digest.
pub fn store_blob(dir: &Path, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    let dest = blob_path(dir, &digest)?;
    if !dest.exists() {
        write_atomic(&dest, bytes)?;
    }
    Ok(digest)
}

/// `dir/sha256/<hex>` for a digest.
pub fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    Ok(dir.join("sha256").join(digest_hex(digest)?))
}
