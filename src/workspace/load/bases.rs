//! Every service has a base image, and a local one is there: `build.from`,
//! its kind's `[base]` in scone.toml, or the kind's default; a `dir:`/`oci:`
//! base a manifest names must exist (a build would fail on it).

use super::{Loader, Unit};
use crate::manifest::{validate, Diagnostic, ErrorKind};
use crate::workspace::Config;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

impl Loader {
    /// Every service has a base image: `build.from`, its kind's `[base]` in
    /// scone.toml, or the kind's default (the plan would refuse it at build).
    pub(super) fn bases(&mut self, config: &Config) {
        // A `[base]` key no build.kind is named is never looked up: a typo
        // there would leave its kind on the default base without a word.
        for kind in config.base.keys().filter(|k| !validate::is_build_kind(k)) {
            let (file, pos) = self.config_pos(Some("base"), kind);
            let kinds = validate::BUILD_KINDS.join("`, `");
            let hint = match crate::manifest::suggest::did_you_mean(
                kind,
                validate::BUILD_KINDS.iter().copied(),
            ) {
                Some(meant) => {
                    format!("did you mean `{meant}`? (the kinds: `{kinds}`, `java17`, …)")
                }
                None => format!("a `[base]` key is a build.kind: `{kinds}`, `java17`, …"),
            };
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::Config,
                    &file,
                    pos,
                    format!("`[base] {kind}`: no build.kind is named `{kind}`"),
                )
                .with_hint(hint),
            );
        }
        let mut there = There {
            resolver: &self.resolver,
            known: HashMap::new(),
        };
        for u in &self.units {
            let b = &u.manifest.build;
            self.diags.extend(missing_local_base(u, &mut there));
            let kind = &b.kind.value;
            let known = b.from.is_some()
                || config.base.contains_key(kind)
                || crate::plan::default_base(kind, Path::new("")).is_some();
            if !known && validate::is_build_kind(kind) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BuildKind,
                        &u.manifest.path,
                        b.kind.pos,
                        format!("no base image for build.kind `{kind}`"),
                    )
                    .with_hint(format!(
                        "set `build.from`, or `[base] {kind} = \"…\"` in scone.toml (scone has defaults for python and binary only)"
                    )),
                );
            }
        }
    }
}

/// The error for a `build.from` naming a local base (`dir:`, `oci:`) that is
/// not there: the build would fail on it.
fn missing_local_base(u: &Unit, there: &mut There<'_>) -> Option<Diagnostic> {
    use crate::oci::base::BaseSpec;
    let b = &u.manifest.build;
    let from = b.from.as_ref()?;
    let (path, there, what) = match BaseSpec::parse(&from.value).ok()? {
        BaseSpec::Dir(p) => {
            let path = u.dir.join(&p);
            let there = there.is_dir(&u.dir, &p, "");
            (path, there, "a root file system folder")
        }
        BaseSpec::Oci { dir, .. } => {
            let path = u.dir.join(&dir);
            let there = there.is_file(&u.dir, &dir, "index.json");
            (path, there, "an OCI image layout folder")
        }
        _ => return None,
    };
    if there {
        return None;
    }
    let make = if b.kind.value == "python" {
        format!(
            "make it there (a python3 root file system: `scripts/python-rootfs.sh {}`)",
            path.display()
        )
    } else {
        "make it there".to_string()
    };
    Some(
        Diagnostic::new(
            ErrorKind::MissingFile,
            &u.manifest.path,
            from.pos,
            format!(
                "build.from `{}`: {} does not exist (it should be {what})",
                from.value,
                path.display()
            ),
        )
        .with_hint(format!(
            "a local base is relative to the service manifest's folder: {make}, or leave out \
             `build.from` to use the default base of build.kind `{}`",
            b.kind.value
        )),
    )
}

/// Whether the local bases manifests name are there, each looked at once:
/// services mostly share their base, each naming it from its own folder
/// (`dir:../../base`).
struct There<'a> {
    resolver: &'a super::resolve::Resolver,
    /// (the path as resolved, a file rather than a folder) → there.
    known: HashMap<(PathBuf, bool), bool>,
}

impl There<'_> {
    /// `dir.join(rel).join(name).is_dir()`.
    fn is_dir(&mut self, dir: &Path, rel: &Path, name: &str) -> bool {
        self.look(dir, rel, name, false)
    }

    /// `dir.join(rel).join(name).is_file()`.
    fn is_file(&mut self, dir: &Path, rel: &Path, name: &str) -> bool {
        self.look(dir, rel, name, true)
    }

    fn look(&mut self, dir: &Path, rel: &Path, name: &str, file: bool) -> bool {
        let look = |p: &Path| if file { p.is_file() } else { p.is_dir() };
        let join = |p: PathBuf| if name.is_empty() { p } else { p.join(name) };
        let Some(key) = self.key(dir, rel) else {
            return look(&join(dir.join(rel)));
        };
        let key = (join(key), file);
        if let Some(&known) = self.known.get(&key) {
            return known;
        }
        let there = look(&key.0);
        self.known.insert(key, there);
        there
    }

    /// The path the system reaches for `dir/rel`: the leading `..` of `rel`
    /// taken on the resolved `dir` (which has no link on it, so its parent is
    /// what `..` reaches), then its names. `None` (not remembered) when `rel`
    /// has a `..` after a name, or `dir` does not resolve.
    fn key(&self, dir: &Path, rel: &Path) -> Option<PathBuf> {
        let mut parts = rel.components().peekable();
        let mut at = if rel.is_absolute() {
            PathBuf::new()
        } else {
            self.resolver.folder(dir).ok()?
        };
        while let Some(c) = parts.peek() {
            match c {
                Component::ParentDir => {
                    at.pop();
                }
                Component::CurDir => {}
                _ => break,
            }
            parts.next();
        }
        for c in parts {
            match c {
                Component::Normal(_) | Component::RootDir => at.push(c),
                _ => return None,
            }
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembered or not, every spelling gives what `is_dir`/`is_file` give,
    /// a service folder reached through a link included (`..` is physical).
    #[test]
    fn there_agrees_with_the_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ws/services/a")).unwrap();
        std::fs::create_dir_all(root.join("ws/base")).unwrap();
        std::fs::create_dir_all(root.join("far/deep/b")).unwrap();
        std::fs::create_dir_all(root.join("far/base")).unwrap();
        std::fs::create_dir_all(root.join("ws/oci")).unwrap();
        std::fs::write(root.join("ws/oci/index.json"), "{}").unwrap();
        std::os::unix::fs::symlink(root.join("far/deep/b"), root.join("ws/services/b")).unwrap();
        std::os::unix::fs::symlink("base", root.join("ws/base-link")).unwrap();
        let resolver = super::super::resolve::Resolver::default();
        let mut there = There {
            resolver: &resolver,
            known: HashMap::new(),
        };
        let dirs = ["ws/services/a", "ws/services/b", "ws/services/missing"];
        let rels = [
            "../../base",
            "../../base-link",
            "../../nothing",
            "./../../base",
            "../x/../../base",
            "",
            "../../../far/base",
        ];
        for round in 0..2 {
            for d in dirs {
                let dir = root.join(d);
                for r in rels {
                    let rel = Path::new(r);
                    let want = dir.join(rel).is_dir();
                    assert_eq!(there.is_dir(&dir, rel, ""), want, "{d} {r} ({round})");
                }
                let abs = root.join("ws/base");
                assert!(there.is_dir(&dir, &abs, ""));
                let oci = Path::new("../../oci");
                let want = dir.join(oci).join("index.json").is_file();
                assert_eq!(there.is_file(&dir, oci, "index.json"), want, "{d} oci");
            }
        }
        // Through the link, `../../base` is far/base, not ws/base.
        std::fs::remove_dir(root.join("far/base")).unwrap();
        let fresh = super::super::resolve::Resolver::default();
        let mut there = There {
            resolver: &fresh,
            known: HashMap::new(),
        };
        let b = root.join("ws/services/b");
        assert!(!there.is_dir(&b, Path::new("../../base"), ""));
        assert!(there.is_dir(&root.join("ws/services/a"), Path::new("../../base"), ""));
    }
}
