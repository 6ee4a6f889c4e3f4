//! Errors of the Helm chart library: bad chart input, broken templates (with file:line:column)
//! and failed writes. Messages never contain environment values (they may be sensitive).

use std::path::PathBuf;

/// Where in a template file something went wrong: `path[:line:column]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLocation {
    /// The template file (a user file's real path, or `<embedded>/<name>`).
    pub path: PathBuf,
    /// 1-based line, when handlebars knows it.
    pub line: Option<usize>,
    /// 1-based column, when handlebars knows it.
    pub column: Option<usize>,
}

impl std::fmt::Display for TemplateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// Everything that can go wrong while rendering or writing a chart.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// A template file does not parse as Handlebars.
    #[error("{at}: template syntax error: {reason}")]
    TemplateSyntax {
        /// File, line and column of the error.
        at: TemplateLocation,
        /// What handlebars says is wrong.
        reason: String,
    },
    /// A template parses but fails to render (e.g. an unknown variable in strict mode).
    #[error("{at}: cannot render template: {reason}")]
    TemplateRender {
        /// File, line and column of the error.
        at: TemplateLocation,
        /// What handlebars says is wrong.
        reason: String,
    },
    /// The user template folder cannot be read.
    #[error("template folder {path}: {reason}")]
    TemplateFolder {
        /// The folder or file in it.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A field of the chart input is not usable.
    #[error("chart input: service `{service}`: {reason}")]
    InvalidService {
        /// The mesh name of the service.
        service: String,
        /// What is wrong (never contains an environment value).
        reason: String,
    },
    /// A mesh-wide field of the chart input is not usable.
    #[error("chart input: {field}: {reason}")]
    InvalidInput {
        /// The field (`namespace`, `chart_version`, ...).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Two services get the same Kubernetes name after DNS-1123 sanitizing.
    #[error(
        "services `{first}` and `{second}` both become `{name}` as Kubernetes names (DNS-1123); rename one"
    )]
    NameCollision {
        /// The first mesh service name.
        first: String,
        /// The second mesh service name.
        second: String,
        /// The shared Kubernetes name.
        name: String,
    },
    /// Writing the chart or manifests failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or folder being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
