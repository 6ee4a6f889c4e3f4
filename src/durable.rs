//! Durable file writes: nothing half-written is ever trusted.
//!
//! Every file scone writes (engine records, layers, enclaves, sessions) goes to a
//! temporary sibling first, is fsynced, then renamed over its final name (and the
//! folder fsynced), so a reader — or a build after `kill -9` or a power loss —
//! sees either the old file or the new one, never a torn one. scone's own
//! checksummed caches skip the fsync ([`write_checked`]): a torn one reads as
//! absent. Many files written at once are made durable together, with one
//! [`sync_filesystem`]: a copy step's, before any is put in place; a
//! checkout's downloads, before the build state that vouches for them.
//!
//! A temporary file is always made new ([`create_temp`]: `O_CREAT|O_EXCL`), so a
//! link or a file someone planted under its predictable name in a shared folder
//! is never opened or written through: the next name is tried instead.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name beside `path` (same folder, so rename is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// How many temporary names [`create_temp`] tries before it gives up.
const TEMP_ATTEMPTS: u32 = 64;

/// Creates a new file at `path`: never an existing one, never through a link
/// (`O_CREAT|O_EXCL`, which also refuses a dangling link).
pub fn create_new(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A new temporary file beside `path` (its [`temp_sibling`] name), created
/// by [`create_new`]; a name something already holds — a stale temp file, or
/// a link planted to redirect the write — is skipped for the next one, at most
/// [`TEMP_ATTEMPTS`] times.
pub fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = temp_sibling(path);
        match create_new(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(tmp),
            Err(e) => return Err(e),
        }
    }
    let last = last.map(|p| p.display().to_string()).unwrap_or_default();
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{TEMP_ATTEMPTS} temporary names beside it are taken (the last: {last}); \
             remove the `.*.tmp-*` files there"
        ),
    ))
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let (tmp, mut file) = create_temp(path)?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: some filesystems refuse to fsync a folder.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (temp file, rename) without waiting
/// for the disk: only for files that every reader verifies whole before it
/// trusts them — sealed with a checksum ([`crate::engine::wire::seal`]: the
/// caches) or checked against their own key (an action record must parse and
/// name its fingerprint). After a power loss such a file may be empty or torn,
/// which its reader sees as absent, never as wrong, so the fsync buys nothing
/// but latency.
pub fn write_checked(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_parts_checked(path, &[bytes])
}

/// [`write_checked`] of `parts`, one after the other (a file assembled from
/// buffers that are not copied into one first).
pub fn write_parts_checked(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let (tmp, mut file) = create_temp(path)?;
    let mut write = || -> io::Result<()> {
        for part in parts {
            file.write_all(part)?;
        }
        Ok(())
    };
    // The old file is removed first: ext4 flushes a file renamed *over*
    // another one right away (`auto_da_alloc`), which costs milliseconds per
    // megabyte. A reader between the two calls finds no file: for these files,
    // a miss, which is always safe.
    let result = write().and_then(|()| {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes everything written to the filesystem that holds `path` durable (one
/// `syncfs`: one flush of the disk's cache instead of one per file, for many files
/// written at once, e.g. a checkout's worth of downloaded blobs).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(path)?;
    // SAFETY: `syncfs` takes a file descriptor and reads no memory of ours; `dir`
    // is an open file for the whole call (it is dropped after), so the descriptor
    // is valid, and any result is only inspected through the return value.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `path` a real folder (its parent must be one): a link there is
/// removed — the link, never what it points to — and a folder made in its
/// place; a folder is kept. Anything else there is left for the caller to
/// fail on. So nothing written under `path` lands outside it.
pub fn real_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        },
        Err(e) => Err(e),
    }
}

/// Removes a file or a folder tree; a missing path is not an error.
pub fn remove_all(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_folder_replaces_a_link_and_keeps_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("precious"), "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        real_dir(&link).unwrap();
        assert!(
            fs::symlink_metadata(&link).unwrap().is_dir(),
            "a folder now"
        );
        assert_eq!(fs::read_dir(&link).unwrap().count(), 0);
        assert_eq!(fs::read(elsewhere.join("precious")).unwrap(), b"x");
        // A folder is kept with what it holds; a missing one is made.
        fs::write(link.join("kept"), "y").unwrap();
        real_dir(&link).unwrap();
        assert_eq!(fs::read(link.join("kept")).unwrap(), b"y");
        let missing = dir.path().join("missing");
        real_dir(&missing).unwrap();
        assert!(missing.is_dir());
        // A dangling link too; a file is left for the caller.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        real_dir(&dangling).unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().is_dir());
        let file = dir.path().join("file");
        fs::write(&file, "z").unwrap();
        real_dir(&file).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"z");
    }

    #[test]
    fn write_replaces_and_leaves_no_temp() {
        for write in [write, write_checked] {
            let dir = tempfile::tempdir().unwrap();
            replaces_and_leaves_no_temp(dir.path(), write);
        }
    }

    fn replaces_and_leaves_no_temp(dir: &Path, write: fn(&Path, &[u8]) -> io::Result<()>) {
        let path = dir.join("a/b.txt");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("b.txt")]);
    }

    #[test]
    fn a_link_planted_at_the_temp_name_is_never_written_through() {
        for write in [write, write_checked] {
            let dir = tempfile::tempdir().unwrap();
            let victim = dir.path().join("victim");
            fs::write(&victim, "victim content").unwrap();
            let out = dir.path().join("shared/sig.bin");
            fs::create_dir(out.parent().unwrap()).unwrap();
            // Links at the next temp names this process will use (the counter
            // is shared by the tests running at once: a few ahead).
            let next = COUNTER.load(Ordering::Relaxed);
            for n in next..next + 16 {
                let name = format!(".sig.bin.tmp-{}-{n}", std::process::id());
                std::os::unix::fs::symlink(&victim, out.with_file_name(name)).unwrap();
            }
            write(&out, b"output").unwrap();
            assert_eq!(fs::read(&victim).unwrap(), b"victim content");
            let meta = fs::symlink_metadata(&out).unwrap();
            assert!(meta.is_file(), "a file, not a link to the victim");
            assert_eq!(fs::read(&out).unwrap(), b"output");
        }
    }
}
