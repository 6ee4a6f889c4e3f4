//! The paths a loaded workspace depends on besides those the load listed
//! while finding manifests (see [`crate::watch`]): the manifests themselves,
//! and the kinds of the paths validation looked at — every `copy:` entry and
//! each folder on its way, everything inside a copied folder, the signing
//! keys and local bases manifests name. Editing a copied file does not change
//! the workspace; replacing it with a symlink, or adding a file to a copied
//! folder, does.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::Workspace;
use crate::watch::{Watch, Watched};

/// Adds what `ws` depends on to [`Workspace::watched`].
pub(super) fn add_validated(ws: &mut Workspace) {
    let mut out = std::mem::take(&mut ws.watched);
    // A folder many services reach (a shared `dir:` base) is walked once.
    let mut walked = HashSet::new();
    for mesh in &ws.meshes {
        out.push((mesh.mesh.path.clone(), Watch::Content));
    }
    for unit in &ws.services {
        let m = &unit.manifest;
        out.push((m.path.clone(), Watch::Content));
        for entry in &m.build.copy {
            along(
                &unit.dir,
                Path::new(entry.value.trim_end_matches('/')),
                &mut out,
                &mut walked,
            );
        }
        if let Some(key) = m.build.signature.as_ref().and_then(|s| s.key.as_ref()) {
            along(&unit.dir, Path::new(&key.value), &mut out, &mut walked);
        }
        if let Some(from) = &m.build.from {
            let local = from
                .value
                .strip_prefix("dir:")
                .or_else(|| from.value.strip_prefix("oci:"))
                .map(|p| p.split(':').next().unwrap_or(p));
            if let Some(p) = local {
                along(&unit.dir, Path::new(p), &mut out, &mut walked);
            }
        }
    }
    ws.watched = out;
}

/// The kind of every path from `dir` to `dir/rel`, `..` taken lexically
/// (an absolute `rel`: of `rel` alone); inside a folder it reaches,
/// everything below it (once per folder: `walked` holds those walked).
fn along(dir: &Path, rel: &Path, out: &mut Watched, walked: &mut HashSet<PathBuf>) {
    let mut at = if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        dir.to_path_buf()
    };
    for c in rel.components() {
        match c {
            Component::Normal(name) => {
                at.push(name);
                if !rel.is_absolute() {
                    out.push((at.clone(), Watch::Kind));
                }
            }
            Component::ParentDir => {
                at.pop();
            }
            _ => {}
        }
    }
    if rel.is_absolute() {
        out.push((at.clone(), Watch::Kind));
    }
    if walked.contains(&at) {
        return;
    }
    let is_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
    if is_dir {
        walked.insert(at.clone());
        for entry in walkdir::WalkDir::new(&at).follow_links(false) {
            let Ok(entry) = entry else { continue };
            let watch = if entry.file_type().is_dir() {
                Watch::Listing
            } else {
                Watch::Kind
            };
            out.push((entry.into_path(), watch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_folder_is_watched_to_its_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("lib/sub")).unwrap();
        std::fs::write(d.join("lib/sub/a.txt"), "a").unwrap();
        std::fs::write(d.join("main.py"), "m").unwrap();
        let mut out = Vec::new();
        let mut walked = HashSet::new();
        along(d, Path::new("lib"), &mut out, &mut walked);
        along(d, Path::new("main.py"), &mut out, &mut walked);
        let once = out.len();
        along(d, Path::new("./lib"), &mut out, &mut walked);
        assert_eq!(
            out.len(),
            once + 1,
            "a folder walked once: only its own kind again"
        );
        let has = |p: &str, w| out.contains(&(d.join(p), w));
        assert!(has("lib", Watch::Kind));
        assert!(has("lib", Watch::Listing));
        assert!(has("lib/sub", Watch::Listing));
        assert!(has("lib/sub/a.txt", Watch::Kind));
        assert!(has("main.py", Watch::Kind));
        assert!(!has("main.py", Watch::Content), "its content is a step's");
    }
}
