//! Errors of the CAS layer: session validation, the local store, the HTTPS server
//! and the remote client. Messages say what the user should do next and never
//! contain a secret value.

use std::path::PathBuf;

/// Everything that can go wrong while rendering, storing, serving or uploading a
/// CAS session.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The session (or the input it is rendered from) is not valid.
    #[error("invalid CAS session: {0}")]
    InvalidSession(String),

    /// The predecessor named by an upload is not the session's current hash.
    #[error("{}", conflict_message(name, given.as_deref(), current.as_deref()))]
    PredecessorConflict {
        /// Session name.
        name: String,
        /// The predecessor the upload named (`None`: it named none).
        given: Option<String>,
        /// The session's current hash on CAS (`None`: the session does not exist).
        current: Option<String>,
    },

    /// An upload that would delete the values of secrets CAS generated
    /// (the new session no longer declares them), refused by a caller that
    /// keeps them (`scone dev`); see [`super::dropped_generated`].
    #[error(
        "session `{name}` was not uploaded: it no longer declares {}, which CAS \
         generated, and the upload would delete their values",
        super::secret_list(secrets)
    )]
    KeepsGenerated {
        /// Session name.
        name: String,
        /// The generated secrets it no longer declares (names, never values).
        secrets: Vec<String>,
    },

    /// The client certificate is not allowed to read or update the session.
    #[error(
        "CAS refused access to session `{name}`: {detail}; use the client identity that \
         created it (client.crt and client.key in the CAS config directory), or choose \
         another `policy.namespace`"
    )]
    NotOwner {
        /// Session name.
        name: String,
        /// What the server said.
        detail: String,
    },

    /// The local CAS session belongs to another project (see
    /// `LocalCas::for_project`).
    #[error(
        "the local CAS session `{name}` belongs to the project in {owner}{gone}, not to this \
         one ({project}): an apply from here would replace that project's session (local \
         CAS: {cas}). Give this project another `policy.namespace`, or take the session \
         over: `scone apply --take-over {name}` (the other project's next apply is then \
         refused the same way)",
        cas = cas.display(),
        gone = if *owner_gone {
            " (a folder that no longer exists: a clone since deleted or moved?)"
        } else {
            ""
        }
    )]
    OtherProject {
        /// Session name.
        name: String,
        /// The project it belongs to.
        owner: String,
        /// Whether the owner's folder no longer exists (still refused: a
        /// folder can come back, and only its user may say the session is
        /// no longer theirs).
        owner_gone: bool,
        /// The project that tried to replace it.
        project: String,
        /// The local CAS folder.
        cas: PathBuf,
    },

    /// The local CAS session was created through `scone cas serve` by a client
    /// certificate, which can read it (fixed values and salt included) and
    /// update it: a local apply does not put its project's secrets into it
    /// unless told to take it over, which cuts the certificate out (see
    /// `LocalCas::for_project`).
    #[error(
        "the local CAS session `{name}` belongs to the client certificate {fingerprint} \
         (it was created through `scone cas serve`), not to this project ({project}): that \
         certificate may read the session, fixed secret values and salt included, and update \
         it, so an apply from here would hand it this project's secrets (local CAS: {cas}). \
         Give this project another `policy.namespace`, or take the session over: \
         `scone apply --take-over {name}` (the certificate then loses all access to it)",
        cas = cas.display()
    )]
    ClientOwned {
        /// Session name.
        name: String,
        /// SHA-256 fingerprint of the client certificate that owns it.
        fingerprint: String,
        /// The project that tried to apply it.
        project: String,
        /// The local CAS folder.
        cas: PathBuf,
    },

    /// The local CAS folder is something else (see `local::check_dir`).
    #[error(
        "the local CAS dir {} {detail}: scone keeps sessions and their secrets in a folder \
         of its own, and changes no other; point SCONE_CAS_DIR at a new or empty folder, \
         or at a local CAS (unset SCONE_CAS_DIR for the default, {})",
        dir.display(),
        super::local::standard_dir_text()
    )]
    NotCasDir {
        /// The folder.
        dir: PathBuf,
        /// What it is.
        detail: String,
    },

    /// No session of that name exists.
    #[error("CAS session `{name}` does not exist")]
    NotFound {
        /// Session name.
        name: String,
    },

    /// The TLS handshake with the CAS failed (server not trusted, certificate refused…).
    #[error(
        "TLS connection to CAS at {url} failed: {detail}; check that the URL is right and \
         that the CA certificate you trust ({ca}) is the one of this CAS \
         (`scone cas serve` prints the path of its CA certificate on start)"
    )]
    Tls {
        /// The CAS URL.
        url: String,
        /// The underlying error chain.
        detail: String,
        /// Which trust was used.
        ca: String,
    },

    /// The CAS could not be reached at all.
    #[error("cannot reach CAS at {url}: {detail}; is the CAS running and is `cas_url` right?")]
    Unreachable {
        /// The CAS URL.
        url: String,
        /// The underlying error chain.
        detail: String,
    },

    /// The CAS answered with an unexpected status.
    #[error("CAS at {url} answered {status}: {message}")]
    Server {
        /// The CAS URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The CAS's error text.
        message: String,
    },

    /// A CAS URL that cannot be used.
    #[error("invalid CAS URL `{url}`: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The system's random generator failed.
    #[error("cannot generate a secret: the system random generator failed: {0}")]
    Random(String),

    /// A certificate or key file could not be read, parsed or generated.
    #[error("CAS TLS identity: {0}")]
    Identity(String),

    /// The local CAS store is damaged.
    #[error("local CAS store {path}: {detail}")]
    Store {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `create directory`, …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CasError {
    /// Wraps an I/O error with the operation and the path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CasError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn conflict_message(name: &str, given: Option<&str>, current: Option<&str>) -> String {
    match (given, current) {
        (Some(given), None) => format!(
            "CAS session `{name}` does not exist, but the upload names predecessor {given}; \
             create it without a predecessor (`scone apply` does so when the CAS lacks it)"
        ),
        (None, Some(current)) => format!(
            "CAS session `{name}` already exists (it is at {current}) and an update must name \
             its current hash as predecessor: pass {current}, or replace the session as it is \
             now with `scone apply --take-over {name}`"
        ),
        (Some(given), Some(current)) => format!(
            "the CAS session `{name}` changed since your last apply: it is at {current}, not at \
             {given} as scone.lock says; review that change (`scone cas session {name}` for \
             the local CAS), then replace it with yours: `scone apply --take-over {name}`"
        ),
        (None, None) => format!("CAS session `{name}`: predecessor conflict"),
    }
}
