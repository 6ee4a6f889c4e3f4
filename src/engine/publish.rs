//! Publishing step outputs under `target/` from the blob store.
//!
//! A published folder (`target/images/<service>/`) is rebuilt beside itself
//! (`.<name>.tmp-*`), then swapped in with two renames, so a reader never sees
//! a half-written folder; a build killed between the renames leaves the folder
//! missing, and the next build publishes it again. Files are hard links to their
//! blobs (copies where links fail), so publishing costs no data copies.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::store::{Published, Store};
use crate::durable;

/// The folders of `target/` that steps publish into (`images/<name>`,
/// `enclave/<name>`, `policy/<ns>.yaml`, `helm` or `helm/<ns>`,
/// `manifests/…`, `sbom/<name>.spdx.json`, `provenance/<name>.*.json`).
/// Nothing else under them is kept by a build that planned
/// the whole workspace ([`prune`]).
pub const OUTPUT_FOLDERS: &[&str] = &[
    "images",
    "enclave",
    "policy",
    "helm",
    "manifests",
    "sbom",
    "provenance",
];

/// Removes from the [`OUTPUT_FOLDERS`] of `target` whatever none of
/// `published` put there (the outputs of removed services and meshes, and
/// leftovers of interrupted publishing): what a build from scratch would not
/// have. A folder nothing is published into goes as a whole.
pub fn prune<'a>(
    target: &Path,
    published: impl Iterator<Item = &'a Published>,
    paths: &super::state::PathTable,
) -> io::Result<()> {
    let tops: std::collections::BTreeSet<PathBuf> = published
        .map(|p| match p {
            Published::Dir { dir, .. } => PathBuf::from(dir),
            Published::File { path, .. } => PathBuf::from(path),
        })
        .collect();
    // Whether something published is `rel` or lies under it (the first
    // published path not before `rel` in order is the one to look at).
    let holds = |rel: &Path| {
        tops.range(rel.to_path_buf()..)
            .next()
            .is_some_and(|t| t.starts_with(rel))
    };
    for folder in OUTPUT_FOLDERS {
        let folder = Path::new(folder);
        if tops.contains(folder) {
            continue;
        }
        let root = target.join(folder);
        if !holds(folder) {
            paths.churn_tree(&root);
            durable::remove_all(&root)?;
            continue;
        }
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let rel = folder.join(entry.file_name());
            if !holds(&rel) {
                paths.churn_tree(&entry.path());
                durable::remove_all(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Whether `target/<entry>` holds exactly what the entry says.
pub fn is_current(target: &Path, entry: &Published, store: &Store) -> bool {
    match entry {
        Published::File { path, digest } => file_is(store, &target.join(path), digest),
        Published::Dir { dir, files } => {
            let root = target.join(dir);
            let Ok(found) = list_files(&root) else {
                return false;
            };
            found.len() == files.len()
                && found.iter().all(|rel| {
                    files
                        .get(rel)
                        .is_some_and(|d| file_is(store, &root.join(rel), d))
                })
        }
    }
}

/// A hard link to the intact blob is current as it is (one inode: any write
/// to it is a write to the blob, which the blob's check sees); a copy is
/// checked through the stat cache.
fn file_is(store: &Store, path: &Path, digest: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let blob = store.blob_path(digest);
    if let (Ok(p), Ok(b)) = (fs::symlink_metadata(path), fs::symlink_metadata(&blob)) {
        if p.ino() == b.ino() && p.dev() == b.dev() {
            return store.blob_intact(digest);
        }
    }
    store
        .paths()
        .digest(path)
        .map(|d| d.digest == digest)
        .unwrap_or(false)
}

/// Every regular file under `root`, as `/`-separated relative paths.
fn list_files(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(io::Error::other)?;
        if !entry.file_type().is_dir() {
            let rel = entry
                .path()
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .into_owned();
            out.push(rel);
        }
    }
    Ok(out)
}

/// Writes `target/<entry>` from the store. An error names the path; where
/// something that is not a folder stands in the way (a file at
/// `target/images`), it names that and what to do.
pub fn publish(target: &Path, entry: &Published, store: &Store) -> io::Result<()> {
    let dest = match entry {
        Published::File { path, .. } => target.join(path),
        Published::Dir { dir, .. } => target.join(dir),
    };
    publish_to(target, entry, store).map_err(|e| {
        let message = match in_the_way(target, &dest) {
            Some(p) => format!(
                "{} is not a folder ({e})\nhelp: remove it and build again",
                p.display()
            ),
            None => format!("{}: {e}", dest.display()),
        };
        io::Error::new(e.kind(), message)
    })
}

/// The first path between `target` (excluded) and `dest`'s folder that
/// exists and is not a folder (nor a link to one).
fn in_the_way(target: &Path, dest: &Path) -> Option<PathBuf> {
    let mut at = target.to_path_buf();
    for part in dest.strip_prefix(target).ok()?.parent()?.components() {
        at.push(part);
        match fs::metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Some(at),
            Err(_) => return fs::symlink_metadata(&at).is_ok().then_some(at),
        }
    }
    None
}

fn publish_to(target: &Path, entry: &Published, store: &Store) -> io::Result<()> {
    match entry {
        Published::File { path, digest } => {
            let dest = target.join(path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            let tmp = durable::temp_sibling(&dest);
            let blob = store.blob_path(digest);
            store.paths().churn(&blob);
            store.paths().churn(&dest);
            let linked = link_or_copy(&blob, &tmp)?;
            fs::rename(&tmp, &dest)?;
            if linked {
                // Renaming a link onto another link of the same inode (the
                // file was published from this blob before) does nothing
                // and leaves both names.
                let _ = fs::remove_file(&tmp);
            }
            Ok(())
        }
        Published::Dir { dir, files } => publish_dir(&target.join(dir), files, store),
    }
}

fn publish_dir(dest: &Path, files: &BTreeMap<String, String>, store: &Store) -> io::Result<()> {
    let parent = dest
        .parent()
        .ok_or_else(|| io::Error::other("cannot publish to the filesystem root"))?;
    fs::create_dir_all(parent)?;
    sweep_leftovers(dest, store)?;
    let tmp = durable::temp_sibling(dest);
    fs::create_dir_all(&tmp)?;
    for (rel, digest) in files {
        let path = tmp.join(rel);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p)?;
        }
        let blob = store.blob_path(digest);
        store.paths().churn(&blob);
        link_or_copy(&blob, &path)?;
    }
    if fs::symlink_metadata(dest).is_ok() {
        let old = old_name(dest);
        fs::rename(dest, &old)?;
        fs::rename(&tmp, dest)?;
        store.paths().churn_tree(&old);
        durable::remove_all(&old)?;
    } else {
        fs::rename(&tmp, dest)?;
    }
    Ok(())
}

fn old_name(dest: &Path) -> PathBuf {
    let tmp = durable::temp_sibling(dest);
    let name = tmp
        .file_name()
        .map(|n| n.to_string_lossy().replace(".tmp-", ".old-"));
    tmp.with_file_name(name.unwrap_or_default())
}

/// Removes `.<name>.tmp-*` / `.<name>.old-*` left by an interrupted publish.
fn sweep_leftovers(dest: &Path, store: &Store) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let prefixes = [
        format!(".{}.tmp-", name.to_string_lossy()),
        format!(".{}.old-", name.to_string_lossy()),
    ];
    for entry in fs::read_dir(parent)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| n.starts_with(p)) {
            store.paths().churn_tree(&entry.path());
            durable::remove_all(&entry.path())?;
        }
    }
    Ok(())
}

/// Hard-links `from` to `to`, or copies it where links fail; whether it linked.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<bool> {
    let _ = fs::remove_file(to);
    if fs::hard_link(from, to).is_ok() {
        return Ok(true);
    }
    let tmp = durable::temp_sibling(to);
    fs::copy(from, &tmp)?;
    fs::File::open(&tmp)?.sync_all()?;
    super::stat::pin_mtime(&tmp)?;
    fs::rename(&tmp, to)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_what_was_published_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for p in [
            "images/a/index.json",
            "images/gone/index.json",
            "policy/ns.yaml",
            "policy/old.yaml",
            "helm/Chart.yaml",
            "manifests/x.yaml",
            "other/keep",
        ] {
            fs::create_dir_all(t.join(p).parent().unwrap()).unwrap();
            fs::write(t.join(p), "x").unwrap();
        }
        let published = [
            Published::Dir {
                dir: "images/a".into(),
                files: BTreeMap::new(),
            },
            Published::File {
                path: "policy/ns.yaml".into(),
                digest: String::new(),
            },
            Published::Dir {
                dir: "helm/ns".into(),
                files: BTreeMap::new(),
            },
        ];
        let table = crate::engine::state::PathTable::new(Default::default(), t);
        prune(t, published.iter(), &table).unwrap();
        assert!(t.join("images/a/index.json").exists());
        assert!(!t.join("images/gone").exists());
        assert!(t.join("policy/ns.yaml").exists());
        assert!(!t.join("policy/old.yaml").exists());
        assert!(
            !t.join("helm/Chart.yaml").exists(),
            "one mesh became several"
        );
        assert!(!t.join("manifests").exists());
        assert!(t.join("other/keep").exists(), "not an output folder");
    }

    #[test]
    fn publishing_a_file_again_leaves_no_temp_name_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("target"), Default::default()).unwrap();
        let made = dir.path().join("made");
        fs::write(&made, "policy").unwrap();
        let digest = store.ingest_copy(&made).unwrap();
        let target = dir.path().join("target");
        let entry = Published::File {
            path: "policy/mesh.yaml".into(),
            digest,
        };
        for _ in 0..2 {
            publish(&target, &entry, &store).unwrap();
            assert!(is_current(&target, &entry, &store));
            let names: Vec<String> = fs::read_dir(target.join("policy"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["mesh.yaml"]);
        }
        assert_eq!(
            fs::read(target.join("policy/mesh.yaml")).unwrap(),
            b"policy"
        );
    }

    #[test]
    fn a_file_in_the_way_of_an_output_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let store = Store::open(&target, Default::default()).unwrap();
        fs::write(target.join("images"), "junk").unwrap();
        let entry = Published::Dir {
            dir: "images/a".into(),
            files: BTreeMap::new(),
        };
        let e = publish(&target, &entry, &store).unwrap_err().to_string();
        let images = target.join("images");
        assert!(
            e.starts_with(&format!("{} is not a folder", images.display())),
            "{e}"
        );
        assert!(e.contains("help: remove it"), "{e}");
        // A link to a folder is a folder here.
        fs::remove_file(&images).unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &images).unwrap();
        assert_eq!(in_the_way(&target, &images.join("a")), None);
        publish(&target, &entry, &store).unwrap();
    }
}
