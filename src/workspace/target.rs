//! Which folders scone may build into and clean: its target dir is scone's, so it
//! must be one scone made (new, empty, or tagged), and never the workspace root, a
//! folder above it, or one holding the workspace's manifests. See
//! `docs/security.md` and `docs/cache.md`.

use std::path::{Path, PathBuf};

use super::boundary::{resolve, Overlap};

/// The tag that marks a target dir as scone's, relative to it: a
/// [CACHEDIR.TAG](https://bford.info/cachedir/) (so backup tools skip the cache).
pub const TAG_FILE: &str = ".scone/CACHEDIR.TAG";

/// The tag's text.
pub const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by scone: this folder is a scone\n\
# target dir, which `scone clean` may remove. See docs/cache.md.\n";

/// Whether `dir` is marked as scone's: its `.scone/` folder (a real folder,
/// not a link), which only scone makes, when it first locks the folder for a
/// build or a clean, and then tags. An older scone's target has the folder
/// without the tag.
pub fn is_tagged(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(".scone")).is_ok_and(|m| m.is_dir())
}

/// Why a target dir is refused, and what the user can do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the folder is, after "the target dir <path>".
    pub why: String,
    /// What to do instead.
    pub hint: &'static str,
}

/// The hint of most refusals.
const HINT: &str = "scone builds into and `scone clean` removes its target dir: give a new or \
     empty folder, or one scone made, outside the sources (`target-dir` in scone.toml or \
     --target-dir)";

/// The hint of a target dir reached through a link that leads out of the
/// workspace.
const LINK_HINT: &str = "a repository can commit a link in place of its target dir: remove \
     the link, or give the folder explicitly with `--target-dir DIR` or `target-dir` in \
     scone.toml";

impl Refusal {
    /// A refusal with the usual hint.
    pub fn new(why: impl Into<String>) -> Refusal {
        Refusal {
            why: why.into(),
            hint: HINT,
        }
    }
}

/// Why scone may not use `target` as the target dir of the workspace at
/// `root` whose manifests (and `scone.toml`) are `files`; `None` if it may.
/// `given`: the user gave it (`--target-dir`, `SCONE_TARGET_DIR`, `target-dir`
/// of scone.toml), so it may be reached through a link that leads anywhere.
pub fn refusal(target: &Path, root: &Path, files: &[PathBuf], given: bool) -> Option<Refusal> {
    refusal_with(target, root, files, given, resolve)
}

/// [`refusal`], with `resolve` giving what [`resolve`] gives (a loader
/// remembers the folders it resolved: the manifests' are known by then).
pub fn refusal_with(
    target: &Path,
    root: &Path,
    files: &[PathBuf],
    given: bool,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Option<Refusal> {
    if !given {
        if let Some(refused) = link_out(target, root, &resolve) {
            return Some(refused);
        }
    }
    reason(target, root, files, resolve).map(Refusal::new)
}

/// A link on the way from `root` to `target` (the default `<root>/target`)
/// that leads out of the workspace root: another project's target dir, which
/// a build would write into and prune and `scone clean` would empty.
fn link_out(target: &Path, root: &Path, resolve: &impl Fn(&Path) -> PathBuf) -> Option<Refusal> {
    let inside = resolve(root);
    let below_root = target
        .ancestors()
        .take_while(|p| p.starts_with(root) && *p != root);
    for link in below_root {
        let is_link = std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        let (Ok(to), Some(parent)) = (std::fs::read_link(link), link.parent()) else {
            continue;
        };
        let leads = resolve(&parent.join(to));
        if !leads.starts_with(&inside) {
            let named = if link == target {
                String::new()
            } else {
                format!(" (through {})", link.display())
            };
            return Some(Refusal {
                why: format!(
                    "is reached through a link{named} that leads to {}, outside the workspace root {}",
                    leads.display(),
                    inside.display()
                ),
                hint: LINK_HINT,
            });
        }
    }
    None
}

fn reason(
    target: &Path,
    root: &Path,
    files: &[PathBuf],
    resolve: impl Fn(&Path) -> PathBuf,
) -> Option<String> {
    let t = resolve(target);
    match Overlap::of(&t, &resolve(root)) {
        Some(Overlap::Same) => return Some("is the workspace root".into()),
        Some(Overlap::Holds) => return Some("is a folder above the workspace root".into()),
        Some(Overlap::Inside) | None => {}
    }
    if let Some(f) = files.iter().find(|f| resolve(f).starts_with(&t)) {
        return Some(format!("holds {}, a file of the workspace", f.display()));
    }
    match std::fs::symlink_metadata(&t) {
        Err(_) => None,
        Ok(m) if !m.is_dir() => Some("exists and is not a folder".into()),
        // Listed before the tag is looked for: another scone making this
        // folder makes its `.scone/` first, so a folder seen not empty is
        // seen tagged if that is what it holds.
        Ok(_) => match std::fs::read_dir(&t).map(|mut e| e.next().is_none()) {
            Ok(true) => None,
            Ok(false) if is_tagged(&t) => None,
            Ok(false) => Some(
                "is a folder scone did not make (it is not empty and has no `.scone/` tag)".into(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot be read: {e}")),
        },
    }
}

/// The diagnostic of a refused target dir, at `file`:`pos` (`target-dir` in
/// scone.toml, or `--target-dir`).
pub fn diagnostic(
    target: &Path,
    refused: &Refusal,
    file: PathBuf,
    pos: crate::manifest::Pos,
) -> crate::manifest::Diagnostic {
    crate::manifest::Diagnostic::new(
        crate::manifest::ErrorKind::TargetDir,
        file,
        pos,
        format!("the target dir {} {}", target.display(), refused.why),
    )
    .with_hint(refused.hint)
}

/// Writes the tag into `target` if it is missing: when the build directory is
/// first locked ([`crate::engine::lock::TargetLock`]), so a target dir is tagged
/// from its first build on.
pub fn tag(target: &Path) -> std::io::Result<()> {
    let tag = target.join(TAG_FILE);
    if std::fs::symlink_metadata(&tag).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(target.join(".scone"))?;
    crate::durable::write(&tag, TAG.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_empty_or_tagged_folders_outside_the_sources_are_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        std::fs::create_dir_all(root.join("svc")).unwrap();
        let manifest = root.join("svc/service.yml");
        std::fs::write(&manifest, "x").unwrap();
        let files = [manifest];
        let refused = |t: &Path| refusal(t, &root, &files, false).map(|r| r.why);
        assert_eq!(refused(&root.join("target")), None, "new");
        assert_eq!(refused(&root), Some("is the workspace root".into()));
        assert_eq!(
            refused(&root.join("svc/..")),
            Some("is the workspace root".into())
        );
        assert!(refused(tmp.path()).unwrap().contains("above"));
        assert!(refused(&root.join("svc")).unwrap().contains("service.yml"));
        let victim = tmp.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        assert_eq!(refused(&victim), None, "empty");
        std::fs::write(victim.join("precious"), "x").unwrap();
        assert!(refused(&victim).unwrap().contains("did not make"));
        tag(&root.join("target")).unwrap();
        assert!(is_tagged(&root.join("target")));
        std::fs::write(root.join("target/images"), "x").unwrap();
        assert_eq!(refused(&root.join("target")), None, "tagged");
        // A target of an older scone: its `.scone/` folder, not a link to one.
        let old = tmp.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("images"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("target/.scone"), old.join(".scone")).unwrap();
        assert!(refused(&old).is_some());
        std::fs::remove_file(old.join(".scone")).unwrap();
        std::fs::create_dir(old.join(".scone")).unwrap();
        assert_eq!(refused(&old), None);
        tag(&old).unwrap();
        assert!(old.join(TAG_FILE).is_file());
    }

    /// Another scone making the folder (`target/`, then `target/.scone/`)
    /// while this one looks: it is new, empty or tagged at every moment,
    /// never "a folder scone did not make".
    #[test]
    fn a_folder_another_scone_is_making_is_never_refused() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        let target = |i: usize| root.join(format!("target-{i}"));
        const MADE: usize = 1_000;
        let making = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..MADE {
                    making.store(i, Ordering::SeqCst);
                    std::fs::create_dir_all(target(i).join(".scone")).unwrap();
                }
                making.store(MADE, Ordering::SeqCst);
            });
            loop {
                let i = making.load(Ordering::SeqCst);
                if i == MADE {
                    break;
                }
                if let Some(r) = refusal(&target(i), &root, &[], false) {
                    panic!(
                        "{} refused while being made: {}",
                        target(i).display(),
                        r.why
                    );
                }
            }
        });
    }
}
