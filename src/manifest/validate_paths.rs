//! Checks of the paths a service manifest names: each `copy` entry must be
//! relative, stay inside the manifest's folder (no `..` escape, no symlink that
//! resolves outside, also inside copied folders), exist, and be no FIFO, device
//! or socket (nor hold one, in a copied folder); every name in a copied folder,
//! and every link target, must be UTF-8 (the image names them as text); the
//! signing key must be a regular file. A `copy` entry that is a symlink is
//! copied as the link (as one inside a copied folder is): no other entry may go
//! through it, and one whose target is not copied is warned of. Whether
//! `build.from` and the key stay in the repository is checked where the
//! repository is known ([`crate::workspace`]).

use super::diag::{Diagnostic, ErrorKind};
use super::located::{Located, Pos};
use std::path::{Component, Path, PathBuf};

/// Checks every `copy` entry against the manifest folder `dir`: errors go to
/// `out`, warnings to `warnings`.
pub fn check_copy(
    copy: &[Located<String>],
    dir: &Path,
    file: &Path,
    out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    check_copy_in(
        copy,
        dir,
        dir.canonicalize().ok().as_deref(),
        file,
        out,
        warnings,
    );
}

/// [`check_copy`] with `dir` already resolved: `canonical_dir` must be what
/// `dir.canonicalize().ok()` gives (a loader resolving many folders remembers them).
pub fn check_copy_in(
    copy: &[Located<String>],
    dir: &Path,
    canonical_dir: Option<&Path>,
    file: &Path,
    out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    let mut bad = vec![false; copy.len()];
    let mut links = Vec::new();
    for (i, entry) in copy.iter().enumerate() {
        match check_one(&entry.value, entry.pos, dir, canonical_dir, file) {
            Err(d) => {
                bad[i] = true;
                out.push(d);
            }
            Ok(Some(target)) => links.push((i, target)),
            Ok(None) => {}
        }
    }
    for (i, d) in through_copied_links(copy, &bad, dir, file) {
        bad[i] = true;
        out.push(d);
    }
    warnings.extend(
        repeated_copies(copy, file)
            .into_iter()
            .filter(|w| !copy.iter().zip(&bad).any(|(e, b)| *b && e.pos == w.pos)),
    );
    warnings.extend(uncopied_targets(copy, &links, file));
}

/// A `copy` entry as written, without the trailing `/` (which would look
/// through a symlink: the entry is the link either way).
fn entry_path(raw: &str) -> &str {
    let trimmed = raw.trim();
    match trimmed.trim_end_matches('/') {
        "" => trimmed,
        path => path,
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

/// The error of one `copy` entry; else, if it is a symlink, where it points.
fn check_one(
    raw: &str,
    pos: Pos,
    dir: &Path,
    canonical_dir: Option<&Path>,
    file: &Path,
) -> Result<Option<PathBuf>, Diagnostic> {
    let diag =
        |kind, msg: String, hint: &str| Err(Diagnostic::new(kind, file, pos, msg).with_hint(hint));
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
    // The entry itself, not what a trailing `/` would look through: a symlink
    // is copied as the link.
    let path = Path::new(entry_path(raw));
    let full = dir.join(path);
    let Ok(meta) = std::fs::symlink_metadata(&full) else {
        return diag(
            ErrorKind::MissingFile,
            format!("copy path `{raw}` does not exist"),
            "copy paths are relative to the manifest's folder",
        );
    };
    let Some(canonical_dir) = canonical_dir else {
        return Ok(None);
    };
    let link = meta.file_type().is_symlink();
    // A single plain name that is no symlink resolves to itself inside the
    // (canonical) folder: no need to resolve it component by component.
    let mut parts = path.components();
    let plain = !link
        && matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        );
    let resolved = if plain {
        canonical_dir.join(path)
    } else {
        match full.canonicalize() {
            Ok(r) => r,
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
    if link {
        let target = std::fs::read_link(&full).unwrap_or_default();
        if target.to_str().is_none() {
            return diag(
                ErrorKind::InvalidValue,
                format!(
                    "copy path `{raw}` is a symlink whose target is not UTF-8: {}",
                    escaped(&target)
                ),
                NOT_UTF8_HINT,
            );
        }
        return Ok(Some(target));
    }
    // Not a link: `meta` is the entry's own type (a link on the way to it
    // was followed).
    if let Some(what) = crate::regular_file::special_kind(&meta.file_type()) {
        return diag(
            ErrorKind::SpecialFile,
            format!("copy path `{raw}` is {what}"),
            SPECIAL_HINT,
        );
    }
    if meta.is_dir() {
        match problem_inside(&resolved, canonical_dir) {
            Some((link, Problem::Escape)) => {
                return diag(
                    ErrorKind::PathEscape,
                    format!("copy folder `{raw}` holds a symlink that resolves outside the service folder: {link}"),
                    "replace the link by the file, or remove it",
                )
            }
            Some((path, Problem::Special(what))) => {
                return diag(
                    ErrorKind::SpecialFile,
                    format!("copy folder `{raw}` holds {what}: {path}"),
                    SPECIAL_HINT,
                )
            }
            Some((path, Problem::NotUtf8)) => {
                return diag(
                    ErrorKind::InvalidValue,
                    format!("copy folder `{raw}` holds a name that is not UTF-8: {path}"),
                    NOT_UTF8_HINT,
                )
            }
            Some((path, Problem::TargetNotUtf8(target))) => {
                return diag(
                    ErrorKind::InvalidValue,
                    format!(
                        "copy folder `{raw}` holds a symlink whose target is not UTF-8: {path} -> {target}"
                    ),
                    NOT_UTF8_HINT,
                )
            }
            None => {}
        }
    }
    Ok(None)
}

const SPECIAL_HINT: &str =
    "copy takes files, folders and symlinks; FIFOs, devices and sockets are never opened";

const NOT_UTF8_HINT: &str = "rename it (or move it out of the copied folder): a path in the image is UTF-8 text, and scone never renames a file";

/// A path for a message: its UTF-8 as it is (but a backslash, `\\`, and a
/// control character, `\u{..}`), every byte that is not UTF-8 as `\xNN`.
pub fn escaped(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The entries that go through a symlink another entry copies as a symlink
/// (`copy: [data, data/y]` with `data` a link, or a link inside a copied
/// folder): the image would hold a file under a link, which no layer can.
/// `bad`: entries refused already, left alone. Only an entry inside another
/// is looked at (one `lstat` per folder on its way from the other).
fn through_copied_links(
    copy: &[Located<String>],
    bad: &[bool],
    dir: &Path,
    file: &Path,
) -> Vec<(usize, Diagnostic)> {
    let paths: Vec<&Path> = copy
        .iter()
        .map(|e| Path::new(entry_path(&e.value)))
        .collect();
    let mut told = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if bad[i] {
            continue;
        }
        // The shortest entry it is inside of: every folder from there on.
        let Some((j, by)) = paths
            .iter()
            .enumerate()
            .filter(|(j, o)| {
                *j != i
                    && !bad[*j]
                    && !o.as_os_str().is_empty()
                    && path.starts_with(o)
                    && path != *o
            })
            .min_by_key(|(_, o)| o.components().count())
        else {
            continue;
        };
        let mut at = PathBuf::new();
        let found = path
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .find_map(|c| {
                at.push(c);
                let link = at.starts_with(by)
                    && std::fs::symlink_metadata(dir.join(&at))
                        .is_ok_and(|m| m.file_type().is_symlink());
                link.then(|| at.clone())
            });
        if let Some(link) = found {
            let by_line = copy[j].pos.line;
            let how = if link.as_path() == *by {
                format!("a symlink copied as a symlink (line {by_line})")
            } else {
                format!(
                    "a symlink that `{}` copies as a symlink (line {by_line})",
                    by.display()
                )
            };
            told.push((
                i,
                Diagnostic::new(
                    ErrorKind::InvalidValue,
                    file,
                    copy[i].pos,
                    format!(
                        "copy path `{}` goes through `{}`, {how}: the image cannot hold a file under a link",
                        copy[i].value,
                        link.display()
                    ),
                )
                .with_hint("name the file by the path the link leads to: a symlink is copied as the link, never followed"),
            ));
        }
    }
    told
}

/// A warning for each `copy` entry that is a symlink (`links`: its place in
/// `copy` and its target) whose target no entry copies: the image holds the
/// link, and it leads nowhere. Lexical: the target is taken from the link's
/// folder, and covered by an entry it is in, or that is in it.
fn uncopied_targets(
    copy: &[Located<String>],
    links: &[(usize, PathBuf)],
    file: &Path,
) -> Vec<Diagnostic> {
    let paths: Vec<&Path> = copy
        .iter()
        .map(|e| Path::new(entry_path(&e.value)))
        .collect();
    let mut told = Vec::new();
    for (i, target) in links {
        let from = paths[*i].parent().unwrap_or(Path::new(""));
        let reached = if target.is_absolute() {
            None
        } else {
            lexical(&from.join(target))
        };
        let covered = reached.as_deref().is_some_and(|t| {
            paths
                .iter()
                .enumerate()
                .any(|(j, o)| j != *i && (t.starts_with(o) || o.starts_with(t)))
        });
        if covered {
            continue;
        }
        let hint = match reached {
            Some(t) => format!(
                "copy `{}` too: a `copy` entry that is a symlink is copied as the link, not what it points to",
                t.display()
            ),
            None => "make it a relative link to a path that is copied too: the image holds the copied files under `build.pwd`, not this machine's folders".to_string(),
        };
        told.push(
            Diagnostic::warning(
                ErrorKind::InvalidValue,
                file,
                copy[*i].pos,
                format!(
                    "copy path `{}` is a symlink to `{}`, which is not copied: in the image the link leads nowhere",
                    copy[*i].value,
                    target.display()
                ),
            )
            .with_hint(hint),
        );
    }
    told
}

/// `path` with `.` and `..` taken lexically; `None` if it climbs above its
/// start.
fn lexical(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

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

/// What is wrong with an entry of a copied folder.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    /// A symlink whose target resolves outside the service folder.
    Escape,
    /// A FIFO, device or socket.
    Special(&'static str),
    /// A name that is not UTF-8.
    NotUtf8,
    /// A symlink whose target is not UTF-8 (escaped).
    TargetNotUtf8(String),
}

/// The first entry under `folder` (links not followed) that is a symlink whose
/// target resolves outside `root` or is not UTF-8, a FIFO, device or socket,
/// or whose name is not UTF-8, as a path relative to `folder` (escaped, see
/// [`escaped`]): entries in file-name order, each folder's content right after
/// it (the order of a sorted walk). Folders that cannot be read are skipped.
fn problem_inside(folder: &Path, root: &Path) -> Option<(String, Problem)> {
    problem_under(folder, Path::new(""), root).map(|(p, what)| (escaped(&p), what))
}

fn problem_under(dir: &Path, rel: &Path, root: &Path) -> Option<(PathBuf, Problem)> {
    // Only links, folders, special files and names that are not UTF-8
    // matter: other plain files are neither checked nor sorted. The types
    // come from the listing (no `stat`).
    let mut interesting: Vec<(std::ffi::OsString, std::fs::FileType)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            let name = e.file_name();
            (!t.is_file() || name.to_str().is_none()).then_some((name, t))
        })
        .collect();
    interesting.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in interesting {
        let path = dir.join(&name);
        if name.to_str().is_none() {
            return Some((rel.join(&name), Problem::NotUtf8));
        }
        if t.is_symlink() {
            if path.canonicalize().is_ok_and(|t| !t.starts_with(root)) {
                return Some((rel.join(&name), Problem::Escape));
            }
            if let Ok(target) = std::fs::read_link(&path) {
                if target.to_str().is_none() {
                    return Some((rel.join(&name), Problem::TargetNotUtf8(escaped(&target))));
                }
            }
        } else if t.is_dir() {
            if let Some(found) = problem_under(&path, &rel.join(&name), root) {
                return Some(found);
            }
        } else if let Some(what) = crate::regular_file::special_kind(&t) {
            return Some((rel.join(&name), Problem::Special(what)));
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
        check_copy(&copy, dir, Path::new("s.yml"), &mut out, &mut Vec::new());
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
        check_copy(&copy, &svc, Path::new("s.yml"), &mut out, &mut Vec::new());
        assert!(out.is_empty(), "{out:?}");
        symlink("../../../out.txt", lib.join("locked/escape")).unwrap();
        let mut out = Vec::new();
        check_copy(&copy, &svc, Path::new("s.yml"), &mut out, &mut Vec::new());
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

    /// Diagnostics as `(line, message)`.
    type Lines = Vec<(u32, String)>;

    /// Errors and warnings of `copy` in `svc`.
    fn told(copy: &[&str], svc: &Path) -> (Lines, Lines) {
        let copy: Vec<_> = copy
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Located::new(
                    s.to_string(),
                    Pos {
                        line: i as u32 + 1,
                        column: 7,
                    },
                )
            })
            .collect();
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        check_copy(&copy, svc, Path::new("s.yml"), &mut out, &mut warnings);
        let lines = |d: Vec<Diagnostic>| d.into_iter().map(|d| (d.pos.line, d.message)).collect();
        (lines(out), lines(warnings))
    }

    /// A `copy` entry that is a symlink is the link: what it points to is
    /// not looked into; an entry through it is refused, and one whose target
    /// no entry copies is warned of.
    #[test]
    fn a_copy_entry_that_is_a_symlink_is_taken_as_the_link() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let svc = tmp.path().join("svc");
        std::fs::create_dir_all(svc.join("d2/sub")).unwrap();
        std::fs::write(svc.join("d2/y"), "2").unwrap();
        std::fs::write(svc.join("app.py"), "x").unwrap();
        // A FIFO in the folder the link points to: not copied, not refused.
        assert!(std::process::Command::new("mkfifo")
            .arg(svc.join("d2/pipe"))
            .status()
            .unwrap()
            .success());
        symlink("d2", svc.join("data")).unwrap();
        symlink("../../app.py", svc.join("d2/sub/app")).unwrap();
        std::fs::create_dir_all(svc.join("other")).unwrap();
        std::fs::write(svc.join("other/x"), "x").unwrap();
        symlink("../../other", svc.join("d2/sub/lnk")).unwrap();
        symlink("/nowhere/at/all", svc.join("gone")).unwrap();

        let (errors, warnings) = told(&["data"], &svc);
        assert_eq!(errors, []);
        assert_eq!(
            warnings,
            [(1, "copy path `data` is a symlink to `d2`, which is not copied: in the image the link leads nowhere".to_string())]
        );
        std::fs::remove_file(svc.join("d2/pipe")).unwrap();
        // With a trailing `/` too; and its target copied (whole, or in part):
        // no warning.
        for copy in [&["data/", "d2"][..], &["data", "d2/y"][..]] {
            assert_eq!(told(copy, &svc), (vec![], vec![]), "{copy:?}");
        }
        // Through the link: the image cannot hold `data/y` under the link.
        let (errors, warnings) = told(&["d2", "data", "data/y"], &svc);
        assert_eq!(
            errors,
            [(3, "copy path `data/y` goes through `data`, a symlink copied as a symlink (line 2): the image cannot hold a file under a link".to_string())]
        );
        assert_eq!(warnings, [], "no `inside data, copied whole` warning");
        // A link inside a copied folder, the same.
        let (errors, _) = told(&["d2", "d2/sub/lnk/x"], &svc);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].1.contains(
                "goes through `d2/sub/lnk`, a symlink that `d2` copies as a symlink (line 1)"
            ),
            "{errors:?}"
        );
        // A link to a file, listed beside it: fine; a dangling one refused.
        assert_eq!(told(&["d2/sub/app", "app.py"], &svc), (vec![], vec![]));
        assert_eq!(kinds(&["gone"], &svc), vec![ErrorKind::MissingFile]);
    }

    #[test]
    fn a_name_or_link_target_that_is_not_utf8_in_a_copied_folder_is_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let svc = tmp.path().join("svc");
        std::fs::create_dir_all(svc.join("data/sub")).unwrap();
        std::fs::write(svc.join("data/a.txt"), "a").unwrap();
        let bad = svc.join("data/sub").join(OsStr::from_bytes(b"n-\xff\\x"));
        std::fs::write(&bad, "A").unwrap();
        let (errors, _) = told(&["data"], &svc);
        assert_eq!(
            errors,
            [(
                1,
                r"copy folder `data` holds a name that is not UTF-8: sub/n-\xff\\x".to_string()
            )]
        );
        assert_eq!(kinds(&["data"], &svc), vec![ErrorKind::InvalidValue]);
        std::fs::remove_file(&bad).unwrap();
        assert_eq!(told(&["data"], &svc), (vec![], vec![]));
        // A link whose target is not UTF-8, inside a copied folder or listed.
        std::os::unix::fs::symlink(OsStr::from_bytes(b"a\xfe"), svc.join("data/l")).unwrap();
        let (errors, _) = told(&["data"], &svc);
        assert_eq!(
            errors,
            [(
                1,
                r"copy folder `data` holds a symlink whose target is not UTF-8: l -> a\xfe"
                    .to_string()
            )]
        );
        std::os::unix::fs::symlink(OsStr::from_bytes(b"data/a.txt\xfe"), svc.join("l2")).unwrap();
        assert_eq!(
            kinds(&["l2"], &svc),
            vec![ErrorKind::MissingFile],
            "dangling first"
        );
        assert_eq!(escaped(Path::new("é/\u{1b}")), r"é/\u{1b}");
    }
}
