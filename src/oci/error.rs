//! Errors of the OCI layer: one variant per thing a user can get wrong or a remote can refuse.
//!
//! Messages never carry credentials: registry errors name the host and the HTTP status only.

use std::path::Path;

/// Everything that can go wrong while building, reading, pulling, pushing or loading images.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A file-system operation failed; `context` says what was being done to which path.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An image reference (`host/repo:tag`, `oci:DIR`, …) could not be parsed.
    #[error("invalid image reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },
    /// A base image does not exist where the reference says.
    #[error("base image `{reference}` not found: {reason}")]
    BaseNotFound { reference: String, reason: String },
    /// `--offline` and the base image is not in the local cache.
    #[error("base image `{reference}` is not in the local cache ({cache}) and --offline forbids the network; run once without --offline")]
    Offline { reference: String, cache: String },
    /// A blob's content does not match the digest that names it.
    #[error("{what}: content has digest {actual}, expected {expected} (corrupt or tampered blob)")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A JSON document or a field in it is not what the OCI specs allow.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A layer entry cannot be put in a tar (bad path, unreadable source, …).
    #[error("layer entry `{path}`: {reason}")]
    Entry { path: String, reason: String },
    /// The registry refused our credentials (or we had none and it wants some).
    #[error("registry {registry}: authentication refused (HTTP {status}); check `docker login {registry}` / DOCKER_CONFIG")]
    AuthRefused { registry: String, status: u16 },
    /// Any other registry failure: transport, unexpected status, protocol violation.
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    /// The Docker-API engine (Docker or Podman) failed or is unreachable.
    #[error("docker engine {host}: {reason}")]
    Docker { host: String, reason: String },
}

/// Result of this module.
pub type Result<T, E = OciError> = std::result::Result<T, E>;

impl OciError {
    /// Whether the message names the image it is about already (`base image
    /// `REF` not found: …`): a caller adds no `base image REF:` of its own.
    pub fn names_the_image(&self) -> bool {
        matches!(
            self,
            OciError::BadReference { .. }
                | OciError::BaseNotFound { .. }
                | OciError::Offline { .. }
        )
    }

    /// The message for an image that is no base: `what` (`the image to
    /// verify`) instead of the words "base image", e.g. ``the image to verify
    /// `oci:/x` was not found: not an OCI image layout (no index.json)``;
    /// other errors as they are, after `reading {what} REF`.
    pub fn about_image(&self, what: &str, reference: &str) -> String {
        match self {
            OciError::BaseNotFound { reference, reason } => {
                format!("{what} `{reference}` was not found: {reason}")
            }
            OciError::Offline { reference, cache } => format!(
                "{what} `{reference}` is not in the local cache ({cache}) and --offline forbids the network; run once without --offline"
            ),
            OciError::BadReference { .. } => self.to_string(),
            other => format!("reading {what} `{reference}`: {other}"),
        }
    }

    /// An I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        OciError::Io {
            context: context.into(),
            source,
        }
    }

    /// An `Invalid` error.
    pub fn invalid(what: impl Into<String>, reason: impl ToString) -> Self {
        OciError::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// `map_err` adapter: `fs::read(p).map_err(io_at("reading", p))`.
pub fn io_at<'a>(action: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OciError + 'a {
    move |source| OciError::io(format!("{action} {}", path.display()), source)
}
