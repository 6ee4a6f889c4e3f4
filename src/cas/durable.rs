//! Private, crash-safe files for the CAS stores: directories 0700, files 0600
//! written through a temporary file in the same directory, fsync and rename, and
//! an advisory lock file so concurrent processes do not interleave updates.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::CasError;

/// Creates `dir` (and its missing parents) with mode 0700. A folder that
/// exists already is left as it is: scone never changes the mode of a folder
/// it did not make (`docs/cas.md`).
pub fn private_dir(dir: &Path) -> Result<(), CasError> {
    if fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| CasError::io("create directory", parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        // Made here: 0700 whatever the umask took away.
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| CasError::io("set permissions of", dir, e)),
        // Made by another process at the same time, or there already.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(CasError::io("create directory", dir, e)),
    }
}

/// Writes `bytes` to `path` crash-safely with mode 0600: a temporary file in the
/// same directory, fsync, rename over `path`, fsync of the directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CasError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| CasError::io("create", &tmp, e))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| CasError::io("set permissions of", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| CasError::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| CasError::io("sync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| CasError::io("rename into", path, e))?;
        if let Ok(d) = File::open(dir) {
            // Best effort: some file systems refuse fsync on directories.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CasError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CasError::io("read", path, e)),
    }
}

/// An advisory lock on `<dir>/.lock`, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Waits for the exclusive lock (writers), creating `<dir>/.lock`.
    pub fn exclusive(dir: &Path) -> Result<DirLock, CasError> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CasError::io("open lock", &path, e))?;
        file.lock().map_err(|e| CasError::io("lock", &path, e))?;
        Ok(DirLock { file })
    }

    /// Waits for a shared lock (readers). A reader creates nothing: `None`
    /// when there is no `<dir>/.lock` (no writer has been there, so there is
    /// nothing to read either).
    pub fn shared(dir: &Path) -> Result<Option<DirLock>, CasError> {
        let path = dir.join(".lock");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Err(e) => return Err(CasError::io("open lock", &path, e)),
        };
        file.lock_shared()
            .map_err(|e| CasError::io("lock", &path, e))?;
        Ok(Some(DirLock { file }))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; this just does it early.
        let _ = self.file.unlock();
    }
}
