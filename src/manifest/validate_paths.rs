//! Checks of the paths a service manifest names: each `copy` entry must be
//! relative, stay inside the manifest's folder (no `..` escape, no symlink that
//! resolves outside, also inside copied folders), exist, and be no FIFO, device
//! or socket (nor hold one, in a copied folder); the signing key must be a regular
//! file. Whether `build.from` and the key stay in the repository is checked where
//! the repository is known ([`crate::workspace`]).

use super::diag::{Diagnostic, ErrorKind};
use super::located::{Located, Pos};
use std::path::{Component, Path};

/// Checks every `copy` entry against the manifest folder `dir`.
pub fn check_copy(copy: &[Located<String>], dir: &Path, file: &Path, out: &mut Vec<Diagnostic>) {
    check_copy_in(copy, dir, dir.canonicalize().ok().as_deref(), file, out);
}

/// [`check_copy`] with `dir` already resolved: `canonical_dir` must be what
/// `dir.canonicalize().ok()` gives (a loader resolving many folders remembers them).
pub fn check_copy_in(
    copy: &[Located<String>],
    dir: &Path,
    canonical_dir: Option<&Path>,
    file: &Path,
    out: &mut Vec<Diagnostic>,
) {
    for entry in copy {
        if let Some(d) = check_one(&entry.value, entry.pos, dir, canonical_dir, file) {
            out.push(d);
        }
    }
}

/// A warning for each `copy` entry another already brings into the image:
/// the same path again, or a path inside a folder copied whole. The image is
/// the same either way (one entry per file); the list says less than it seems.
pub fn repeated_copies(copy: &[Located<String>], file: &Path) -> Vec<Diagnostic> {
    // As written: a path with a `.` or empty part is refused above.
    let paths: Vec<&str> = copy.iter().map(|e| e.value.trim()).collect();
    let mut told = Vec::new();
    for (i, (entry, path)) in copy.iter().zip(&paths).enumerate() {
        let by = copy
            .iter()
            .zip(&paths)
            .enumerate()
            .find_map(|(j, (other, o))| {
                let inside = path
                    .strip_prefix(o)
                    .is_some_and(|rest| rest.starts_with('/'));
                if j < i && o == path {
                    Some(format!("is listed already (line {})", other.pos.line))
                } else if inside && !o.is_empty() {
                    Some(format!(
                        "is inside `{o}`, which is copied whole (line {})",
                        other.pos.line
                    ))
                } else {
                    None
                }
            });
        if let Some(why) = by.filter(|_| !path.is_empty()) {
            told.push(
                Diagnostic::warning(
                    ErrorKind::InvalidValue,
                    file,
                    entry.pos,
                    format!("copy path `{path}` {why}"),
                )
                .with_hint("remove this entry: the file is in the image once either way"),
            );
        }
    }
    told
}

fn check_one(
    raw: &str,
    pos: Pos,
    dir: &Path,
    canonical_dir: Option<&Path>,
    file: &Path,
) -> Option<Diagnostic> {
    let diag =
        |kind, msg: String, hint: &str| Some(Diagnostic::new(kind, file, pos, msg).with_hint(hint));
    if raw.trim().is_empty() {
        return diag(
            ErrorKind::InvalidValue,
            "empty copy path".into(),
            "a file or folder relative to the manifest",
        );
    }
    let path = Path::new(raw);
    if path.has_root() {
        return diag(
            ErrorKind::AbsolutePath,
            format!("copy path `{raw}` is absolute"),
            "copy paths are relative to the manifest's folder",
        );
    }
    if escapes(path) {
        return diag(
            ErrorKind::PathEscape,
            format!("copy path `{raw}` leaves the service folder"),
            "copy only files under the manifest's folder; move the file there",
        );
    }
    let full = dir.join(path);
    let Ok(meta) = std::fs::symlink_metadata(&full) else {
        return diag(
            ErrorKind::MissingFile,
            format!("copy path `{raw}` does not exist"),
            "copy paths are relative to the manifest's folder",
        );
    };
    let canonical_dir = canonical_dir?;
    // A single plain name (no `/`, so no trailing-slash lookup through a link)
    // that is no symlink resolves to itself inside the (canonical) folder: no
    // need to resolve it component by component.
    let mut parts = path.components();
    let plain = !raw.contains('/')
        && matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        )
        && !meta.file_type().is_symlink();
    let (resolved, is_dir) = if plain {
        (canonical_dir.join(path), meta.is_dir())
    } else {
        match full.canonicalize() {
            Ok(r) => {
                let is_dir = r.is_dir();
                (r, is_dir)
            }
            Err(_) => {
                return diag(
                    ErrorKind::MissingFile,
                    format!("copy path `{raw}` is a dangling symlink"),
                    "the link's target does not exist",
                )
            }
        }
    };
    if !resolved.starts_with(canonical_dir) {
        return diag(
            ErrorKind::PathEscape,
            format!("copy path `{raw}` is a symlink that resolves outside the service folder"),
            "copy only files under the manifest's folder; replace the link by the file",
        );
    }
    if !is_dir {
        let kind = if plain {
            Some(meta.file_type())
        } else {
            std::fs::metadata(&resolved).ok().map(|m| m.file_type())
        };
        if let Some(what) = kind.as_ref().and_then(crate::regular_file::special_kind) {
            return diag(
                ErrorKind::SpecialFile,
                format!("copy path `{raw}` is {what}"),
                SPECIAL_HINT,
            );
        }
    }
    if is_dir {
        match problem_inside(&resolved, canonical_dir) {
            Some((link, None)) => {
                return diag(
                    ErrorKind::PathEscape,
                    format!("copy folder `{raw}` holds a symlink that resolves outside the service folder: {link}"),
                    "replace the link by the file, or remove it",
                )
            }
            Some((path, Some(what))) => {
                return diag(
                    ErrorKind::SpecialFile,
                    format!("copy folder `{raw}` holds {what}: {path}"),
                    SPECIAL_HINT,
                )
            }
            None => {}
        }
    }
    None
}

const SPECIAL_HINT: &str =
    "copy takes files, folders and symlinks; FIFOs, devices and sockets are never opened";

/// `true` if the lexical path climbs above its start with `..`.
pub(super) fn escapes(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// The first entry under `folder` (links not followed) that is a symlink whose
/// target resolves outside `root` (`(path, None)`) or a FIFO, device or socket
/// (`(path, Some(what))`), as a path relative to `folder`: entries in file-name
/// order, each folder's content right after it (the order of a sorted walk).
/// Folders that cannot be read are skipped.
fn problem_inside(folder: &Path, root: &Path) -> Option<(String, Option<&'static str>)> {
    problem_under(folder, Path::new(""), root).map(|(p, what)| (p.display().to_string(), what))
}

fn problem_under(
    dir: &Path,
    rel: &Path,
    root: &Path,
) -> Option<(std::path::PathBuf, Option<&'static str>)> {
    // Only links, folders and special files matter: plain files are neither
    // checked nor sorted. The types come from the listing (no `stat`).
    let mut interesting: Vec<(std::ffi::OsString, std::fs::FileType)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            (!t.is_file()).then(|| (e.file_name(), t))
        })
        .collect();
    interesting.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in interesting {
        let path = dir.join(&name);
        if t.is_symlink() {
            if path.canonicalize().is_ok_and(|t| !t.starts_with(root)) {
                return Some((rel.join(&name), None));
            }
        } else if t.is_dir() {
            if let Some(found) = problem_under(&path, &rel.join(&name), root) {
                return Some(found);
            }
        } else if let Some(what) = crate::regular_file::special_kind(&t) {
            return Some((rel.join(&name), Some(what)));
        }
    }
    None
}

/// Checks `build.signature.key`: a regular file (relative to the manifest),
/// looked at without being opened.
pub fn check_key(key: &Located<String>, dir: &Path, file: &Path, out: &mut Vec<Diagnostic>) {
    let hint = "a PEM RSA-3072 key with e = 3, relative to the manifest (`scone enclave keygen` makes one)";
    let problem = if key.value.trim().is_empty() {
        Some((ErrorKind::MissingFile, "does not exist".to_string()))
    } else {
        match crate::regular_file::check(&dir.join(&key.value)) {
            Ok(_) => None,
            Err(crate::regular_file::ReadError::Special { what }) if what != "a folder" => {
                Some((ErrorKind::SpecialFile, format!("is {what}, not a file")))
            }
            Err(_) => Some((ErrorKind::MissingFile, "does not exist".to_string())),
        }
    };
    if let Some((kind, what)) = problem {
        out.push(
            Diagnostic::new(
                kind,
                file,
                key.pos,
                format!("signing key `{}` {what}", key.value),
            )
            .with_hint(hint),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(s: &str) -> Located<String> {
        Located::new(s.to_string(), Pos { line: 3, column: 7 })
    }

    #[test]
    fn a_copy_entry_another_already_brings_is_warned_of() {
        let at = |s: &str, line: u32| Located::new(s.to_string(), Pos { line, column: 7 });
        let copy = [
            at("app.py", 1),
            at("lib/a.py", 2),
            at("lib", 3),
            at("app.py", 4),
            at("library.py", 5),
        ];
        let told = repeated_copies(&copy, Path::new("service.yml"));
        let said: Vec<(u32, String)> = told
            .iter()
            .map(|d| (d.pos.line, d.message.clone()))
            .collect();
        assert_eq!(
            said,
            [
                (
                    2,
                    "copy path `lib/a.py` is inside `lib`, which is copied whole (line 3)"
                        .to_string()
                ),
                (
                    4,
                    "copy path `app.py` is listed already (line 1)".to_string()
                ),
            ],
            "`library.py` is not inside `lib`"
        );
        assert!(told
            .iter()
            .all(|d| d.level == crate::manifest::Level::Warning));
    }

    fn kinds(copy: &[&str], dir: &Path) -> Vec<ErrorKind> {
        let copy: Vec<_> = copy.iter().map(|s| located(s)).collect();
        let mut out = Vec::new();
        check_copy(&copy, dir, Path::new("s.yml"), &mut out);
        out.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn lexical_escape() {
        assert!(escapes(Path::new("../x")));
        assert!(escapes(Path::new("a/../../x")));
        assert!(!escapes(Path::new("a/../x")));
        assert!(!escapes(Path::new("./a/b")));
    }

    #[test]
    fn copy_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let svc = tmp.path().join("svc");
        std::fs::create_dir_all(svc.join("dir")).unwrap();
        std::fs::write(svc.join("ok.py"), "print(1)\n").unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink("../outside.txt", svc.join("link.txt")).unwrap();
        std::os::unix::fs::symlink("ok.py", svc.join("inner.py")).unwrap();
        std::os::unix::fs::symlink("../../outside.txt", svc.join("dir/escape")).unwrap();
        assert_eq!(kinds(&["ok.py", "inner.py", "./ok.py"], &svc), vec![]);
        assert_eq!(kinds(&["/etc/passwd"], &svc), vec![ErrorKind::AbsolutePath]);
        assert_eq!(
            kinds(&["../outside.txt"], &svc),
            vec![ErrorKind::PathEscape]
        );
        assert_eq!(kinds(&["link.txt"], &svc), vec![ErrorKind::PathEscape]);
        assert_eq!(kinds(&["dir"], &svc), vec![ErrorKind::PathEscape]);
        assert_eq!(kinds(&["nope.py"], &svc), vec![ErrorKind::MissingFile]);
        assert_eq!(kinds(&[""], &svc), vec![ErrorKind::InvalidValue]);
        // A link to a folder outside, named with a trailing slash (which looks
        // through the link) or inside a subfolder, still escapes.
        std::fs::create_dir_all(tmp.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink("../outdir", svc.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("../../outdir", svc.join("dir/deeper")).unwrap();
        for raw in [
            "linkdir",
            "linkdir/",
            "./linkdir",
            "dir/deeper",
            "dir/deeper/",
        ] {
            assert_eq!(kinds(&[raw], &svc), vec![ErrorKind::PathEscape], "{raw}");
        }
    }

    /// The link a copied folder is refused for is the first in a sorted walk:
    /// file-name order, each folder's content right after it; links that stay
    /// inside, and unreadable folders, do not count.
    #[test]
    fn the_first_escaping_link_of_a_folder_is_named() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let svc = tmp.path().join("svc");
        let lib = svc.join("lib");
        for d in ["a", "b/inner", "c", "locked"] {
            std::fs::create_dir_all(lib.join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("out.txt"), "x").unwrap();
        std::fs::write(lib.join("a/f.txt"), "x").unwrap();
        symlink("f.txt", lib.join("a/stays")).unwrap();
        symlink("../../../../out.txt", lib.join("b/inner/z-escape")).unwrap();
        symlink("../../out.txt", lib.join("c-escape")).unwrap();
        symlink("../../../out.txt", lib.join("c/escape")).unwrap();
        symlink("nowhere", lib.join("b/dangling")).unwrap();
        let canonical = svc.canonicalize().unwrap();
        assert_eq!(
            problem_inside(&lib.canonicalize().unwrap(), &canonical)
                .map(|p| p.0)
                .as_deref(),
            Some("b/inner/z-escape")
        );
        std::fs::remove_file(lib.join("b/inner/z-escape")).unwrap();
        // `c` sorts before `c-escape`, and its content comes right after it.
        assert_eq!(
            problem_inside(&lib, &canonical).map(|p| p.0).as_deref(),
            Some("c/escape")
        );
        std::fs::remove_file(lib.join("c/escape")).unwrap();
        assert_eq!(
            problem_inside(&lib, &canonical).map(|p| p.0).as_deref(),
            Some("c-escape")
        );
        std::fs::remove_file(lib.join("c-escape")).unwrap();
        assert_eq!(problem_inside(&lib, &canonical), None);
        let copy = [located("lib")];
        let mut out = Vec::new();
        check_copy(&copy, &svc, Path::new("s.yml"), &mut out);
        assert!(out.is_empty(), "{out:?}");
        symlink("../../../out.txt", lib.join("locked/escape")).unwrap();
        let mut out = Vec::new();
        check_copy(&copy, &svc, Path::new("s.yml"), &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .message
                .ends_with("outside the service folder: locked/escape"),
            "{}",
            out[0].message
        );
        std::fs::set_permissions(lib.join("locked"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        // root reads any folder: only check the skip where permissions hold.
        if std::fs::read_dir(lib.join("locked")).is_err() {
            assert_eq!(problem_inside(&lib, &canonical), None);
        }
        std::fs::set_permissions(lib.join("locked"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
}
