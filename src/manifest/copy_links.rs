//! A `copy` entry that is a symlink: it is copied as the link (as one inside
//! a copied folder is), so no other entry may go through it, and one whose
//! target no entry copies would lead nowhere in the image.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Located;
use super::validate_paths::entry_path;
use std::path::{Component, Path, PathBuf};

/// The entries that go through a symlink another entry copies as a symlink
/// (`copy: [data, data/y]` with `data` a link, or a link inside a copied
/// folder): the image would hold a file under a link, which no layer can.
/// `bad`: entries refused already, left alone. Only an entry inside another
/// is looked at (one `lstat` per folder on its way from the other).
pub(super) fn through_copied_links(
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
pub(super) fn uncopied_targets(
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
