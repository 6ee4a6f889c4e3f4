//! The entry binary, checked before any step runs: a service's `build.binary`
//! (or the first word of its `build.command`) must be in its image, or the sign
//! step fails late. Where scone can tell without the network — a `dir:` base
//! (its folder), `scratch` (nothing but the copied files), and the files
//! `copy:` puts under `pwd` — a binary that is surely missing is an
//! `invalid-value` error at the field, from `check` and `build` alike. A base
//! scone cannot look into offline (a registry or `oci:` base) is checked by the
//! sign step, whose error names the manifest, the field and its value.
//!
//! The same holds for the file an interpreter entry runs (`python3 app.py`,
//! `node server.js`, `java -jar app.jar`: [`super::script`]).
//!
//! Only a definite absence is refused: a symlink on the way (it may point
//! anywhere in the image) counts as present.
//!
//! Services mostly share their base: what one check found of a base folder
//! (whether it is one, and each path looked up in it) is remembered for the
//! rest of the check, so 1,000 services on one `dir:` base walk its PATH once.
//!
//! Every path the check looked at is handed back ([`EntryCheck::looked`]): a
//! build watches their kinds with the load's paths, so an entry binary that
//! goes missing makes the next build load (and refuse) again, rather than
//! take the last plan and fail at the sign step.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::manifest::diag::{Diagnostic, ErrorKind};
use crate::manifest::located::Located;
use crate::manifest::Pos;
use crate::oci::base::BaseSpec;
use crate::oci::image::DEFAULT_PATH;
use crate::workspace::{ServiceUnit, Workspace};

/// What a lookup of one path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A regular file (or a symlink, which may lead to one).
    Yes,
    /// Nothing, or no regular file.
    No,
}

/// The field that names the entry binary, and the binary as the image sees it
/// (a relative path with a `/` is under `pwd`).
pub fn entry_field(unit: &ServiceUnit) -> (&'static str, &Located<String>, String) {
    let b = &unit.manifest.build;
    let (field, located, raw) = match &b.binary {
        Some(bin) => ("build.binary", bin, bin.value.clone()),
        None => (
            "build.command",
            &b.command,
            super::split_command(&b.command.value)
                .into_iter()
                .next()
                .unwrap_or_default(),
        ),
    };
    let binary = if raw.contains('/') && !raw.starts_with('/') {
        format!(
            "{}/{}",
            b.pwd.value.trim_end_matches('/'),
            raw.trim_start_matches("./")
        )
    } else {
        raw
    };
    (field, located, binary)
}

/// What [`missing_entry_binaries`] found.
pub struct EntryCheck {
    /// An error for each service whose entry binary is surely missing.
    pub missing: Vec<Diagnostic>,
    /// Every path it looked at (their kinds decided it).
    pub looked: Vec<PathBuf>,
}

/// An error for each service (of `only`, or all when empty) whose entry binary
/// is surely not in its image. File names are shown relative to `cwd`.
pub fn missing_entry_binaries(
    ws: &Workspace,
    only: &[usize],
    cache_dir: &Path,
    cwd: &Path,
) -> EntryCheck {
    let mut out = Vec::new();
    let mut memo = Memo::default();
    for (i, unit) in ws.services.iter().enumerate() {
        if !only.is_empty() && !only.contains(&i) {
            continue;
        }
        let Some(root) = memo.inspectable_root(ws, unit, cache_dir) else {
            continue;
        };
        let (field, located, binary) = entry_field(unit);
        if binary.is_empty() {
            continue; // an empty command is refused by validation
        }
        let m = &unit.manifest;
        let file = m.path.strip_prefix(cwd).unwrap_or(&m.path);
        if present(unit, root.as_deref(), &binary, &mut memo) {
            let b = &m.build;
            if let Some(script) = super::script::run_by(&b.command.value, &b.pwd.value) {
                if !in_image(unit, root.as_deref(), &script.path, &mut memo) {
                    out.push(missing_script(unit, root.as_deref(), &script, file));
                }
            }
            continue;
        }
        let base = base_name(root.as_deref());
        let (what, hint) = if binary.contains('/') {
            (
                format!("the entry binary {binary} (`{field}`) is neither in {base} nor among the copied files"),
                format!(
                    "copy it (`copy:` puts files under `{}`), point `{field}` at a file the base has, or use a base that has it",
                    m.build.pwd.value
                ),
            )
        } else {
            (
                format!(
                    "the entry binary `{binary}` (`{field}`) is on no folder of PATH ({}) in {base} nor among the copied files",
                    path_var(unit)
                ),
                "set `build.binary` to its path in the image, copy it, or use a base that has it"
                    .to_string(),
            )
        };
        out.push(Diagnostic::new(ErrorKind::InvalidValue, file, located.pos, what).with_hint(hint));
    }
    EntryCheck {
        missing: out,
        looked: memo.looked,
    }
}

/// The error for the file an interpreter runs when it is surely not in the
/// image: at the command, with the copied file it was probably meant to be.
fn missing_script(
    unit: &ServiceUnit,
    root: Option<&Path>,
    script: &super::script::Script,
    file: &Path,
) -> Diagnostic {
    let b = &unit.manifest.build;
    let base = base_name(root);
    let pwd = b.pwd.value.trim_end_matches('/');
    let path = &script.path;
    let written = path
        .strip_prefix(pwd)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(path);
    let hint = match crate::manifest::suggest::did_you_mean(
        written,
        b.copy.iter().map(|c| c.value.as_str()),
    ) {
        Some(meant) => format!("did you mean `{meant}`? (copied to {pwd}/{meant})"),
        None => format!(
            "copy it (`copy:` puts files under `{}`), or fix the path in `build.command`",
            b.pwd.value
        ),
    };
    let runner = script.runner;
    let at = place_of(&unit.manifest.path, b.command.pos, &script.word).unwrap_or(b.command.pos);
    Diagnostic::new(
        ErrorKind::InvalidValue,
        file,
        at,
        format!(
            "`{written}`, which `build.command` has {runner} run, is neither among the copied files nor in {base} ({runner} would stop at once: no file {path})"
        ),
    )
    .with_hint(hint)
}

/// Where `word` stands alone on the command's line of `manifest`
/// ([`Pos::of_word`]), so that the caret is under the file rather than the
/// interpreter; `None` where the line does not show it (a template, a scalar
/// over several lines): the command's place serves.
fn place_of(manifest: &Path, command: Pos, word: &str) -> Option<Pos> {
    let text =
        crate::regular_file::read_text(manifest, crate::regular_file::MAX_MANIFEST_BYTES).ok()?;
    Pos::of_word(&text, command, word).filter(|at| at.line == command.line)
}

/// How an error names the base it looked into.
fn base_name(root: Option<&Path>) -> String {
    match root {
        Some(dir) => format!("the base folder {}", dir.display()),
        None => "the `scratch` base".to_string(),
    }
}

/// What one check found of the bases, by base and by path (see the module
/// documentation): the file system is taken as it was when first looked at.
#[derive(Default)]
struct Memo {
    /// Base reference (as [`super::base_spec_text`] gives it) → its root.
    roots: HashMap<String, Option<Option<PathBuf>>>,
    /// Base folder → image path → what [`lookup`] found there.
    found: HashMap<PathBuf, HashMap<String, Found>>,
    /// Every path looked at.
    looked: Vec<PathBuf>,
}

impl Memo {
    /// The base's folder when scone can look into it offline: `Some(Some(dir))`
    /// for a `dir:` base that exists, `Some(None)` for `scratch`, `None` otherwise.
    fn inspectable_root(
        &mut self,
        ws: &Workspace,
        unit: &ServiceUnit,
        cache_dir: &Path,
    ) -> Option<Option<PathBuf>> {
        let spec = super::base_spec_text(ws, unit, cache_dir)?;
        if let Some(known) = self.roots.get(&spec) {
            return known.clone();
        }
        let root = match BaseSpec::parse(&spec).ok() {
            Some(BaseSpec::Scratch) => Some(None),
            Some(BaseSpec::Dir(dir)) => {
                self.looked.push(dir.clone());
                dir.is_dir().then_some(Some(dir))
            }
            _ => None,
        };
        self.roots.insert(spec, root.clone());
        root
    }

    /// [`lookup`] of `path` in the base folder `root`, remembered.
    fn lookup(&mut self, root: &Path, path: &str) -> Found {
        let paths = match self.found.get_mut(root) {
            Some(paths) => paths,
            None => self.found.entry(root.to_path_buf()).or_default(),
        };
        if let Some(&found) = paths.get(path) {
            return found;
        }
        let found = lookup(root, path, &mut self.looked);
        paths.insert(path.to_string(), found);
        found
    }
}

/// The image's PATH: the service's own `PATH` local, else the default (a
/// `dir:` or `scratch` base sets none).
fn path_var(unit: &ServiceUnit) -> String {
    unit.manifest
        .environment
        .locals()
        .into_iter()
        .find(|(k, v)| k == "PATH" && !v.contains("$$SCONE::"))
        .map_or_else(|| DEFAULT_PATH.to_string(), |(_, v)| v)
}

/// Whether `binary` (absolute, or a name looked up on PATH) may be in the image.
fn present(unit: &ServiceUnit, root: Option<&Path>, binary: &str, memo: &mut Memo) -> bool {
    if binary.contains('/') {
        return in_image(unit, root, binary, memo);
    }
    path_var(unit)
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| {
            in_image(
                unit,
                root,
                &format!("{}/{binary}", d.trim_end_matches('/')),
                memo,
            )
        })
}

/// Whether the image path `path` may be a file: in the copied files or the base.
fn in_image(unit: &ServiceUnit, root: Option<&Path>, path: &str, memo: &mut Memo) -> bool {
    if copied(unit, path, &mut memo.looked) {
        return true;
    }
    root.is_some_and(|root| memo.lookup(root, path) == Found::Yes)
}

/// Whether `path` is one of the files `copy:` puts under `pwd`.
fn copied(unit: &ServiceUnit, path: &str, looked: &mut Vec<PathBuf>) -> bool {
    let b = &unit.manifest.build;
    let pwd = b.pwd.value.trim_matches('/');
    let path = path.trim_start_matches('/');
    let rel = if pwd.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(pwd).and_then(|r| r.strip_prefix('/'))
    };
    let Some(rel) = rel else {
        return false;
    };
    let rel = Path::new(rel);
    b.copy.iter().any(|entry| {
        let entry = Path::new(entry.value.trim_start_matches("./").trim_end_matches('/'));
        rel.starts_with(entry) && lookup(&unit.dir, &rel.to_string_lossy(), looked) == Found::Yes
    })
}

/// Looks `path` up under the folder `root`, component by component, without
/// following a symlink out of it: a symlink on the way counts as found.
/// Each path it looks at goes to `looked`.
fn lookup(root: &Path, path: &str, looked: &mut Vec<PathBuf>) -> Found {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = Path::new(path.trim_start_matches('/'))
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if matches!(part, Component::ParentDir) {
            return Found::Yes; // not resolved here: the sign step looks
        }
        at.push(part);
        looked.push(at.clone());
        let Ok(meta) = std::fs::symlink_metadata(&at) else {
            return Found::No;
        };
        if meta.file_type().is_symlink() {
            return Found::Yes;
        }
        let last = i + 1 == parts.len();
        if last {
            return if meta.is_file() {
                Found::Yes
            } else {
                Found::No
            };
        }
        if !meta.is_dir() {
            return Found::No;
        }
    }
    Found::No
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_files_refuses_absences_and_trusts_symlinks() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("usr/bin")).expect("mkdir");
        std::fs::write(dir.path().join("usr/bin/python3"), b"elf").expect("write");
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).expect("symlink");
        let mut looked = Vec::new();
        assert_eq!(
            lookup(dir.path(), "/usr/bin/python3", &mut looked),
            Found::Yes
        );
        assert_eq!(lookup(dir.path(), "/usr/bin/nope", &mut looked), Found::No);
        assert_eq!(lookup(dir.path(), "/usr/bin", &mut looked), Found::No);
        assert_eq!(
            lookup(dir.path(), "/usr/bin/python3/x", &mut looked),
            Found::No
        );
        assert_eq!(lookup(dir.path(), "/bin/anything", &mut looked), Found::Yes);
        assert_eq!(lookup(dir.path(), "/opt/x", &mut looked), Found::No);
        // Every path it looked at, to the first that decided.
        assert!(looked.contains(&dir.path().join("usr/bin/nope")));
        assert!(looked.contains(&dir.path().join("bin")));
        assert!(looked.contains(&dir.path().join("opt")));
        assert!(
            !looked.contains(&dir.path().join("opt/x")),
            "no further than `opt`"
        );
    }
}
