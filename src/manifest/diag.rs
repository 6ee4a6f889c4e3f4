//! Manifest diagnostics: every problem names its file, line, column and kind, with
//! a hint where we can guess one. They are collected, not thrown one at a time, so
//! a user sees every mistake of a manifest in one run.

use super::located::Pos;
use std::fmt;
use std::path::PathBuf;

/// What went wrong. The names are stable: tests and JSON output use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// Not YAML.
    Yaml,
    /// A Handlebars template error (syntax, or a variable the mesh does not define).
    Template,
    /// A field has the wrong type.
    Type,
    /// A field we do not know (with did-you-mean).
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// `apiVersion` is not `scone/5.x`.
    ApiVersion,
    /// `kind` is not a manifest kind we know.
    Kind,
    /// `build.kind` is not a build kind we know.
    BuildKind,
    /// A field value is malformed (empty name, bad port, bad size…).
    InvalidValue,
    /// A `copy` path that does not exist.
    MissingFile,
    /// A `copy` path that is absolute.
    AbsolutePath,
    /// A `copy` path that escapes the service folder (`..` or a symlink).
    PathEscape,
    /// A path a manifest names (`build.from` `dir:`/`oci:`, `signature.key`,
    /// `manifest:`) outside the repository and not in `[paths] allow`.
    OutsideWorkspace,
    /// A FIFO, device or socket where a file is expected (refused unopened).
    SpecialFile,
    /// A target dir scone may not build into or clean (see docs/security.md).
    TargetDir,
    /// A global env var that neither the Meshfile nor a default defines.
    UndefinedGlobal,
    /// The Meshfile sets a variable the service fixes as local.
    LocalOverride,
    /// A Meshfile env entry for a variable no service declares global.
    UnknownEnv,
    /// `$$SCONE::x$$` names no declared or imported secret.
    UndeclaredSecret,
    /// A secret is imported that no service of the mesh exports.
    UnexportedImport,
    /// A secret declared twice.
    DuplicateSecret,
    /// An env variable declared twice.
    DuplicateEnv,
    /// Two mesh services (or two service manifests) with the same name.
    DuplicateService,
    /// A mesh service whose image matches no service manifest's `build.to`.
    UnlinkedService,
    /// A name (service, `-p`, per-service env target) that does not exist.
    UnknownService,
    /// `scone.toml` is wrong.
    Config,
    /// No manifest found where one was expected.
    NoManifest,
}

impl ErrorKind {
    /// A stable kebab-case code, e.g. `unknown-field`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Yaml => "yaml",
            ErrorKind::Template => "template",
            ErrorKind::Type => "type",
            ErrorKind::UnknownField => "unknown-field",
            ErrorKind::MissingField => "missing-field",
            ErrorKind::ApiVersion => "api-version",
            ErrorKind::Kind => "kind",
            ErrorKind::BuildKind => "build-kind",
            ErrorKind::InvalidValue => "invalid-value",
            ErrorKind::MissingFile => "missing-file",
            ErrorKind::AbsolutePath => "absolute-path",
            ErrorKind::PathEscape => "path-escape",
            ErrorKind::OutsideWorkspace => "outside-workspace",
            ErrorKind::SpecialFile => "special-file",
            ErrorKind::TargetDir => "target-dir",
            ErrorKind::UndefinedGlobal => "undefined-global",
            ErrorKind::LocalOverride => "local-override",
            ErrorKind::UnknownEnv => "unknown-env",
            ErrorKind::UndeclaredSecret => "undeclared-secret",
            ErrorKind::UnexportedImport => "unexported-import",
            ErrorKind::DuplicateSecret => "duplicate-secret",
            ErrorKind::DuplicateEnv => "duplicate-env",
            ErrorKind::DuplicateService => "duplicate-service",
            ErrorKind::UnlinkedService => "unlinked-service",
            ErrorKind::UnknownService => "unknown-service",
            ErrorKind::Config => "config",
            ErrorKind::NoManifest => "no-manifest",
        }
    }
}

/// One problem in one manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        kind: ErrorKind,
        file: impl Into<PathBuf>,
        pos: Pos,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            kind,
            file: file.into(),
            pos,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} [{}]",
            self.file.display(),
            self.pos,
            self.message,
            self.kind.code()
        )?;
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
            write!(f, "error: {d}")?;
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
