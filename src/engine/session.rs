//! A build directory held for one build (a [`Session`]: its lock taken, its
//! store open) and the saving of its caches once the graph is done
//! ([`Saving`]), which the caller overlaps with its own writes.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::lock::TargetLock;
use super::scheduler::EngineError;
use super::store::Store;

/// A build directory held for one build: its lock taken, its store open.
/// Opening reads the step index, so a caller that knows the build directory
/// early can open it while it plans ([`Session::try_open`]).
pub struct Session {
    pub(super) dir: PathBuf,
    pub(super) lock: TargetLock,
    pub(super) store: Store,
}

impl Session {
    /// Takes the lock of `target_dir`, waiting (after `on_wait`) if another
    /// scone holds it, and opens the store.
    pub fn open(target_dir: &Path, on_wait: impl FnOnce()) -> Result<Session, EngineError> {
        let io_err = |source| EngineError::Io {
            dir: target_dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(target_dir).map_err(io_err)?;
        let lock = TargetLock::acquire(target_dir, on_wait).map_err(io_err)?;
        Session::with_lock(target_dir, lock).map_err(io_err)
    }

    /// [`Session::open`] if no other scone holds the lock (and nothing fails).
    pub fn try_open(target_dir: &Path) -> Option<Session> {
        fs::create_dir_all(target_dir).ok()?;
        let lock = TargetLock::try_acquire(target_dir).ok()??;
        Session::with_lock(target_dir, lock).ok()
    }

    fn with_lock(target_dir: &Path, lock: TargetLock) -> std::io::Result<Session> {
        Ok(Session {
            dir: target_dir.to_path_buf(),
            lock,
            store: Store::open(target_dir)?,
        })
    }

    /// The build directory, as given.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The step index and stat cache of a finished build, being saved; see
/// [`Saving::wait`]. Dropping it waits too.
#[derive(Default)]
pub struct Saving(pub(super) Option<(PathBuf, mpsc::Receiver<std::io::Result<()>>)>);

impl Saving {
    /// Waits until the build's caches are saved (and its lock released).
    pub fn wait(&mut self) -> Result<(), EngineError> {
        match self.0.take() {
            Some((dir, rx)) => match rx.recv() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(EngineError::Io { dir, source }),
                Err(_) => Err(EngineError::Io {
                    dir,
                    source: std::io::Error::other("saving the step index failed"),
                }),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Saving {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

impl std::fmt::Debug for Saving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Saving" } else { "Saved" })
    }
}
