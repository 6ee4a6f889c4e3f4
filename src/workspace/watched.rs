//! The paths a loaded workspace depends on besides those the load listed
//! while finding manifests (see [`crate::watch`]): the manifests themselves,
//! and the kinds of the paths validation looked at — every `copy:` entry and
//! each folder on its way, everything inside a copied folder, the signing
//! keys and local bases manifests name. Editing a copied file does not change
//! the workspace; replacing it with a symlink, or adding a file to a copied
//! folder, does.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::Workspace;
use crate::watch::{Watch, Watched};

/// What walking one path found: every path from it down (itself first, in
/// the walk's order) with how the workspace depends on it; `None` when it is
/// no folder (links not followed), which adds nothing.
pub(super) type Walk = Option<Vec<(PathBuf, Watch)>>;

/// Adds what `ws` depends on to [`Workspace::watched`]. `walks` holds walks
/// already taken (of `copy:` folders, on all cores while the manifests were
/// validated), by the path walked: each is used once, in place of walking
/// that path again.
pub(super) fn add_validated(ws: &mut Workspace, mut walks: HashMap<PathBuf, Walk>) {
    let mut out = std::mem::take(&mut ws.watched);
    // A folder many services reach (a shared `dir:` base) is walked once.
    let mut walked = HashSet::new();
    let mut follow = |dir: &Path, rel: &Path, out: &mut Watched| {
        along(dir, rel, out, &mut walked, &mut walks);
    };
    for mesh in &ws.meshes {
        out.push((mesh.mesh.path.clone(), Watch::Content));
    }
    for unit in &ws.services {
        let m = &unit.manifest;
        out.push((m.path.clone(), Watch::Content));
        for entry in &m.build.copy {
            follow(&unit.dir, copy_rel(&entry.value), &mut out);
        }
        if let Some(key) = m.build.signature.as_ref().and_then(|s| s.key.as_ref()) {
            follow(&unit.dir, Path::new(&key.value), &mut out);
        }
        if let Some(from) = &m.build.from {
            let local = from
                .value
                .strip_prefix("dir:")
                .or_else(|| from.value.strip_prefix("oci:"))
                .map(|p| p.split(':').next().unwrap_or(p));
            if let Some(p) = local {
                follow(&unit.dir, Path::new(p), &mut out);
            }
        }
    }
    ws.watched = out;
}

/// A `copy:` entry as [`add_validated`] follows it.
fn copy_rel(entry: &str) -> &Path {
    Path::new(entry.trim_end_matches('/'))
}

/// The walks of the `copy:` entries of the manifest in `dir` (see
/// [`add_validated`]), each by the path walked.
pub(super) fn copy_walks(
    dir: &Path,
    copy: &[crate::manifest::Located<String>],
) -> Vec<(PathBuf, Walk)> {
    copy.iter()
        .map(|entry| {
            let at = reached(dir, copy_rel(&entry.value));
            let walk = walk(&at);
            (at, walk)
        })
        .collect()
}

/// The path `dir/rel` leads to, `..` taken lexically (an absolute `rel`:
/// `rel` alone).
fn reached(dir: &Path, rel: &Path) -> PathBuf {
    let mut at = if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        dir.to_path_buf()
    };
    for c in rel.components() {
        match c {
            Component::Normal(name) => at.push(name),
            Component::ParentDir => {
                at.pop();
            }
            _ => {}
        }
    }
    at
}

/// The kind of every path from `dir` to `dir/rel`, `..` taken lexically
/// (an absolute `rel`: of `rel` alone); inside a folder it reaches,
/// everything below it (once per folder: `walked` holds those walked; a walk
/// in `walks` is taken instead of walking).
fn along(
    dir: &Path,
    rel: &Path,
    out: &mut Watched,
    walked: &mut HashSet<PathBuf>,
    walks: &mut HashMap<PathBuf, Walk>,
) {
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
    let taken = match walks.remove(&at) {
        Some(taken) => taken,
        None => walk(&at),
    };
    if let Some(entries) = taken {
        walked.insert(at);
        out.extend(entries);
    }
}

/// See [`Walk`]. The walk's first entry is `at` itself, its kind from one
/// `lstat` (links not followed).
fn walk(at: &Path) -> Walk {
    let mut entries = walkdir::WalkDir::new(at)
        .follow_links(false)
        .follow_root_links(false)
        .into_iter();
    let mut out = match entries.next() {
        Some(Ok(first)) if first.file_type().is_dir() => vec![(first.into_path(), Watch::Listing)],
        _ => return None,
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let watch = if entry.file_type().is_dir() {
            Watch::Listing
        } else {
            Watch::Kind
        };
        out.push((entry.into_path(), watch));
    }
    Some(out)
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
        let mut walks = HashMap::new();
        along(d, Path::new("lib"), &mut out, &mut walked, &mut walks);
        along(d, Path::new("main.py"), &mut out, &mut walked, &mut walks);
        let once = out.len();
        along(d, Path::new("./lib"), &mut out, &mut walked, &mut walks);
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

    #[test]
    fn a_link_to_a_folder_or_a_missing_path_is_watched_by_kind_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("real/sub")).unwrap();
        std::fs::write(d.join("real/sub/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        let mut out = Vec::new();
        let mut walked = HashSet::new();
        let mut walks = HashMap::new();
        along(d, Path::new("link"), &mut out, &mut walked, &mut walks);
        along(d, Path::new("missing/x"), &mut out, &mut walked, &mut walks);
        assert_eq!(
            out,
            vec![
                (d.join("link"), Watch::Kind),
                (d.join("missing"), Watch::Kind),
                (d.join("missing/x"), Watch::Kind),
            ]
        );
        assert!(walked.is_empty(), "nothing walked");
        along(d, Path::new("real"), &mut out, &mut walked, &mut walks);
        assert!(out.contains(&(d.join("real"), Watch::Listing)));
        assert!(out.contains(&(d.join("real/sub/a.txt"), Watch::Kind)));
        assert!(walked.contains(&d.join("real")));
    }
}
