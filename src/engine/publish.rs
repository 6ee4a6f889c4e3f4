//! Publishing step outputs under `target/` from the blob store.
//!
//! A published folder (`target/images/<service>/`) is rebuilt beside itself
//! (`.<name>.tmp`), then swapped in with two renames (the old one by way of
//! `.<name>.old`), so a reader never sees a half-written folder; a build
//! killed between the renames leaves the folder missing, and the next build
//! publishes it again (removing what the killed one left beside it first).
//! Files are hard links to their blobs (copies where links fail), so
//! publishing costs no data copies.
//!
//! Everything under `target/` is scone's: a link found where a build publishes
//! or prunes (`target/images`, `target/helm/<ns>`, …; planted by a repository
//! that commits one, or made by hand) is removed and a real folder made in
//! its place. Nothing is ever written, listed or removed through a link, so
//! no folder outside `target/` is touched (docs/security.md).

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

/// The [`OUTPUT_FOLDERS`] a step of `kind` (a step id's part before `:`)
/// publishes into: what a result from elsewhere (a remote cache's entry) may
/// publish, checked before it is taken.
pub fn folders_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "image" => &["images"],
        "sign" => &["enclave"],
        "policy" => &["policy"],
        "chart" => &["helm", "manifests"],
        "sbom" => &["sbom"],
        "provenance" => &["provenance"],
        _ => &[],
    }
}

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
        // A link is not one of scone's folders: it goes (the link, never
        // what it points to), as anything else no build published.
        let is_folder = fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
        if !holds(folder) || !is_folder {
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

/// The first path between `target` (excluded) and `dest` (excluded) that
/// exists and is neither a folder nor a link (which publishing replaces).
fn in_the_way(target: &Path, dest: &Path) -> Option<PathBuf> {
    for at in on_the_way(target, dest) {
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() || meta.file_type().is_symlink() => {}
            Ok(_) => return Some(at),
            Err(_) => return None,
        }
    }
    None
}

/// The paths from `target` (excluded) down to `path` (excluded): the folders
/// a write to `path` goes through. None where `path` is not under `target`.
pub(crate) fn on_the_way<'a>(
    target: &'a Path,
    path: &'a Path,
) -> impl Iterator<Item = PathBuf> + 'a {
    let parts = path
        .strip_prefix(target)
        .ok()
        .and_then(Path::parent)
        .map(|rel| rel.components())
        .into_iter()
        .flatten();
    parts.scan(target.to_path_buf(), |at, part| {
        at.push(part);
        Some(at.clone())
    })
}

fn publish_to(target: &Path, entry: &Published, store: &Store) -> io::Result<()> {
    match entry {
        Published::File { path, digest } => {
            let dest = target.join(path);
            real_folders(target, &dest)?;
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
        Published::Dir { dir, files } => publish_dir(target, &target.join(dir), files, store),
    }
}

/// Makes every folder between `target` and `dest` a real folder: a link on
/// the way is removed (the link, never what it points to) and a folder made
/// in its place. What is neither (a file in the way) is left for the caller
/// to fail on, and [`in_the_way`] to name.
fn real_folders(target: &Path, dest: &Path) -> io::Result<()> {
    if !dest.starts_with(target) {
        let message = format!("{} is not under the target dir", dest.display());
        return Err(io::Error::other(message));
    }
    fs::create_dir_all(target)?;
    on_the_way(target, dest).try_for_each(|at| durable::real_dir(&at))
}

fn publish_dir(
    target: &Path,
    dest: &Path,
    files: &BTreeMap<String, String>,
    store: &Store,
) -> io::Result<()> {
    real_folders(target, dest)?;
    let (tmp, old) = (beside(dest, "tmp"), beside(dest, "old"));
    // What an interrupted publish of `dest` left (a build holds the target
    // lock, so no other publish of it is under way).
    for leftover in [&tmp, &old] {
        if fs::symlink_metadata(leftover).is_ok() {
            store.paths().churn_tree(leftover);
            durable::remove_all(leftover)?;
        }
    }
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
        fs::rename(dest, &old)?;
        fs::rename(&tmp, dest)?;
        store.paths().churn_tree(&old);
        durable::remove_all(&old)?;
    } else {
        fs::rename(&tmp, dest)?;
    }
    Ok(())
}

/// `.<name>.<what>` beside `dest`: where its next version is made (`tmp`)
/// and where the last one goes while they are swapped (`old`). Named by
/// `dest` alone, so the next publish finds what an interrupted one left
/// without listing the folder (`target/images` holds a folder per service:
/// listing it at every publish made a cold build quadratic in services).
fn beside(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{what}"))
}

/// Hard-links `from` to `to`, or copies it where links fail; whether it linked.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<bool> {
    let _ = fs::remove_file(to);
    if fs::hard_link(from, to).is_ok() {
        return Ok(true);
    }
    let (tmp, mut copy) = durable::create_temp(to)?;
    // As `fs::copy` would, but into a file made new (never through a link).
    let copied = fs::File::open(from).and_then(|mut source| {
        io::copy(&mut source, &mut copy)?;
        copy.set_permissions(source.metadata()?.permissions())?;
        copy.sync_all()
    });
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
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
    fn what_an_interrupted_publish_left_goes_with_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let store = Store::open(&target, Default::default()).unwrap();
        let blob = store.ingest_bytes(b"index").unwrap();
        let entry = Published::Dir {
            dir: "images/a".into(),
            files: BTreeMap::from([("index.json".to_string(), blob)]),
        };
        let images = target.join("images");
        // Killed between the two renames: the folder is gone, its next
        // version half made and the last one set aside.
        for (leftover, file) in [(".a.tmp", "half"), (".a.old", "index.json")] {
            fs::create_dir_all(images.join(leftover).join("blobs")).unwrap();
            fs::write(images.join(leftover).join(file), "stale").unwrap();
        }
        publish(&target, &entry, &store).unwrap();
        assert!(is_current(&target, &entry, &store));
        assert_eq!(fs::read(images.join("a/index.json")).unwrap(), b"index");
        let mut names: Vec<String> = fs::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a"]);
        // And again over the published folder: nothing is left beside it.
        publish(&target, &entry, &store).unwrap();
        assert!(is_current(&target, &entry, &store));
        assert_eq!(fs::read_dir(&images).unwrap().count(), 1);
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
        // A link is not in the way: publishing replaces it.
        fs::remove_file(&images).unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &images).unwrap();
        assert_eq!(in_the_way(&target, &images.join("a")), None);
        publish(&target, &entry, &store).unwrap();
    }

    /// A store under `target/`, one blob in it, and a folder outside
    /// `target/` (the victim) holding what a build would publish and prune
    /// there, with its listing to show it is never touched.
    struct Planted {
        dir: tempfile::TempDir,
        target: PathBuf,
        store: Store,
        blob: String,
        victim: PathBuf,
        before: Vec<PathBuf>,
    }

    fn planted() -> Planted {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let store = Store::open(&target, Default::default()).unwrap();
        let blob = store.ingest_bytes(b"output").unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir_all(victim.join("a")).unwrap();
        fs::write(victim.join("a/precious.txt"), "not scone's").unwrap();
        fs::write(victim.join("precious.txt"), "not scone's").unwrap();
        fs::write(victim.join(".a.old-1"), "not scone's").unwrap();
        fs::write(victim.join("mesh.yaml"), "not scone's").unwrap();
        let before = listing(&victim);
        Planted {
            dir,
            target,
            store,
            blob,
            victim,
            before,
        }
    }

    fn listing(dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .collect()
    }

    #[test]
    fn a_link_beside_a_published_folder_is_removed_never_followed() {
        let p = planted();
        let (target, store) = (&p.target, &p.store);
        let images = target.join("images");
        fs::create_dir_all(&images).unwrap();
        for leftover in [".a.tmp", ".a.old"] {
            std::os::unix::fs::symlink(&p.victim, images.join(leftover)).unwrap();
        }
        let entry = Published::Dir {
            dir: "images/a".into(),
            files: BTreeMap::from([("precious.txt".to_string(), p.blob.clone())]),
        };
        publish(target, &entry, store).unwrap();
        assert!(is_current(target, &entry, store));
        assert_eq!(
            listing(&p.victim),
            p.before,
            "nothing written or removed there"
        );
        assert_eq!(
            fs::read_dir(&images).unwrap().count(),
            1,
            "only `a` is left"
        );
    }

    #[test]
    fn a_link_under_the_target_dir_is_replaced_never_written_through() {
        let p = planted();
        let (target, store) = (&p.target, &p.store);
        let entries = [
            Published::Dir {
                dir: "images/a".into(),
                files: BTreeMap::from([("f".to_string(), p.blob.clone())]),
            },
            Published::File {
                path: "policy/mesh.yaml".into(),
                digest: p.blob.clone(),
            },
            Published::Dir {
                dir: "helm/ns".into(),
                files: BTreeMap::from([("Chart.yaml".to_string(), p.blob.clone())]),
            },
        ];
        for folder in ["images", "policy", "helm"] {
            std::os::unix::fs::symlink(&p.victim, target.join(folder)).unwrap();
        }
        for entry in &entries {
            publish(target, entry, store).unwrap();
        }
        assert_eq!(
            listing(&p.victim),
            p.before,
            "the folder a link named was touched"
        );
        for (folder, file) in [
            ("images", "images/a/f"),
            ("policy", "policy/mesh.yaml"),
            ("helm", "helm/ns/Chart.yaml"),
        ] {
            let meta = fs::symlink_metadata(target.join(folder)).unwrap();
            assert!(meta.is_dir(), "{folder}: a real folder now");
            assert_eq!(fs::read(target.join(file)).unwrap(), b"output");
        }
        // A link one level down is replaced too.
        fs::remove_dir_all(target.join("helm/ns")).unwrap();
        std::os::unix::fs::symlink(&p.victim, target.join("helm/ns")).unwrap();
        publish(target, &entries[2], store).unwrap();
        assert!(!fs::symlink_metadata(target.join("helm/ns"))
            .unwrap()
            .is_symlink());
        assert_eq!(listing(&p.victim), p.before);
    }

    #[test]
    fn pruning_removes_a_link_never_what_it_points_to() {
        let p = planted();
        let (target, store) = (&p.target, &p.store);
        let kept = Published::Dir {
            dir: "images/b".into(),
            files: BTreeMap::from([("f".to_string(), p.blob.clone())]),
        };
        publish(target, &kept, store).unwrap();
        // Links where a build publishes (`images`) and where it does not
        // (`sbom`), and one inside a published folder.
        fs::rename(target.join("images"), p.dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&p.victim, target.join("images")).unwrap();
        std::os::unix::fs::symlink(&p.victim, target.join("sbom")).unwrap();
        fs::create_dir_all(target.join("provenance")).unwrap();
        let kept_file = Published::File {
            path: "provenance/p.json".into(),
            digest: store.ingest_bytes(b"p").unwrap(),
        };
        std::os::unix::fs::symlink(&p.victim, target.join("provenance/x")).unwrap();
        prune(target, [&kept, &kept_file].into_iter(), store.paths()).unwrap();
        assert_eq!(listing(&p.victim), p.before, "pruning went through a link");
        for link in ["images", "sbom", "provenance/x"] {
            assert!(
                fs::symlink_metadata(target.join(link)).is_err(),
                "{link}: the link is gone"
            );
        }
    }
}
