//! The dev loop's watcher: file events under the workspace root, debounced,
//! with `target/`, hidden folders and editor temp files filtered out. The loop
//! itself (rebuild, re-apply, restart) lives in the CLI, which owns the build.

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// What the loop is told.
#[derive(Debug)]
pub enum DevEvent {
    /// Files changed; `at` is when the first of them changed.
    Changed { paths: Vec<PathBuf>, at: Instant },
    /// Ctrl-C.
    Stop,
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
        let mut paths: Vec<PathBuf> = events
            .iter()
            .filter(|e| !e.kind.is_access())
            .flat_map(|e| e.paths.iter().cloned())
            .filter(|p| is_relevant(p, &root_c, &target_c))
            .collect();
        paths.sort();
        paths.dedup();
        if !paths.is_empty() {
            let _ = tx.send(DevEvent::Changed { paths, at });
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
            DevEvent::Changed { paths, .. } => assert_eq!(paths, vec![root.join("a.txt")]),
            DevEvent::Stop => panic!("unexpected stop"),
        }
    }
}
