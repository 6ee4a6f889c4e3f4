//! The folders the paths a manifest names may resolve into: the repository (the
//! nearest folder at or above the workspace root with `.git`, `.hg` or `.jj`;
//! outside a repository, the workspace root) and the folders `scone.toml` lists
//! under `[paths] allow`. See `docs/security.md`.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// See the module documentation.
#[derive(Debug)]
pub struct Boundary {
    /// The repository root, resolved.
    repository: PathBuf,
    /// The `[paths] allow` folders, resolved.
    allow: Vec<PathBuf>,
    /// Answers given, by path (services mostly share their base).
    memo: Mutex<HashMap<PathBuf, bool>>,
}

impl Boundary {
    /// The boundary of the workspace at `root`, with `allow` relative to it.
    pub fn new(root: &Path, allow: &[PathBuf]) -> Boundary {
        let root = resolve(root);
        let repository = crate::manifest::discover::repository_root(&root).unwrap_or(root.clone());
        Boundary {
            allow: allow.iter().map(|a| resolve(&root.join(a))).collect(),
            repository,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// The repository root (resolved).
    pub fn repository(&self) -> &Path {
        &self.repository
    }

    /// Whether the absolute `path`, links followed, lies inside the repository or
    /// an allowed folder.
    pub fn permits(&self, path: &Path) -> bool {
        self.permits_with(path, resolve)
    }

    /// [`Boundary::permits`], with `resolve` giving what [`resolve`] gives (a
    /// loader remembers the folders it resolved).
    pub fn permits_with(&self, path: &Path, resolve: impl FnOnce(&Path) -> PathBuf) -> bool {
        if let Some(&known) = memo(&self.memo).get(path) {
            return known;
        }
        let resolved = resolve(path);
        let ok = resolved.starts_with(&self.repository)
            || self.allow.iter().any(|a| resolved.starts_with(a));
        memo(&self.memo).insert(path.to_path_buf(), ok);
        ok
    }

    /// [`Boundary::permits`] for `rel` relative to the folder whose resolved path
    /// is `resolved_dir`: its leading `..` are taken lexically first (right on a
    /// resolved path), so services that name one base by different routes share
    /// one answer.
    pub fn permits_in(&self, resolved_dir: &Path, rel: &str) -> bool {
        self.permits_in_with(resolved_dir, rel, resolve)
    }

    /// [`Boundary::permits_in`], with `resolve` as in [`Boundary::permits_with`].
    pub fn permits_in_with(
        &self,
        resolved_dir: &Path,
        rel: &str,
        resolve: impl FnOnce(&Path) -> PathBuf,
    ) -> bool {
        let mut path = resolved_dir.to_path_buf();
        let mut rest = Path::new(rel).components().peekable();
        while let Some(c) = rest.peek() {
            match c {
                Component::ParentDir => {
                    path.pop();
                }
                Component::CurDir => {}
                _ => break,
            }
            rest.next();
        }
        for c in rest {
            path.push(c);
        }
        self.permits_with(&path, resolve)
    }
}

fn memo(m: &Mutex<HashMap<PathBuf, bool>>) -> std::sync::MutexGuard<'_, HashMap<PathBuf, bool>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How one resolved path lies against another: the same folder, inside it,
/// or holding it. Used wherever two folders scone writes or reads must stay
/// apart (the target dir against what a build reads, the local CAS against
/// the target dir).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// The two are one folder.
    Same,
    /// The first lies inside the second.
    Inside,
    /// The first holds the second.
    Holds,
}

impl Overlap {
    /// How `a` lies against `b`, both resolved ([`resolve`]); `None` when
    /// they are apart.
    pub fn of(a: &Path, b: &Path) -> Option<Overlap> {
        if a == b {
            Some(Overlap::Same)
        } else if a.starts_with(b) {
            Some(Overlap::Inside)
        } else if b.starts_with(a) {
            Some(Overlap::Holds)
        } else {
            None
        }
    }
}

/// `path` with every link followed, as far as it exists; a part that does not
/// exist is taken lexically (`..` drops the name before it). Never fails.
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let mut out = PathBuf::new();
    let mut exists = true;
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            Component::Normal(name) if exists => {
                let next = out.join(name);
                match next.canonicalize() {
                    Ok(p) => out = p,
                    Err(_) => {
                        exists = false;
                        out = next;
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_into_the_repository_or_an_allowed_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().canonicalize().unwrap();
        let repo = top.join("repo");
        std::fs::create_dir_all(repo.join("ws/svc")).unwrap();
        std::fs::create_dir_all(top.join("host/.ssh")).unwrap();
        std::fs::create_dir_all(top.join("bases/py")).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        std::os::unix::fs::symlink(top.join("host"), repo.join("link")).unwrap();
        let b = Boundary::new(&repo.join("ws"), &[PathBuf::from("../../bases")]);
        assert_eq!(b.repository(), repo);
        assert!(b.permits(&repo.join("ws/svc/../../base")));
        assert!(b.permits(&repo.join("not/yet/made")));
        assert!(!b.permits(&top.join("host/.ssh")));
        assert!(!b.permits(&repo.join("ws/../../host")));
        assert!(!b.permits(&repo.join("link/.ssh")));
        assert!(!b.permits(&repo.join("missing/../../host")));
        assert!(!b.permits(&repo.join("link/../missing")));
        assert!(b.permits_in(&repo.join("ws/svc"), "../../base"));
        assert!(!b.permits_in(&repo.join("ws/svc"), "../../../host"));
        assert!(!b.permits_in(&repo.join("ws/svc"), "../../link"));
        assert!(b.permits_in(&repo.join("ws/svc"), "./x/../y"));
        assert!(b.permits(&top.join("bases/py")));
        // Outside a repository, the workspace root is the boundary.
        std::fs::remove_dir(repo.join(".git")).unwrap();
        let b = Boundary::new(&repo.join("ws"), &[]);
        assert!(b.permits(&repo.join("ws/svc")));
        assert!(!b.permits(&repo.join("elsewhere")));
    }
}
