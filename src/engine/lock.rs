//! The build-directory lock: one scone at a time per `target/`.
//!
//! An advisory lock (`flock`) on `target/.scone/lock`, held for the whole run.
//! A second build waits, saying so once, like cargo's "Blocking waiting for file
//! lock on build directory". The kernel drops the lock when the process dies,
//! so a `kill -9` never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Held while alive.
#[derive(Debug)]
pub struct TargetLock {
    _file: File,
}

impl TargetLock {
    /// Takes the lock on `<target>/.scone/lock`, waiting if another process has
    /// it; `on_wait` is called once before waiting.
    pub fn acquire(target_dir: &Path, on_wait: impl FnOnce()) -> io::Result<TargetLock> {
        let file = open(target_dir)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(TargetLock { _file: file })
    }

    /// Takes the lock if no other process has it; `None` if one has.
    pub fn try_acquire(target_dir: &Path) -> io::Result<Option<TargetLock>> {
        let file = open(target_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(TargetLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

fn open(target_dir: &Path) -> io::Result<File> {
    let dir = target_dir.join(".scone");
    fs::create_dir_all(&dir)?;
    // The folder is a scone target dir from now on (docs/security.md).
    crate::workspace::target::tag(target_dir)?;
    // Never opened through a link (one planted there could make scone create
    // a file wherever it points): a link there is removed first.
    let path = dir.join("lock");
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
    };
    match open() {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            fs::remove_file(&path)?;
            open()
        }
        opened => opened,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_lock_is_never_opened_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::create_dir_all(target.join(".scone")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, target.join(".scone/lock")).unwrap();
        let lock = TargetLock::try_acquire(&target).unwrap();
        assert!(lock.is_some());
        assert!(
            !elsewhere.exists(),
            "a file was made where the link pointed"
        );
        let meta = fs::symlink_metadata(target.join(".scone/lock")).unwrap();
        assert!(meta.is_file(), "the link was replaced by the lock file");
    }

    #[test]
    fn second_locker_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = TargetLock::acquire(dir.path(), || panic!("first must not wait")).unwrap();
        let waited = Arc::new(AtomicBool::new(false));
        let (w, p) = (waited.clone(), dir.path().to_path_buf());
        let handle = std::thread::spawn(move || {
            TargetLock::acquire(&p, || w.store(true, Ordering::SeqCst)).unwrap()
        });
        while !waited.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        drop(first);
        let _second = handle.join().unwrap();
        assert!(waited.load(Ordering::SeqCst));
    }

    #[test]
    fn trying_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let first = TargetLock::try_acquire(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(TargetLock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(TargetLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
