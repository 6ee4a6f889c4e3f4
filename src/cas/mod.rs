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
pub mod pending;
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
    /// The project whose apply sent this revision, as the CAS records it
    /// (the local CAS: a canonical workspace root; `None` on a remote CAS,
    /// for a revision another client sent, and for one made before
    /// revisions said it).
    pub project: Option<String>,
}

impl SessionRecord {
    /// [`session::content_hash`] of the stored YAML (its predecessor left out).
    pub fn content_hash(&self) -> String {
        session::content_hash(&self.yaml)
    }

    /// Whether CAS already holds `session_yaml` (the session as an upload
    /// sends it, values and salt put in): equal content, predecessor aside.
    /// The one test of whether an apply uploads ([`apply_session_with`]),
    /// `apply --plan` and `verify` ([`pending::compare`]) alike.
    pub fn holds(&self, session_yaml: &str) -> bool {
        self.content_hash() == session::content_hash(session_yaml)
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

    /// The project uploads are made for, as [`SessionRecord::project`]
    /// names it (`None`: this CAS records no project).
    fn project(&self) -> Option<&str> {
        None
    }
}

/// Whether `current`, the session CAS holds where `scone.lock` recorded
/// `known`, is this project's own update of `known`: an apply that CAS took
/// but that ended (killed, timed out) before it wrote `scone.lock`.
///
/// Both must hold: its predecessor is `known`, so it was made from the very
/// session this project's lock records, and the CAS records it as made by
/// `project` (the project uploading). The predecessor alone is not enough:
/// every copy of this project's history (a clone in another folder, a CI
/// job applying with the same client certificate) knows `known`, and an
/// update of theirs is the change `scone.lock` is there to catch. A CAS that records
/// no project (a remote CAS, where every project of a user shares one
/// client certificate) or a session without one never counts: it stays a
/// change since this project's last apply.
pub fn is_own_update(current: &SessionRecord, known: &str, project: Option<&str>) -> bool {
    let Some(project) = project else {
        return false;
    };
    current.hash != known
        && current.project.as_deref() == Some(project)
        && session::parse_session(&current.yaml)
            .is_ok_and(|parsed| parsed.predecessor.as_deref() == Some(known))
}

/// The secrets `current` (the session CAS holds) declares without a value,
/// so that CAS generated theirs, and `new` no longer declares: an upload of
/// `new` deletes their values from CAS, and declaring one again makes a new
/// value. Names only, sorted; a session that does not parse declares none
/// (CAS took `current` only once it parsed, and the upload parses `new`).
pub fn dropped_generated(current: &str, new: &str) -> Vec<String> {
    let (Ok(current), Ok(new)) = (session::parse_session(current), session::parse_session(new))
    else {
        return Vec::new();
    };
    let mut dropped: Vec<String> = current
        .secrets
        .into_iter()
        .filter(|s| s.value.is_none() && !new.secrets.iter().any(|n| n.name == s.name))
        .map(|s| s.name)
        .collect();
    dropped.sort();
    dropped.dedup();
    dropped
}

/// Secret names for a message: `` secret `a` `` or `` secrets `a`, `b` ``.
pub fn secret_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        1 => format!("secret {}", quoted[0]),
        _ => format!("secrets {}", quoted.join(", ")),
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
        /// Whether the session replaced was this project's own update of
        /// `known_predecessor` ([`is_own_update`]: an interrupted apply), so
        /// the upload named the CAS's current hash instead.
        own_update: bool,
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
/// with [`CasError::PredecessorConflict`], unless the session CAS holds is this
/// project's own update of it ([`is_own_update`]): then the update names the
/// CAS's current hash.
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
        if current.holds(&session_yaml) {
            return Ok(ApplyOutcome::Unchanged {
                hash: current.hash.clone(),
            });
        }
    }
    // A CAS without the session cannot continue a chain: the session is created
    // (a fresh or wiped development CAS), whatever `scone.lock` remembers.
    let own_update = match (&current, known_predecessor) {
        (Some(c), Some(known)) => is_own_update(c, known, cas.project()),
        _ => false,
    };
    let predecessor = current.map(|c| match known_predecessor {
        Some(known) if !own_update => known.to_string(),
        _ => c.hash,
    });
    let hash = cas.upload(&session_yaml, predecessor.as_deref())?;
    Ok(ApplyOutcome::Uploaded {
        hash,
        predecessor,
        own_update,
    })
}
