//! Canonical paths for one load, with the canonical form of every folder
//! remembered: what [`std::fs::canonicalize`] gives, but a manifest in an
//! already resolved folder costs one `lstat` instead of one `readlink` per
//! component of its path (11,000 `readlink`s for a 1,000-service repo before).
//!
//! Only absolute paths of plain names are resolved this way, component by
//! component from the (memoized) canonical parent: a component that is a symlink,
//! and any path with `.`/`..` or that is relative, goes to `canonicalize`
//! itself, so the answer is always the same. Every answer is remembered (a
//! manifest's path is resolved for its key, the boundary and the target dir
//! check alike); the memo lives as long as one load.

use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Resolver {
    /// Path as given → its canonical path.
    known: Mutex<HashMap<PathBuf, PathBuf>>,
}

impl Resolver {
    /// `std::fs::canonicalize(path)`.
    pub fn canonical(&self, path: &Path) -> io::Result<PathBuf> {
        let plain = path.is_absolute()
            && !path.as_os_str().as_encoded_bytes().ends_with(b"/")
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let (Some(parent), Some(name), true) = (path.parent(), path.file_name(), plain) else {
            return path.canonicalize();
        };
        if let Some(known) = lock(&self.known).get(path) {
            return Ok(known.clone());
        }
        let candidate = self.folder(parent)?.join(name);
        let resolved = if std::fs::symlink_metadata(&candidate)?
            .file_type()
            .is_symlink()
        {
            candidate.canonicalize()?
        } else {
            candidate
        };
        lock(&self.known).insert(path.to_path_buf(), resolved.clone());
        Ok(resolved)
    }

    /// The canonical path of the folder `dir`, remembered.
    pub fn folder(&self, dir: &Path) -> io::Result<PathBuf> {
        if let Some(known) = lock(&self.known).get(dir) {
            return Ok(known.clone());
        }
        let resolved = if dir.parent().is_none() {
            dir.canonicalize()?
        } else {
            self.canonical(dir)?
        };
        lock(&self.known).insert(dir.to_path_buf(), resolved.clone());
        Ok(resolved)
    }

    /// [`crate::workspace::boundary::resolve`]`(path)`: links followed as far
    /// as the path exists, never failing.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.canonical(path)
            .unwrap_or_else(|_| crate::workspace::boundary::resolve(path))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Every way of naming a path gives what `canonicalize` gives, the error
    /// included, with a warm and a cold memo.
    #[test]
    fn agrees_with_canonicalize() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("elsewhere/deep")).unwrap();
        fs::write(root.join("a/b/f.yml"), "x").unwrap();
        fs::write(root.join("elsewhere/deep/g.yml"), "y").unwrap();
        std::os::unix::fs::symlink("../elsewhere/deep", root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("b/f.yml", root.join("a/file-link")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("a/dangling")).unwrap();
        let paths = [
            "a/b/f.yml",
            "a/b",
            "a/link/g.yml",
            "a/link",
            "a/file-link",
            "a/dangling",
            "a/missing.yml",
            "a/b/f.yml/below",
            "a/./b/f.yml",
            "a/link/../deep/g.yml",
            "a/b/",
        ];
        let resolver = Resolver::default();
        for round in 0..2 {
            for p in paths {
                let full = root.join(p);
                let want = full.canonicalize().ok();
                assert_eq!(resolver.canonical(&full).ok(), want, "{p} (round {round})");
                assert_eq!(Resolver::default().canonical(&full).ok(), want, "{p}");
            }
        }
        for p in paths
            .iter()
            .chain(&["a/missing/deeper", "a/dangling/x", "a/link/../nope"])
        {
            let full = root.join(p);
            let want = crate::workspace::boundary::resolve(&full);
            assert_eq!(resolver.resolve(&full), want, "{p}");
            assert_eq!(resolver.resolve(&full), want, "{p} (remembered)");
        }
        let rel = Path::new("relative/x.yml");
        assert_eq!(resolver.canonical(rel).ok(), rel.canonicalize().ok());
        assert_eq!(resolver.folder(Path::new("/")).unwrap(), Path::new("/"));
        assert_eq!(
            resolver.folder(&root.join("a/link")).unwrap(),
            root.join("elsewhere/deep").canonicalize().unwrap()
        );
    }

    /// The memo is what makes it cheap: a folder resolved once is not looked at
    /// again within the load (a new resolver sees the change).
    #[test]
    fn folders_are_remembered_for_one_load() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("svc")).unwrap();
        let resolver = Resolver::default();
        assert_eq!(
            resolver.folder(&root.join("svc")).unwrap(),
            root.join("svc")
        );
        fs::remove_dir(root.join("svc")).unwrap();
        assert_eq!(
            resolver.folder(&root.join("svc")).unwrap(),
            root.join("svc")
        );
        assert!(Resolver::default().folder(&root.join("svc")).is_err());
    }
}
