//! Removing what the build state no longer refers to: `scone clean --gc`
//! (every blob and action record no step of the state names) and
//! `scone clean -p` (one service's outputs and results).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::id::StepId;
use super::record::Published;
use super::store::Store;
use crate::durable;

/// What [`collect`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Freed {
    pub blobs: usize,
    pub actions: usize,
    pub bytes: u64,
}

/// Removes every blob and action record that no step of the store's state
/// refers to (its last fingerprint, and the blobs its record names), scratch
/// folders left by a killed build, the parse cache and the memos. A
/// step whose record cannot be read (from the state's log or the action
/// cache) keeps nothing, and runs again next time.
pub fn collect(store: &Store) -> io::Result<Freed> {
    let state = store.state();
    let mut actions = HashSet::new();
    let mut blobs = HashSet::new();
    for step in &state.steps {
        // The action cache's names (`seal_key::action_name`).
        actions.insert(super::seal_key::action_name(&step.fingerprint));
        if let Some(record) = store.record(step) {
            blobs.extend(record.blob_digests().cloned());
        }
    }
    let mut freed = Freed::default();
    let root = store.root();
    for (dir, keep, count) in [
        ("blobs", &blobs, &mut freed.blobs),
        ("actions", &actions, &mut freed.actions),
    ] {
        for fan in read_dir(&root.join(dir))? {
            // Only the store's own fan-out folders are listed: a link (or
            // anything else) in their place goes itself, never what it
            // points to.
            if !fs::symlink_metadata(&fan).is_ok_and(|m| m.is_dir()) {
                durable::remove_all(&fan)?;
                continue;
            }
            for file in read_dir(&fan)? {
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                let key = name.as_deref().map(|n| n.trim_end_matches(".json"));
                if key.is_some_and(|k| keep.contains(k)) {
                    continue;
                }
                freed.bytes += fs::symlink_metadata(&file).map_or(0, |m| m.len());
                durable::remove_all(&file)?;
                *count += 1;
            }
        }
    }
    durable::remove_all(&root.join("tmp"))?;
    // Parsed manifests of every edit so far: the next load that parses keeps
    // only what it uses.
    durable::remove_all(&root.join(crate::workspace::PARSE_CACHE))?;
    // The memos (the sign step's: the blobs they name may be gone now; a
    // mesh step's fields of its deps, `dep_memo`, which share the folder).
    durable::remove_all(&root.join(super::dep_memo::DIR))?;
    Ok(freed)
}

/// The first link between `target` (excluded) and `path` (excluded), if any.
fn first_link(target: &Path, path: &Path) -> Option<PathBuf> {
    super::publish::on_the_way(target, path)
        .find(|at| fs::symlink_metadata(at).is_ok_and(|m| m.file_type().is_symlink()))
}

fn read_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// For `scone clean -p`: removes what the steps `ids` published under
/// `target` and their action records. Returns the removed outputs. (The
/// caller drops the steps from the state.)
pub fn forget(store: &Store, target: &Path, ids: &[StepId]) -> io::Result<Vec<PathBuf>> {
    let state = store.state();
    let mut removed = Vec::new();
    for id in ids {
        let Some(step) = state.step(id) else {
            continue;
        };
        if let Some(record) = store.record(step) {
            for entry in &record.publish {
                let path = match entry {
                    Published::Dir { dir, .. } => target.join(dir),
                    Published::File { path, .. } => target.join(path),
                };
                // Never through a link: one on the way (not scone's) goes
                // itself, and nothing past it is touched.
                let path = first_link(target, &path).unwrap_or(path);
                if !removed.contains(&path) && fs::symlink_metadata(&path).is_ok() {
                    store.paths().churn_tree(&path);
                    durable::remove_all(&path)?;
                    removed.push(path);
                }
            }
        }
        store.remove_action(&step.fingerprint)?;
    }
    Ok(removed)
}
