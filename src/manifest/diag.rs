//! Manifest diagnostics: every problem names its file, line, column and kind, with
//! a hint where we can guess one. They are collected, not thrown one at a time, so
//! a user sees every mistake of a manifest in one run. Warnings are diagnostics
//! too (a [`Level`]); both print as text ([`super::snippet`] adds the source
//! line) or as one JSON object each ([`Diagnostic::to_json`]).

use super::located::Pos;
use std::fmt;
use std::path::PathBuf;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The manifests cannot be built (exit 2).
    Error,
    /// Built anyway, but the user should know.
    Warning,
}

impl Level {
    /// `error` or `warning`: the label of the human form and the JSON `level`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// Defines [`ErrorKind`] with the stable code of each kind, and
/// [`ErrorKind::ALL`]: one list, so that no kind can lack either.
macro_rules! kinds {
    ($( $(#[$doc:meta])* $name:ident => $code:literal, )*) => {
        /// What went wrong. The names are stable: tests and JSON output use them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorKind {
            /// A stable kebab-case code, e.g. `unknown-field`.
            pub fn code(self) -> &'static str {
                match self {
                    $( ErrorKind::$name => $code, )*
                }
            }

            /// Every kind, for reading a code back ([`ErrorKind::from_code`]).
            pub const ALL: &'static [ErrorKind] = &[ $( ErrorKind::$name, )* ];
        }
    };
}

kinds! {
    /// The file could not be read.
    Io => "io",
    /// Not YAML.
    Yaml => "yaml",
    /// A Handlebars template error (syntax, or a variable the mesh does not define).
    Template => "template",
    /// A field has the wrong type.
    Type => "type",
    /// A field we do not know (with did-you-mean).
    UnknownField => "unknown-field",
    /// A required field is missing.
    MissingField => "missing-field",
    /// `apiVersion` is not `scone/5.x`.
    ApiVersion => "api-version",
    /// `kind` is not a manifest kind we know.
    Kind => "kind",
    /// `build.kind` is not a build kind we know.
    BuildKind => "build-kind",
    /// A field value is malformed (empty name, bad port, bad size…).
    InvalidValue => "invalid-value",
    /// A `copy` path that does not exist.
    MissingFile => "missing-file",
    /// A `copy` path that is absolute.
    AbsolutePath => "absolute-path",
    /// A `copy` path that escapes the service folder (`..` or a symlink).
    PathEscape => "path-escape",
    /// A path a manifest names (`build.from` `dir:`/`oci:`, `signature.key`,
    /// `manifest:`) outside the repository and not in `[paths] allow`.
    OutsideWorkspace => "outside-workspace",
    /// A FIFO, device or socket where a file is expected (refused unopened).
    SpecialFile => "special-file",
    /// A target dir scone may not build into or clean (see docs/security.md).
    TargetDir => "target-dir",
    /// A global env var that neither the Meshfile nor a default defines.
    UndefinedGlobal => "undefined-global",
    /// The Meshfile sets a variable the service fixes as local, or routes a
    /// secret the service keeps local.
    LocalOverride => "local-override",
    /// A Meshfile env entry for a variable no service declares global.
    UnknownEnv => "unknown-env",
    /// `$$SCONE::x$$` names no declared or imported secret.
    UndeclaredSecret => "undeclared-secret",
    /// A secret is imported that no service of the mesh exports.
    UnexportedImport => "unexported-import",
    /// A secret declared twice.
    DuplicateSecret => "duplicate-secret",
    /// An env variable declared twice.
    DuplicateEnv => "duplicate-env",
    /// Two mesh services (or two service manifests) with the same name.
    DuplicateService => "duplicate-service",
    /// A mesh service whose image matches no service manifest's `build.to`.
    UnlinkedService => "unlinked-service",
    /// A name (service, `-p`, per-service env target) that does not exist.
    UnknownService => "unknown-service",
    /// `scone.toml` is wrong.
    Config => "config",
    /// No manifest found where one was expected.
    NoManifest => "no-manifest",
    /// `scone.lock` does not read (broken TOML, a merge's conflict markers).
    Lockfile => "lockfile",
    /// A mesh tolerates what only a test setup may (`--only_for_testing-*`
    /// CAS tolerances, `debug-mode`): a warning in debug mode, an error with
    /// `--mode production`.
    TestingTolerance => "testing-tolerance",
    // Warnings only.
    /// A deprecated spelling (`kind: genservice`).
    Deprecated => "deprecated",
    /// A published field scone accepts but does not implement.
    Unimplemented => "unimplemented",
    /// A Meshfile env entry no service declares global.
    UnusedEnv => "unused-env",
    /// A mesh service's `image` differs from its manifest's `build.to`.
    ImageMismatch => "image-mismatch",
    /// An `alias` role that is no CAS role, or a `cas` entry that plays none.
    CasRole => "cas-role",
    /// The default base image of a build kind does not exist on this machine.
    MissingBase => "missing-base",
    /// Not a manifest's: the build's (a step, the remote cache, the CAS).
    Build => "build",
    /// A command-line mistake.
    Usage => "usage",
}

impl ErrorKind {
    /// The kind of a [`ErrorKind::code`].
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|k| k.code() == code)
    }
}

/// One problem in one manifest (or, with an empty `file`, of the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub kind: ErrorKind,
    /// Empty when the problem is in no file (a `-p` name, the machine).
    pub file: PathBuf,
    /// `0:0` when the place in `file` is not known.
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error.
    pub fn new(
        kind: ErrorKind,
        file: impl Into<PathBuf>,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            level: Level::Error,
            kind,
            file: file.into(),
            pos,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning.
    pub fn warning(
        kind: ErrorKind,
        file: impl Into<PathBuf>,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::new(kind, file, pos, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether the line and column are known.
    pub fn has_pos(&self) -> bool {
        self.pos.line > 0
    }

    /// `file:line:col`, `file`, or nothing: the place as the text shows it.
    pub fn location(&self) -> Option<String> {
        if self.file.as_os_str().is_empty() {
            return None;
        }
        Some(if self.has_pos() {
            format!("{}:{}", self.file.display(), self.pos)
        } else {
            self.file.display().to_string()
        })
    }

    /// The first line of the text form, without the level label:
    /// `file:line:col: message [code]`.
    ///
    /// The code is left out for [`ErrorKind::Build`] and [`ErrorKind::Usage`]:
    /// those are no manifest's.
    pub fn headline(&self) -> String {
        let code = match self.kind {
            ErrorKind::Build | ErrorKind::Usage => String::new(),
            kind => format!(" [{}]", kind.code()),
        };
        match self.location() {
            Some(at) => format!("{at}: {}{code}", self.message),
            None => format!("{}{code}", self.message),
        }
    }

    /// The JSON form (`--message-format json`): `reason`, `level`, `code`,
    /// `file`, `line`, `column` (null when unknown), `message`, `help`.
    pub fn to_json(&self) -> serde_json::Value {
        let file = (!self.file.as_os_str().is_empty()).then(|| self.file.display().to_string());
        let (line, column) = if self.has_pos() {
            (Some(self.pos.line), Some(self.pos.column))
        } else {
            (None, None)
        };
        serde_json::json!({
            "reason": "diagnostic",
            "level": self.level.as_str(),
            "code": self.kind.code(),
            "file": file,
            "line": line,
            "column": column,
            "message": self.message,
            "help": self.hint,
        })
    }

    /// The diagnostic of a [`Diagnostic::to_json`] value.
    pub fn from_json(value: &serde_json::Value) -> Option<Diagnostic> {
        let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
        let number = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        Some(Diagnostic {
            level: match text("level")? {
                "error" => Level::Error,
                "warning" => Level::Warning,
                _ => return None,
            },
            kind: ErrorKind::from_code(text("code")?)?,
            file: PathBuf::from(text("file").unwrap_or_default()),
            pos: Pos {
                line: number("line"),
                column: number("column"),
            },
            message: text("message")?.to_string(),
            hint: text("help").map(String::from),
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

/// All problems found; the CLI prints each and exits with code 2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {d}", d.level.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_code() {
        for &kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        assert!(ErrorKind::ALL.contains(&ErrorKind::TargetDir));
    }

    #[test]
    fn a_diagnostic_survives_its_json_form() {
        let d = Diagnostic::warning(
            ErrorKind::Unimplemented,
            "mesh.yml",
            Pos {
                line: 7,
                column: 16,
            },
            "`cas[cas].mode` is not implemented",
        )
        .with_hint("leave it out");
        assert_eq!(Diagnostic::from_json(&d.to_json()), Some(d));
        let placeless = Diagnostic::new(ErrorKind::Usage, "", Pos::default(), "two -p");
        let json = placeless.to_json();
        assert_eq!(json["file"], serde_json::Value::Null);
        assert_eq!(json["line"], serde_json::Value::Null);
        assert_eq!(Diagnostic::from_json(&json), Some(placeless));
    }
}
