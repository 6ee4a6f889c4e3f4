//! Finding manifests: the nearest `scone.toml`, the default Meshfile names, the
//! `members` globs, and the service manifests under a root (every `*.yml` /
//! `*.yaml` whose `kind` is a service kind, skipping `target/`, hidden folders
//! and what the `.gitignore` and `.ignore` files under the root ignore — not
//! those above it, nor the user's global ones: what a workspace builds depends
//! on the workspace alone).
//!
//! Every walk reports what it read (each folder it listed, each ignore file
//! it honoured, each candidate it opened) into a [`Watched`] list, so that a
//! later build knows when discovery could find something else.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Pos;
use super::model::SERVICE_KINDS;
use crate::watch::{Watch, Watched};
use ignore::overrides::{Override, OverrideBuilder};
use std::path::{Path, PathBuf};

/// The workspace configuration file name.
pub const CONFIG_FILE: &str = "scone.toml";

/// The Meshfile names looked for in the current folder, in this order.
pub const DEFAULT_MESHFILES: &[&str] = &["mesh.yml", "Meshfile", "Meshfile.yaml"];

/// The files or folders that mark a repository's root.
pub const VCS_MARKERS: &[&str] = &[".git", ".hg", ".jj"];

/// The nearest folder at or above `start` that holds a [`VCS_MARKERS`] entry.
pub fn repository_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| {
            VCS_MARKERS
                .iter()
                .any(|m| std::fs::symlink_metadata(d.join(m)).is_ok())
        })
        .map(Path::to_path_buf)
}

/// The folders `scone.toml` is looked for in, nearest first: `start` and the
/// folders above it up to the repository root, never above it; outside a
/// repository, `start` only (a `scone.toml` in a shared folder above is
/// someone else's).
pub fn config_folders(start: &Path) -> impl Iterator<Item = &Path> {
    let stop = repository_root(start).unwrap_or_else(|| start.to_path_buf());
    start.ancestors().take_while(move |d| d.starts_with(&stop))
}

/// The first default Meshfile that exists in `dir`.
pub fn default_meshfile(dir: &Path) -> Option<PathBuf> {
    DEFAULT_MESHFILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The YAML files directly in `dir` that are manifests by their `kind`,
/// sorted: `(file name, kind)`. For telling a user who has a Meshfile by
/// another name (`mesh.yaml`) or only a service manifest which one to give.
pub fn manifests_in(dir: &Path) -> Vec<(String, String)> {
    use super::model::{MESH_KIND, SERVICE_KINDS};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
                return None;
            }
            let text =
                crate::regular_file::read_text(&e.path(), crate::regular_file::MAX_MANIFEST_BYTES)
                    .ok()?;
            let kind = sniff_kind(&text)?;
            (kind == MESH_KIND || SERVICE_KINDS.contains(&kind.as_str())).then_some((name, kind))
        })
        .collect();
    found.sort();
    found
}

/// The nearest default Meshfile in a folder above `start`, up to the
/// repository root (outside a repository, up to the file system's root), as
/// a relative path from `start` (`../mesh.yml`): what a user who ran scone
/// one folder too deep meant. Only told, never loaded.
pub fn meshfile_above(start: &Path) -> Option<PathBuf> {
    let stop = repository_root(start);
    let mut up = PathBuf::new();
    let mut dir = start;
    loop {
        if stop.as_deref() == Some(dir) {
            return None;
        }
        dir = dir.parent()?;
        up.push("..");
        if let Some(found) = default_meshfile(dir) {
            return found.file_name().map(|name| up.join(name));
        }
    }
}

/// Outside a repository, the nearest `scone.toml` in a folder above `start`,
/// as a relative path (`../../scone.toml`): one scone did not read (outside
/// a repository only `start`'s own is read, [`config_folders`]), which a user
/// who ran scone in a subfolder of that workspace likely meant. Only told,
/// never loaded. Inside a repository every one up to its root is read: none.
pub fn config_above(start: &Path) -> Option<PathBuf> {
    if repository_root(start).is_some() {
        return None;
    }
    let mut up = PathBuf::new();
    for dir in start.ancestors().skip(1) {
        up.push("..");
        if dir.join(CONFIG_FILE).is_file() {
            return Some(up.join(CONFIG_FILE));
        }
    }
    None
}

/// Watches `file` and each link on the way to the file it leads to (in any
/// part of its path: `crate::link_chain`, as a step's keys are read), and
/// that file: an ignore file is read through its links, so an edit of the
/// file behind one, or a link re-pointed, changes what the walk ignores.
fn watch_through_links(file: PathBuf, watched: &mut Watched) {
    match crate::link_chain::follow(&file) {
        Ok(chain) => {
            watched.extend(chain.links.into_iter().map(|link| (link, Watch::Content)));
            watched.push((chain.file, Watch::Content));
        }
        // A loop or a link that cannot be read: the walk read nothing
        // through it; the path itself is what changes that.
        Err(_) => watched.push((file, Watch::Content)),
    }
}

/// The ignore files a walk honours in each folder it lists.
const IGNORE_FILES: &[&str] = &[".gitignore", ".ignore"];

/// Files under `root` (ignore-aware, no hidden folders, no `target/`),
/// sorted; every folder listed and ignore file read goes to `watched`.
pub fn walk(root: &Path, watched: &mut Watched) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .parents(false)
        .git_global(false)
        .git_exclude(false)
        .filter_entry(|e| {
            !(e.depth() > 0
                && e.file_name() == "target"
                && e.file_type().is_some_and(|t| t.is_dir()))
        })
        .build();
    for entry in walker.filter_map(Result::ok) {
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let dir = entry.path();
            watched.push((dir.to_path_buf(), Watch::Listing));
            for name in IGNORE_FILES {
                let file = dir.join(name);
                if file.is_file() {
                    watch_through_links(file, watched);
                }
            }
        } else if kind.is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    files
}

/// The files under `root` matched by the `members` globs of `scone.toml`
/// (`config` is that file, and `at` where it writes a glob, for
/// diagnostics), sorted. A glob that is invalid or matches nothing is a
/// [`ErrorKind::Config`] diagnostic; one that leaves `root` (absolute, or
/// with a `..` part) an [`ErrorKind::PathEscape`] one: a member is a file of
/// the workspace.
pub fn members(
    root: &Path,
    globs: &[String],
    config: &Path,
    at: &dyn Fn(&str) -> Pos,
    watched: &mut Watched,
) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut matchers: Vec<(&str, Override)> = Vec::new();
    let diag = |glob: &str, what: &str| member_diag(config, at(glob), glob, what);
    for glob in globs {
        let wrong = if glob.starts_with('/') || super::validate_paths::escapes(Path::new(glob)) {
            "leaves the workspace"
        } else if glob.split('/').any(|part| part == "..") {
            "has a `..` part"
        } else {
            ""
        };
        if !wrong.is_empty() {
            diags.push(
                Diagnostic::new(
                    ErrorKind::PathEscape,
                    config,
                    at(glob),
                    format!("member `{glob}` {wrong}: a member is a file under the folder of scone.toml"),
                )
                .with_hint("move the Meshfile under this folder, or build it on its own with `scone build -f <file>`"),
            );
            continue;
        }
        // `./x` is `x` at the root, as a shell would read it: anchored (a
        // glob without a `/` would match at any depth), not "no file".
        let pattern = match glob.strip_prefix("./") {
            Some(rest) => format!("/{}", rest.trim_start_matches("./")),
            None => glob.clone(),
        };
        let built = OverrideBuilder::new(root)
            .add(&pattern)
            .and_then(|b| b.build());
        match built {
            Ok(ov) => matchers.push((glob, ov)),
            Err(e) => diags.push(diag(glob, &format!("is not a valid glob: {e}"))),
        }
    }
    let files = walk(root, watched);
    let mut found = Vec::new();
    for (glob, ov) in &matchers {
        // A file an earlier glob took is still matched by this one (a glob
        // without a `/` matches at any depth: `mesh*.yml` takes
        // `apps/mesh.yml` too): a member once, and no "matches no file".
        let mut matched = false;
        for f in &files {
            if ov.matched(f, false).is_whitelist() {
                matched = true;
                if !found.contains(f) {
                    found.push(f.clone());
                }
            }
        }
        if !matched {
            diags.push(diag(glob, "matches no file"));
        }
    }
    if diags.is_empty() {
        Ok(found)
    } else {
        Err(diags)
    }
}

fn member_diag(config: &Path, pos: Pos, glob: &str, what: &str) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::Config,
        config,
        pos,
        format!("member `{glob}` {what}"),
    )
    .with_hint(
        "`members` globs are relative to the folder of scone.toml, e.g. `services/*/mesh.yml`",
    )
}

/// Every `*.yml` / `*.yaml` under `root` (ignore-aware) that looks like a
/// service manifest, with its text, sorted by path. Every one it opened goes
/// to `watched`.
pub fn service_candidates(root: &Path, watched: &mut Watched) -> Vec<(PathBuf, String)> {
    let yaml: Vec<PathBuf> = walk(root, watched)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    watched.extend(yaml.iter().map(|p| (p.clone(), Watch::Content)));
    yaml.into_iter()
        .filter_map(|p| {
            let text =
                crate::regular_file::read_text(&p, crate::regular_file::MAX_MANIFEST_BYTES).ok()?;
            let kind = sniff_kind(&text)?;
            SERVICE_KINDS.contains(&kind.as_str()).then_some((p, text))
        })
        .collect()
}

/// The top-level `kind:` of a manifest by a line scan (works on templates that
/// are not YAML before rendering).
pub fn sniff_kind(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("kind:")?;
        let value = rest.split('#').next().unwrap_or("").trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_in_a_folder_are_told_by_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("mesh.yaml"), "apiVersion: x\nkind: mesh\n").unwrap();
        std::fs::write(dir.join("svc.yml"), "kind: genImage\n").unwrap();
        std::fs::write(dir.join("values.yaml"), "replicas: 2\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "kind: mesh\n").unwrap();
        assert_eq!(
            manifests_in(dir),
            [
                ("mesh.yaml".to_string(), "mesh".to_string()),
                ("svc.yml".to_string(), "genImage".to_string())
            ]
        );
    }

    #[test]
    fn a_config_above_is_told_outside_a_repository_only() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let deep = ws.join("services/a");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(ws.join(CONFIG_FILE), "members = [\"mesh.yml\"]\n").unwrap();
        assert_eq!(config_above(&deep), Some(PathBuf::from("../../scone.toml")));
        assert_eq!(config_above(&ws), None, "its own is read, not told");
        // In a repository, every scone.toml up to its root is read.
        std::fs::create_dir(ws.join(".git")).unwrap();
        assert_eq!(config_above(&deep), None);
    }

    #[test]
    fn a_meshfile_above_is_found_up_to_the_repository_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let deep = repo.join("services/a");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(meshfile_above(&deep), None, "nothing above yet");
        // Above the repository: someone else's, never told.
        std::fs::create_dir(repo.join(".git")).unwrap();
        std::fs::write(tmp.path().join("mesh.yml"), "kind: mesh\n").unwrap();
        assert_eq!(meshfile_above(&deep), None);
        assert_eq!(meshfile_above(&repo), None, "the root has nothing above");
        std::fs::write(repo.join("Meshfile"), "kind: mesh\n").unwrap();
        assert_eq!(meshfile_above(&deep), Some(PathBuf::from("../../Meshfile")));
        std::fs::write(repo.join("services/mesh.yml"), "kind: mesh\n").unwrap();
        assert_eq!(meshfile_above(&deep), Some(PathBuf::from("../mesh.yml")));
        // Outside a repository: any folder above.
        std::fs::remove_dir(repo.join(".git")).unwrap();
        std::fs::remove_file(repo.join("services/mesh.yml")).unwrap();
        std::fs::remove_file(repo.join("Meshfile")).unwrap();
        assert_eq!(
            meshfile_above(&deep),
            Some(PathBuf::from("../../../mesh.yml"))
        );
    }

    #[test]
    fn sniffs_kind() {
        assert_eq!(
            sniff_kind("a: 1\nkind: genImage # x\n").as_deref(),
            Some("genImage")
        );
        assert_eq!(sniff_kind("kind: \"mesh\"\n").as_deref(), Some("mesh"));
        assert_eq!(sniff_kind("  kind: nested\n"), None);
    }

    #[test]
    fn an_ignore_file_behind_links_is_watched_with_each_link() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::write(root.join("shared/ignore"), "ignored/\n").unwrap();
        // A link to a file through a linked folder: the folder's link is
        // on the way too.
        std::os::unix::fs::symlink("shared", root.join("conf")).unwrap();
        std::os::unix::fs::symlink("conf/ignore", root.join("middle")).unwrap();
        std::os::unix::fs::symlink("middle", root.join(".gitignore")).unwrap();
        let mut watched = Vec::new();
        walk(root, &mut watched);
        for path in [".gitignore", "middle", "conf", "shared/ignore"] {
            assert!(
                watched.contains(&(root.join(path), Watch::Content)),
                "{path}: {watched:?}"
            );
        }
    }

    #[test]
    fn candidates_skip_target_hidden_and_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let svc = "apiVersion: scone/5.8\nkind: genImage\n";
        for dir in ["a", "target/x", ".hidden", "ignored", "b"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("service.yml"), svc).unwrap();
        }
        std::fs::write(root.join("b/mesh.yaml"), "kind: mesh\n").unwrap();
        std::fs::write(root.join("b/other.yaml"), "kind: genservice\n").unwrap();
        std::fs::write(root.join(".gitignore"), "ignored/\n").unwrap();
        let mut watched = Vec::new();
        let got: Vec<PathBuf> = service_candidates(root, &mut watched)
            .into_iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let want: Vec<PathBuf> = ["a/service.yml", "b/other.yaml", "b/service.yml"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
        for (path, watch) in [
            ("", Watch::Listing),
            ("a", Watch::Listing),
            (".gitignore", Watch::Content),
            ("b/mesh.yaml", Watch::Content),
        ] {
            assert!(
                watched.contains(&(root.join(path), watch)),
                "{path} {watch:?} in {watched:?}"
            );
        }
        assert!(!watched
            .iter()
            .any(|(p, _)| p.starts_with(root.join("ignored"))));
    }

    #[test]
    fn member_globs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["m1", "m2", "target/m3"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("mesh.yml"), "kind: mesh\n").unwrap();
        }
        let cfg = root.join(CONFIG_FILE);
        let nowhere = |_: &str| Pos::default();
        let members_of = |globs: &[&str]| {
            let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
            members(root, &globs, &cfg, &nowhere, &mut Vec::new())
        };
        let got = members_of(&["*/mesh.yml"]).unwrap();
        assert_eq!(
            got,
            vec![root.join("m1/mesh.yml"), root.join("m2/mesh.yml")]
        );
        // `./` as a shell would write it: from the root, at the root only.
        std::fs::write(root.join("mesh.yml"), "kind: mesh\n").unwrap();
        let got = members_of(&["./mesh.yml", "././m1/mesh.yml"]).unwrap();
        assert_eq!(got, vec![root.join("mesh.yml"), root.join("m1/mesh.yml")]);
        // A file an earlier glob took (one without a `/` matches at any
        // depth) is no error of a later glob naming it: a member once.
        let got = members_of(&["mesh*.yml", "m1/mesh.yml"]).unwrap();
        assert_eq!(
            got,
            vec![
                root.join("m1/mesh.yml"),
                root.join("m2/mesh.yml"),
                root.join("mesh.yml")
            ]
        );
        let err = members_of(&["nope/*.yml"]).unwrap_err();
        assert_eq!(err[0].kind, ErrorKind::Config);
        assert!(err[0].message.contains("matches no file"));
        // Outside the workspace: refused as such, even where files match.
        std::fs::create_dir_all(root.join("m1/ws")).unwrap();
        for glob in ["../m2/*.yml", "/etc/*.conf", "a/../../m2/mesh.yml"] {
            let err = members(
                &root.join("m1/ws"),
                &[glob.to_string()],
                &cfg,
                &nowhere,
                &mut Vec::new(),
            )
            .unwrap_err();
            assert_eq!(err[0].kind, ErrorKind::PathEscape, "{glob}");
            assert!(
                err[0].message.contains("leaves the workspace"),
                "{glob}: {}",
                err[0].message
            );
        }
        let err = members_of(&["m1/../m2/*.yml"]).unwrap_err();
        assert!(
            err[0].message.contains("has a `..` part"),
            "{}",
            err[0].message
        );
        let folders = |d: &Path| config_folders(d).map(Path::to_path_buf).collect::<Vec<_>>();
        // Outside a repository, only the folder itself is looked at.
        assert_eq!(folders(&root.join("m1")), [root.join("m1")]);
        // In one, every folder up to its root.
        std::fs::create_dir(root.join(".git")).unwrap();
        assert_eq!(
            folders(&root.join("m1")),
            [root.join("m1"), root.to_path_buf()]
        );
        assert_eq!(repository_root(&root.join("m1")).as_deref(), Some(root));
        // Never above the repository's root.
        std::fs::create_dir(root.join("m1/.jj")).unwrap();
        assert_eq!(folders(&root.join("m1")), [root.join("m1")]);
    }
}
