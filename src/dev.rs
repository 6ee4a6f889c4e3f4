//! The dev loop's watcher: file events under the workspace root, debounced,
//! with `target/`, hidden folders and editor temp files filtered out; and what
//! a change must touch to start a cycle ([`Relevance`]): a path the last load
//! depended on or a step's declared input — not, say, the file the loop's own
//! output is redirected to. The loop itself (rebuild, re-apply, restart) lives
//! in the CLI, which owns the build; the folders a native service's rootfs
//! is unpacked into are [`rootfs`]'s.

pub mod rootfs;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::watch::{Watch, Watched};

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: PathBuf,
    /// It appeared, went or was renamed (not only written to).
    pub entry: bool,
}

/// What the loop is told.
#[derive(Debug)]
pub enum DevEvent {
    /// Files changed; `at` is when the first of them changed.
    Changed { changes: Vec<Change>, at: Instant },
    /// Ctrl-C, or the signal that ends the loop (`SIGINT`, `SIGTERM`,
    /// `SIGHUP`: its number).
    Stop { signal: i32 },
}

/// The paths a workspace's cycle depends on: those its load read (by how
/// much: a file's content or kind, a folder's entries) and those its steps
/// declare as inputs (a file, or everything under a folder).
#[derive(Debug, Default)]
pub struct Relevance {
    /// Files (and kinds of paths) whose any change counts.
    exact: HashSet<PathBuf>,
    /// Folders whose entries count: a manifest-like name (or a folder)
    /// appearing or going there.
    listings: HashSet<PathBuf>,
    /// Folders under which every change counts (copied folders, local bases).
    trees: Vec<PathBuf>,
}

impl Relevance {
    /// From what the load read and the steps' inputs (`(path, is a folder)`).
    pub fn new(watched: &Watched, inputs: &[(PathBuf, bool)]) -> Relevance {
        let mut r = Relevance::default();
        for (path, watch) in watched {
            match watch {
                Watch::Content | Watch::Kind => {
                    r.exact.insert(place(path));
                }
                Watch::Listing => {
                    r.listings.insert(place(path));
                }
                Watch::Output => {}
            }
        }
        for (path, tree) in inputs {
            if *tree {
                r.trees.push(place(path));
            } else {
                r.exact.insert(place(path));
            }
        }
        r
    }

    /// Whether `change` can change what a cycle does.
    pub fn matters(&self, change: &Change) -> bool {
        let path = place(&change.path);
        if self.exact.contains(&path) || self.trees.iter().any(|t| path.starts_with(t)) {
            return true;
        }
        change.entry
            && path.parent().is_some_and(|p| self.listings.contains(p))
            && could_be_found(&path)
    }
}

/// Whether a path appearing in a folder discovery lists could change what
/// it finds: a manifest, an ignore file, `scone.toml`, or a folder.
fn could_be_found(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".yml")
        || name.ends_with(".yaml")
        || matches!(name.as_str(), ".gitignore" | ".ignore" | "scone.toml")
        || path.is_dir()
        || (!path.exists() && !name.contains('.'))
}

/// `path` with its folder resolved (not its last part: a symlink is a path
/// of its own), so the watcher's paths and the load's compare.
pub fn place(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// The files this process's stdout and stderr go to, if they are files: a
/// change to them is the loop's own output (`scone dev > dev.log`).
#[derive(Debug, Default)]
pub struct OwnOutput {
    files: Vec<(u64, u64)>,
}

impl OwnOutput {
    /// stdout's and stderr's files (device and inode).
    pub fn of_this_process() -> OwnOutput {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let mut files = Vec::new();
        let fds = [
            std::io::stdout().as_fd().try_clone_to_owned(),
            std::io::stderr().as_fd().try_clone_to_owned(),
        ];
        for fd in fds.into_iter().flatten() {
            if let Ok(meta) = std::fs::File::from(fd).metadata() {
                if meta.is_file() {
                    files.push((meta.dev(), meta.ino()));
                }
            }
        }
        OwnOutput { files }
    }

    /// Whether `path` is one of them.
    pub fn is_ours(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).is_ok_and(|m| self.files.contains(&(m.dev(), m.ino())))
    }
}

/// Whether a path is an editor's temp or backup file (vim, emacs, JetBrains, …).
pub fn is_editor_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return true;
    };
    name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
}

/// Whether a changed path can matter to a build under `root`.
pub fn is_relevant(path: &Path, root: &Path, target: &Path) -> bool {
    if path.starts_with(target) || is_editor_temp(path) {
        return false;
    }
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    // scone writes scone.lock itself after every build.
    if rel == Path::new("scone.lock") {
        return false;
    }
    !rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// How many changed paths a cycle's line names before `and N more`.
const NAMED: usize = 5;

/// The changed paths as a cycle's line says them: each once, relative to
/// `root` (`app/main.py, data/f.txt`), sorted, the first [`NAMED`] then
/// `and N more`.
pub fn describe(changes: &[Change], root: &Path) -> String {
    let mut paths: Vec<String> = changes
        .iter()
        .map(|c| {
            let rel = c.path.strip_prefix(root).unwrap_or(&c.path);
            if rel.as_os_str().is_empty() {
                ".".to_string()
            } else {
                rel.display().to_string()
            }
        })
        .collect();
    paths.sort();
    paths.dedup();
    let more = paths.len().saturating_sub(NAMED);
    paths.truncate(NAMED);
    let named = paths.join(", ");
    if more > 0 {
        format!("{named} and {more} more")
    } else {
        named
    }
}

/// Watches `root` recursively; sends debounced, filtered changes to `tx`.
/// Keep the returned value alive for as long as you watch.
pub fn watch(
    root: &Path,
    target: &Path,
    debounce: Duration,
    tx: Sender<DevEvent>,
) -> notify::Result<impl Drop> {
    let (root_c, target_c) = (root.to_path_buf(), target.to_path_buf());
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let at = events
            .iter()
            .map(|e| e.time)
            .min()
            .unwrap_or_else(Instant::now);
        let mut changes: Vec<Change> = events
            .iter()
            .filter(|e| !e.kind.is_access())
            .flat_map(|e| {
                let entry = matches!(
                    e.kind,
                    notify::EventKind::Create(_)
                        | notify::EventKind::Remove(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                );
                e.paths.iter().map(move |p| Change {
                    path: p.clone(),
                    entry,
                })
            })
            .filter(|c| is_relevant(&c.path, &root_c, &target_c))
            .collect();
        // One change per path: an entry change wins.
        changes.sort_by(|a, b| a.path.cmp(&b.path).then(b.entry.cmp(&a.entry)));
        changes.dedup_by(|a, b| a.path == b.path);
        if !changes.is_empty() {
            let _ = tx.send(DevEvent::Changed { changes, at });
        }
    })?;
    debouncer.watch(root, RecursiveMode::Recursive)?;
    Ok(debouncer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_target_hidden_and_editor_files() {
        let root = Path::new("/w");
        let target = Path::new("/w/target");
        assert!(is_relevant(Path::new("/w/app/main.py"), root, target));
        assert!(!is_relevant(Path::new("/w/target/images/x"), root, target));
        assert!(!is_relevant(Path::new("/w/.git/index"), root, target));
        assert!(!is_relevant(Path::new("/w/app/.main.py.swp"), root, target));
        assert!(!is_relevant(Path::new("/w/app/main.py~"), root, target));
        assert!(!is_relevant(Path::new("/w/app/4913"), root, target));
        assert!(!is_relevant(Path::new("/elsewhere/x"), root, target));
        assert!(!is_relevant(Path::new("/w/scone.lock"), root, target));
    }

    #[test]
    fn reports_a_change_once_debounced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let _w = watch(&root, &root.join("target"), Duration::from_millis(50), tx).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("target/ignored"), b"x").unwrap();
        std::fs::write(root.join("a.txt"), b"x").unwrap();
        let event = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        match event {
            DevEvent::Changed { changes, .. } => {
                let paths: Vec<&PathBuf> = changes.iter().map(|c| &c.path).collect();
                assert_eq!(paths, vec![&root.join("a.txt")]);
                assert!(changes[0].entry, "a.txt appeared");
            }
            DevEvent::Stop { .. } => panic!("unexpected stop"),
        }
    }

    #[test]
    fn a_cycle_names_each_path_once_relative_to_the_root() {
        let root = Path::new("/w");
        let change = |p: &str| Change {
            path: root.join(p),
            entry: false,
        };
        let mut changes = Vec::new();
        for _ in 0..9 {
            changes.push(change("s1/data/f.txt"));
            changes.push(change("s0/data/f.txt"));
        }
        assert_eq!(describe(&changes, root), "s0/data/f.txt, s1/data/f.txt");
        // A rename: both names, once.
        let renamed = [change("a/old.py"), change("a/new.py"), change("a/old.py")];
        assert_eq!(describe(&renamed, root), "a/new.py, a/old.py");
        let many: Vec<Change> = (0..17).map(|i| change(&format!("f{i:02}"))).collect();
        assert_eq!(describe(&many, root), "f00, f01, f02, f03, f04 and 12 more");
        assert_eq!(describe(&[change("")], root), ".");
        assert_eq!(
            describe(
                &[Change {
                    path: "/elsewhere/x".into(),
                    entry: true
                }],
                root
            ),
            "/elsewhere/x"
        );
    }

    #[test]
    fn only_what_the_load_read_and_the_steps_declare_matters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("app/lib")).unwrap();
        for f in ["mesh.yml", "notes.txt", "app/service.yml", "app/main.py"] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let watched = vec![
            (root.clone(), Watch::Listing),
            (root.join("mesh.yml"), Watch::Content),
            (root.join("app/service.yml"), Watch::Content),
            (root.join("target/images"), Watch::Output),
        ];
        let inputs = vec![
            (root.join("app/main.py"), false),
            (root.join("app/lib"), true),
        ];
        let r = Relevance::new(&watched, &inputs);
        let change = |p: &str, entry| Change {
            path: root.join(p),
            entry,
        };
        assert!(r.matters(&change("mesh.yml", false)));
        assert!(r.matters(&change("app/main.py", false)));
        assert!(r.matters(&change("app/lib/new.txt", true)));
        assert!(
            r.matters(&change("other.yml", true)),
            "a manifest may appear"
        );
        assert!(!r.matters(&change("notes.txt", false)), "no step reads it");
        assert!(!r.matters(&change("dev.log", true)), "nor a log appearing");
        assert!(!r.matters(&change("app/README", false)));
        assert!(!r.matters(&change("target/images/x", false)));
    }
}
