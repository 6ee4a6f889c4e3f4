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
            return match discover::members(&self.root, &config.members, cfg_file, &mut self.watched)
            {
                Ok(files) => Some((files, config)),
                Err(ds) => {
                    self.diags.extend(ds);
                    None
                }
            };
        }
        self.watched.extend(
            discover::DEFAULT_MESHFILES
                .iter()
                .map(|n| (self.cwd.join(n), Watch::Content)),
        );
        match discover::default_meshfile(&self.cwd) {
            Some(f) => {
                if config_file.is_none() {
                    self.root = self.cwd.clone();
                }
                Some((vec![f], config))
            }
            None => {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::NoManifest,
                        &self.cwd,
                        Pos::default(),
                        "no manifest to load",
                    )
                    .with_hint(format!(
                        "give one with `-f FILE`, add `members` to {CONFIG_FILE}, or create {}",
                        discover::DEFAULT_MESHFILES.join(" / ")
                    )),
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
                let pos = e.span().map(|s| pos_of(&text, s.start)).unwrap_or_default();
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

/// What went wrong reading a file, as the end of a sentence about it.
pub(super) fn reason(e: &crate::regular_file::ReadError) -> String {
    match e {
        crate::regular_file::ReadError::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => {
            format!("cannot be read: {io}")
        }
        other => other.to_string(),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn pos_of(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::pos_of;
    use crate::manifest::Pos;

    #[test]
    fn offsets_to_positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(pos_of(text, 0), Pos { line: 1, column: 1 });
        assert_eq!(pos_of(text, 6), Pos { line: 2, column: 1 });
        assert_eq!(pos_of(text, 10), Pos { line: 2, column: 4 });
        assert_eq!(pos_of(text, 999), Pos { line: 3, column: 1 });
    }
}
