//! Where a build's workspace and plan come from: the manifests on disk, or on
//! the incremental path the snapshot of the last build, whose stored plan is
//! used as it is when it was made under this build's settings (see
//! `scone::workspace::snapshot` and `scone::plan::stored`).

use scone::engine::Node;
use scone::plan::Settings;
use scone::workspace::snapshot::Snapshot;
use scone::workspace::{Config, Workspace};
use std::path::Path;

use super::args::CommonArgs;

/// A build's workspace, as far as it was read.
pub enum Source {
    /// Loaded from the files, or decoded whole from the snapshot.
    Loaded(Workspace),
    /// The last build's snapshot, no manifest decoded.
    Snapshot(Snapshot),
}

/// What every build reads of its workspace besides the manifests.
pub struct Head<'a> {
    pub root: &'a Path,
    pub config: &'a Config,
    pub warnings: &'a [String],
}

impl Source {
    pub fn head(&self) -> Head<'_> {
        match self {
            Source::Loaded(ws) => Head {
                root: &ws.root,
                config: &ws.config,
                warnings: &ws.warnings,
            },
            Source::Snapshot(s) => Head {
                root: &s.head().root,
                config: &s.head().config,
                warnings: &s.head().warnings,
            },
        }
    }

    /// The plan the snapshot stores, if it was made under `settings`; with the
    /// snapshot's digest.
    pub fn stored_plan(&self, settings: &Settings) -> Option<(Vec<Node>, [u8; 32])> {
        let Source::Snapshot(snapshot) = self else {
            return None;
        };
        let (bytes, range) = snapshot.plan();
        let stored = scone::plan::stored::settings_of(bytes.get(range.clone())?)?;
        if settings.apply.is_some() || stored != settings.digest() {
            return None;
        }
        let nodes = scone::plan::stored::decode(bytes, range)?;
        Some((nodes, *snapshot.digest()))
    }

    /// The whole workspace: decoded from the snapshot if need be, or loaded
    /// from the files if that fails.
    pub fn workspace(&mut self, common: &CommonArgs) -> anyhow::Result<&Workspace> {
        if let Source::Snapshot(snapshot) = self {
            let ws = match snapshot.workspace() {
                Some(ws) => ws,
                None => super::build::load_workspace(common)?,
            };
            *self = Source::Loaded(ws);
        }
        match self {
            Source::Loaded(ws) => Ok(ws),
            Source::Snapshot(_) => anyhow::bail!("internal: the snapshot was not decoded"),
        }
    }

    /// The workspace, if it was loaded or decoded.
    pub fn loaded(&self) -> Option<&Workspace> {
        match self {
            Source::Loaded(ws) => Some(ws),
            Source::Snapshot(_) => None,
        }
    }

    pub fn into_loaded(self) -> Option<Workspace> {
        match self {
            Source::Loaded(ws) => Some(ws),
            Source::Snapshot(_) => None,
        }
    }
}
