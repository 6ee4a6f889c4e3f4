//! One build in a target folder, start to end: [`Session::open`] takes the
//! target lock; the build state is read when first asked for (a no-op reads
//! only its fresh list, [`Session::fresh`]; a change reads the rest after
//! the look, on both cores: see `state::head::read`); [`Session::run`] runs
//! a graph;
//! [`Session::finish`] writes the next state — the last file of the build —
//! and only then lets the lock go. Nothing a build writes is outside a
//! session's lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::events::EventSink;
use super::lock::TargetLock;
use super::scheduler::{self, BuildReport, EngineError, EngineOptions, Node};
use super::state::{BuildState, NextState, Spent};
use super::store::Store;
use crate::durable;

/// See the module documentation.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
    lock: TargetLock,
    /// Opened with the state on first use: a no-op whose fresh list holds
    /// never decodes the state ([`BuildState::fresh`]).
    store: OnceLock<Store>,
}

impl Session {
    /// Opens the build directory `target_dir` (creating it), holding its lock
    /// (`on_wait` is called if another scone has it), with the last build's
    /// state.
    pub fn open(target_dir: &Path, on_wait: impl FnOnce()) -> Result<Session, EngineError> {
        let io_err = |source| EngineError::Io {
            dir: target_dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(target_dir).map_err(io_err)?;
        let lock = TargetLock::acquire(target_dir, on_wait).map_err(io_err)?;
        Store::create(target_dir).map_err(io_err)?;
        Ok(Session {
            dir: target_dir.to_path_buf(),
            lock,
            store: OnceLock::new(),
        })
    }

    /// A look at the fresh list for a build with `key`, without reading the
    /// rest of the state: the last build's summary if it holds (nothing to
    /// do), else the `lstat`s it took (see [`BuildState::fresh`]).
    pub fn fresh(
        &self,
        key: &super::state::Digest,
        own: &[&std::ffi::OsStr],
    ) -> super::state::Look {
        BuildState::fresh(&self.dir, key, own)
    }

    /// The build directory, as given.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last build's state.
    pub fn state(&self) -> &BuildState {
        self.store().state()
    }

    pub fn store(&self) -> &Store {
        self.store
            .get_or_init(|| Store::new(&self.dir, Arc::new(BuildState::load(&self.dir))))
    }

    /// Runs the graph (its scratch folders wiped before and after).
    pub fn run(
        &self,
        nodes: &[Node],
        opts: &EngineOptions,
        sink: &dyn EventSink,
    ) -> Result<BuildReport, EngineError> {
        let started = Instant::now();
        let io_err = |source| EngineError::Io {
            dir: self.dir.clone(),
            source,
        };
        let tmp = self.store().root().join("tmp");
        durable::remove_all(&tmp).map_err(io_err)?;
        fs::create_dir_all(&tmp).map_err(io_err)?;
        let report = scheduler::run(self.store(), &self.dir, &tmp, nodes, opts, sink);
        let _ = durable::remove_all(&tmp);
        let mut report = report?;
        report.ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Writes the next state, then releases the lock. Returns the states,
    /// to be dropped when the caller chooses ([`Spent`]).
    pub fn finish(self, next: NextState) -> Result<Spent, EngineError> {
        // The state, read now if nothing asked for it yet.
        self.store();
        let Session {
            dir, lock, store, ..
        } = self;
        let store = store
            .into_inner()
            .unwrap_or_else(|| Store::new(&dir, Arc::default()));
        let written = next.write(&dir, store.into_paths());
        drop(lock);
        written.map_err(|source| EngineError::Io { dir, source })
    }
}
