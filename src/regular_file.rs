//! Reading files a manifest or `scone.toml` names: only regular files, and only
//! up to a bound. A FIFO, a device or a socket is refused by its type before it is
//! opened (opening a FIFO blocks, reading `/dev/zero` never ends), and the file is
//! then opened without blocking and checked again, so one swapped in meanwhile is
//! refused too. See `docs/security.md`.

use std::fs::{FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most bytes a manifest or `scone.toml` may have (16 MiB: a Meshfile of
/// 10,000 services is about 1.2 MB).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The most bytes a signing key file may have.
pub const MAX_KEY_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It is not a regular file (links followed): `what` says what it is.
    #[error("is {what}, not a regular file")]
    Special { what: &'static str },
    /// It is larger than the bound.
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// What a file type is, in words, when it is neither a regular file, a folder nor
/// a symlink: `Some("a FIFO")`, `Some("a character device")`…
pub fn special_kind(t: &FileType) -> Option<&'static str> {
    if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// What `meta`'s path is, in words, if it is no regular file: `a folder`,
/// `a FIFO`, …
pub fn not_a_file(meta: &Metadata) -> Option<&'static str> {
    if meta.is_file() {
        return None;
    }
    Some(special_kind(&meta.file_type()).unwrap_or(if meta.is_dir() {
        "a folder"
    } else {
        "not a file"
    }))
}

/// Why `meta` (of a path, links followed) is no regular file, if it is not.
fn not_regular(meta: &Metadata) -> Option<ReadError> {
    not_a_file(meta).map(|what| ReadError::Special { what })
}

/// Checks that `path` (links followed) is a regular file, without opening it.
pub fn check(path: &Path) -> Result<Metadata, ReadError> {
    let meta = std::fs::metadata(path)?;
    match not_regular(&meta) {
        Some(e) => Err(e),
        None => Ok(meta),
    }
}

/// Reads the regular file `path` (links followed), at most `limit` bytes: one
/// `stat`, then an open that cannot block and a read bounded by `limit`, so even a
/// file swapped for a FIFO or a device after the `stat` ends the read.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = check(path)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Opens the regular file `path` (links followed) for reading, to be streamed:
/// refused by type before it is opened, opened without blocking, and checked
/// again once open (a file swapped for a FIFO or a device meanwhile).
pub fn open(path: &Path) -> Result<(std::fs::File, Metadata), ReadError> {
    check(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    match not_regular(&meta) {
        Some(e) => Err(e),
        None => Ok((file, meta)),
    }
}

/// [`read`] as UTF-8 text; text that is not UTF-8 is an `InvalidData` error
/// naming the first bad byte.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn special_files_are_refused_and_sizes_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("pipe");
        mkfifo(&fifo);
        let err = read(&fifo, 100).unwrap_err();
        assert!(
            matches!(err, ReadError::Special { what: "a FIFO" }),
            "{err}"
        );
        let zero = tmp.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read(&zero, 100).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        let err = read(tmp.path(), 100).unwrap_err();
        assert_eq!(err.to_string(), "is a folder, not a regular file");
        let file = tmp.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read(&file, 5).unwrap(), b"12345");
        assert!(matches!(
            read(&file, 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        assert!(read(&tmp.path().join("nope"), 4)
            .unwrap_err()
            .is_not_found());
        std::fs::write(&file, b"a\xffb").unwrap();
        let err = read_text(&file, 10).unwrap_err();
        assert_eq!(err.to_string(), "is not UTF-8 (byte 1)");
    }
}
