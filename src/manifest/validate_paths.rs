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

use super::copy_links::{through_copied_links, uncopied_targets};
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
pub(super) fn entry_path(raw: &str) -> &str {
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
#[path = "validate_paths_tests.rs"]
mod tests;
