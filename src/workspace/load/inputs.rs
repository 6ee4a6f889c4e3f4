//! The inputs of a load: which files (`-f`, else `scone.toml` members, else
//! the default Meshfile), the root, and `scone.toml` itself.

use super::Loader;
use crate::manifest::discover::{self, CONFIG_FILE};
use crate::manifest::{Diagnostic, ErrorKind, Pos};
use crate::watch::Watch;
use crate::workspace::{Config, LoadOptions};
use std::path::{Path, PathBuf};

impl Loader {
    /// The files to load and the configuration; sets the root.
    pub(super) fn files(&mut self, opts: &LoadOptions) -> Option<(Vec<PathBuf>, Config)> {
        let given: Vec<PathBuf> = opts.files.iter().map(|f| self.cwd.join(f)).collect();
        let location = crate::workspace::locate(&LoadOptions {
            files: opts.files.clone(),
            cwd: self.cwd.clone(),
            target_dir: None,
        });
        self.watched.extend(location.watched());
        self.root = location.root.clone();
        let config_file = location.config_file;
        let config = match &config_file {
            Some(c) => self.config(c)?,
            None => Config::default(),
        };
        if !given.is_empty() {
            self.watched
                .extend(given.iter().map(|f| (f.clone(), Watch::Content)));
            return Some((given, config));
        }
        if let (Some(cfg_file), false) = (&config_file, config.members.is_empty()) {
            let text = self.config_text.as_ref().map_or("", |(_, t)| t.as_str());
            let at = |glob: &str| glob_pos(text, glob);
            return match discover::members(
                &self.root,
                &config.members,
                cfg_file,
                &at,
                &mut self.watched,
            ) {
                Ok(files) => Some((files, config)),
                Err(ds) => {
                    self.diags.extend(ds);
                    None
                }
            };
        }
        // The current folder's Meshfile; else, in a folder below the
        // workspace's `scone.toml`, the root's (as cargo builds the
        // workspace from any folder in it).
        let mut folders = vec![self.cwd.clone()];
        if config_file.is_some() && self.root != self.cwd {
            folders.push(self.root.clone());
        }
        for folder in &folders {
            self.watched.extend(
                discover::DEFAULT_MESHFILES
                    .iter()
                    .map(|n| (folder.join(n), Watch::Content)),
            );
        }
        match folders.iter().find_map(|f| discover::default_meshfile(f)) {
            Some(f) => {
                if config_file.is_none() {
                    self.root = self.cwd.clone();
                }
                Some((vec![f], config))
            }
            None => {
                let hint = no_manifest_hint(&self.cwd);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::NoManifest,
                        &self.cwd,
                        Pos::default(),
                        "no manifest to load",
                    )
                    .with_hint(hint),
                );
                None
            }
        }
    }

    /// Reads `scone.toml`; a parse error is a Config diagnostic at its line:column.
    fn config(&mut self, file: &Path) -> Option<Config> {
        use crate::regular_file::{self, ReadError, MAX_MANIFEST_BYTES};
        let text = match regular_file::read_text(file, MAX_MANIFEST_BYTES) {
            Ok(t) => t,
            Err(e) => {
                let kind = match e {
                    ReadError::Special { .. } => ErrorKind::SpecialFile,
                    _ => ErrorKind::Config,
                };
                self.diags.push(Diagnostic::new(
                    kind,
                    file,
                    Pos::default(),
                    format!("{CONFIG_FILE} {}", reason(&e)),
                ));
                return None;
            }
        };
        match toml::from_str::<Config>(&text) {
            Ok(c) => {
                self.config_text = Some((file.to_path_buf(), text));
                Some(c)
            }
            Err(e) => {
                let pos = e
                    .span()
                    .map(|s| Pos::at_offset(&text, s.start))
                    .unwrap_or_default();
                let msg = e.message().trim().to_string();
                let hint = config_hint(&msg);
                self.diags
                    .push(Diagnostic::new(ErrorKind::Config, file, pos, msg).with_hint(hint));
                None
            }
        }
    }

    /// Where `key` of `[section]` (None: the top level) is written in
    /// `scone.toml`, for a diagnostic: the file and the key's line:column.
    pub(super) fn config_pos(&self, section: Option<&str>, key: &str) -> (PathBuf, Pos) {
        let Some((file, text)) = &self.config_text else {
            return (self.root.join(CONFIG_FILE), Pos::default());
        };
        (file.clone(), crate::workspace::key_pos(text, section, key))
    }
}

/// The hint for a `scone.toml` that does not parse: the key (or value) meant,
/// when the message is toml's "unknown field `x`, expected one of `a`, `b`"
/// (or "unknown variant …") and one is close; else where the keys are listed.
fn config_hint(message: &str) -> String {
    let listed = "see docs/manifests.md for the keys of scone.toml";
    let quoted = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    if let Some(field) = message
        .strip_prefix("unknown field ")
        .and_then(|rest| rest.split_once(", expected"))
        .and_then(|(field, expected)| Some((quoted(field).pop()?, quoted(expected))))
        .and_then(|(field, expected)| placed_as_in_cargo(&field, &expected))
    {
        return format!("{field} ({listed})");
    }
    let meant = message
        .strip_prefix("unknown field ")
        .or_else(|| message.strip_prefix("unknown variant "))
        .and_then(|rest| rest.split_once(", expected"))
        .and_then(|(field, expected)| {
            let field = quoted(field).pop()?;
            let keys = quoted(expected);
            crate::manifest::suggest::did_you_mean(&field, keys.iter().map(String::as_str))
                .map(str::to_string)
        });
    match meant {
        Some(key) => format!("did you mean `{key}`? ({listed})"),
        None => listed.to_string(),
    }
}

/// The hint for a key written where Cargo.toml would have it: `[workspace]`
/// (scone.toml's `members` and `target-dir` are at its top), or a top-level
/// key inside a table (`expected`: the table's keys).
fn placed_as_in_cargo(field: &str, expected: &[String]) -> Option<String> {
    if field == "workspace" {
        return Some(
            "scone.toml has no `[workspace]` table (Cargo.toml has): write `members = [...]` \
             and `target-dir = \"...\"` at its top, before any `[table]`"
                .to_string(),
        );
    }
    let top = crate::workspace::Config::TOP_KEYS;
    (top.contains(&field) && !expected.iter().any(|k| k == field)).then(|| {
        format!("`{field}` is a key of scone.toml's top, not of this table: move it above the first `[table]`")
    })
}

/// What went wrong reading a file, as the end of a sentence about it.
pub(super) fn reason(e: &crate::regular_file::ReadError) -> String {
    match e {
        crate::regular_file::ReadError::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => {
            format!("cannot be read: {io}")
        }
        other => other.to_string(),
    }
}

/// Where scone.toml's `text` writes the member glob `glob` (quoted, as
/// TOML writes a string): its first character; else the `members` key.
fn glob_pos(text: &str, glob: &str) -> Pos {
    ['"', '\'']
        .iter()
        .find_map(|q| text.find(&format!("{q}{glob}{q}")))
        .map(|at| Pos::at_offset(text, at + 1))
        .unwrap_or_else(|| crate::workspace::key_pos(text, None, "members"))
}

/// What to tell a user whose current folder has no default Meshfile: a
/// Meshfile here by another name, else a Meshfile above (run one folder too
/// deep), else a service manifest here, else how to name one.
fn no_manifest_hint(cwd: &Path) -> String {
    // A default Meshfile's name taken by something else: the one place a
    // user looks, and the one the discovery skipped.
    let taken = discover::DEFAULT_MESHFILES.iter().find_map(|name| {
        let meta = std::fs::metadata(cwd.join(name)).ok()?;
        Some((name, crate::regular_file::not_a_file(&meta)?))
    });
    if let Some((name, what)) = taken {
        return format!("`{name}` here is {what}, not a Meshfile: rename it, or give the Meshfile with `-f FILE`");
    }
    let here = discover::manifests_in(cwd);
    let mesh = here
        .iter()
        .find(|(_, kind)| kind == crate::manifest::model::MESH_KIND);
    if let Some((name, _)) = mesh {
        return format!("`{name}` here is a Meshfile: give it with `-f {name}`");
    }
    if let Some(config) = discover::config_above(cwd) {
        let folder = config.parent().map_or(Path::new(".."), |p| p);
        return format!(
            "`{}` is above this folder, but outside a repository scone reads only the scone.toml \
             of the folder it runs in (one in a shared folder above may be someone else's): run \
             scone in `{}`, or make the workspace a repository (`git init` there)",
            config.display(),
            folder.display()
        );
    }
    if let Some(above) = discover::meshfile_above(cwd) {
        return format!(
            "`{}` is a Meshfile above this folder: give it with `-f {0}`, or run scone in `{}`",
            above.display(),
            above.parent().map_or(Path::new(".."), |p| p).display()
        );
    }
    if let Some((name, kind)) = here.first() {
        return format!(
            "`{name}` here is a service manifest (kind `{kind}`): build it alone with `-f {name}`, or give the Meshfile that names it"
        );
    }
    format!(
        "give one with `-f FILE`, add `members` to {CONFIG_FILE}, or create {}",
        discover::DEFAULT_MESHFILES.join(" / ")
    )
}

#[cfg(test)]
mod tests {
    use super::config_hint;
    use crate::manifest::Pos;

    /// toml's message for `text` as scone.toml.
    fn message_of(text: &str) -> String {
        let e = toml::from_str::<crate::workspace::Config>(text).unwrap_err();
        e.message().trim().to_string()
    }

    #[test]
    fn the_top_keys_are_those_the_config_takes() {
        let message = message_of("nothing-like-a-key = 1\n");
        let expected: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        assert_eq!(expected, crate::workspace::Config::TOP_KEYS, "{message}");
    }

    #[test]
    fn a_key_where_cargo_would_have_it_is_told_where_it_goes() {
        let hint = config_hint(&message_of("[workspace]\nmembers = [\"a/*.yml\"]\n"));
        assert!(hint.contains("no `[workspace]` table"), "{hint}");
        assert!(hint.contains("at its top"), "{hint}");
        let hint = config_hint(&message_of("[cache]\nmembers = [\"a/*.yml\"]\n"));
        assert!(
            hint.contains("`members` is a key of scone.toml's top"),
            "{hint}"
        );
        // A misspelt key still gets its nearest.
        let hint = config_hint(&message_of("member = [\"a/*.yml\"]\n"));
        assert!(hint.contains("did you mean `members`?"), "{hint}");
    }

    #[test]
    fn a_member_glob_is_found_where_it_is_written() {
        let text = "members = [\n  \"a/*.yml\",\n  'b/*.yml',\n]\n";
        assert_eq!(super::glob_pos(text, "a/*.yml"), Pos { line: 2, column: 4 });
        assert_eq!(super::glob_pos(text, "b/*.yml"), Pos { line: 3, column: 4 });
        // Written otherwise (escaped): the key.
        assert_eq!(super::glob_pos(text, "c"), Pos { line: 1, column: 1 });
    }
}
