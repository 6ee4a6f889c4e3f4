//! SCONE CAS: the session model, the embedded local CAS, its HTTPS server and the
//! remote CAS client.
//!
//! The `policy` step renders a [`session::SessionInput`] with [`session::render`];
//! the `upload` step hands the YAML to [`apply_session`] with a [`Cas`]: the
//! [`local::LocalCas`] by default, or a [`remote::RemoteCas`] for a mesh's `cas_url`.

mod durable;
pub mod error;
pub mod fixed;
pub mod local;
pub mod refs;
pub mod remote;
pub mod secret;
pub mod serve;
pub mod session;
pub mod tls;

pub use error::CasError;

/// A session as stored on a CAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session name.
    pub name: String,
    /// Its current hash ([`session::session_hash`] of `yaml`).
    pub hash: String,
    /// The session YAML exactly as uploaded.
    pub yaml: String,
}

impl SessionRecord {
    /// [`session::content_hash`] of the stored YAML (its predecessor left out).
    pub fn content_hash(&self) -> String {
        session::content_hash(&self.yaml)
    }
}

/// A CAS that stores sessions with a predecessor chain.
pub trait Cas {
    /// Uploads `session_yaml` with its top-level `predecessor` set to `predecessor`
    /// (`None` to create the session). Returns the new session hash.
    fn upload(&self, session_yaml: &str, predecessor: Option<&str>) -> Result<String, CasError>;

    /// The current session `name`, `None` when it does not exist.
    fn session(&self, name: &str) -> Result<Option<SessionRecord>, CasError>;

    /// The current hash of session `name`, `None` when it does not exist.
    fn current_hash(&self, name: &str) -> Result<Option<String>, CasError> {
        Ok(self.session(name)?.map(|r| r.hash))
    }
}

/// What [`apply_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The CAS already holds this content: nothing was uploaded.
    Unchanged {
        /// The session's current hash on the CAS.
        hash: String,
    },
    /// The session was created or updated.
    Uploaded {
        /// The new hash.
        hash: String,
        /// The hash it replaced (`None`: created).
        predecessor: Option<String>,
    },
}

impl ApplyOutcome {
    /// The session's hash on the CAS after the apply.
    pub fn hash(&self) -> &str {
        match self {
            ApplyOutcome::Unchanged { hash } | ApplyOutcome::Uploaded { hash, .. } => hash,
        }
    }
}

/// Brings the CAS to `session_yaml` (a rendered session; its own `predecessor`
/// is ignored). When the CAS's current session has the same content hash, nothing
/// is uploaded. When the CAS has no such session, it is created. Otherwise the
/// upload names `known_predecessor` (the hash in `scone.lock`) or, when there is
/// none, the CAS's current hash; a stale `known_predecessor` is refused by the CAS
/// with [`CasError::PredecessorConflict`].
pub fn apply_session(
    cas: &dyn Cas,
    session_yaml: &str,
    known_predecessor: Option<&str>,
) -> Result<ApplyOutcome, CasError> {
    let name = session::parse_session(session_yaml)?.name;
    apply_session_with(cas, &name, known_predecessor, |_| {
        Ok(session_yaml.to_string())
    })
}

/// [`apply_session`] of the session `make` gives, from the session CAS holds
/// now (`None`: none): the upload step makes the session it sends with the
/// salt of the one on CAS ([`fixed::fill`], [`fixed::salt_of`]). The session
/// made must be named `name`.
pub fn apply_session_with(
    cas: &dyn Cas,
    name: &str,
    known_predecessor: Option<&str>,
    make: impl FnOnce(Option<&SessionRecord>) -> Result<String, CasError>,
) -> Result<ApplyOutcome, CasError> {
    let current = cas.session(name)?;
    let session_yaml = make(current.as_ref())?;
    let made = session::parse_session(&session_yaml)?.name;
    if made != name {
        return Err(CasError::InvalidSession(format!(
            "internal: session `{made}` made for `{name}`"
        )));
    }
    if let Some(current) = &current {
        if current.content_hash() == session::content_hash(&session_yaml) {
            return Ok(ApplyOutcome::Unchanged {
                hash: current.hash.clone(),
            });
        }
    }
    // A CAS without the session cannot continue a chain: the session is created
    // (a fresh or wiped development CAS), whatever `scone.lock` remembers.
    let predecessor = current.map(|c| known_predecessor.map_or(c.hash, str::to_string));
    let hash = cas.upload(&session_yaml, predecessor.as_deref())?;
    Ok(ApplyOutcome::Uploaded { hash, predecessor })
}
