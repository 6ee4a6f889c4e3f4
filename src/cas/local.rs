//! The embedded local CAS: sessions by name with their predecessor hash chain and
//! the secrets CAS generates for them, kept in the user's data directory (never
//! under `target/`) with private, crash-safe files and a lock for concurrent use.
//!
//! Layout of the CAS directory (0700 when scone makes it): `sessions/<name>.json`
//! (0600) per session, `.lock`, and `tls/` for `scone cas serve`. Readers
//! ([`LocalCas::open`]) make and change nothing; writers ([`LocalCas::create`],
//! an upload) use only a folder that is missing, empty or a local CAS already.
//!
//! One local CAS serves every project of its user, so a session belongs to the
//! project whose `scone apply` created it (its canonical workspace root): a
//! [`LocalCas::for_project`] refuses to replace another project's session
//! unless told to take it over. A session a `scone cas serve` client created
//! belongs to its certificate (`owner`), which may read and update it: a
//! project's apply refuses it the same way, and any local upload (a take-over)
//! clears that owner, so that no certificate keeps access to what a local
//! apply put in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::durable::{private_dir, read_optional, write_private, DirLock};
use super::error::CasError;
use super::fixed::check_filled;
use super::secret::{generate, SecretValue};
use super::session::{
    check_session_name, content_hash, parse_session, session_hash, with_predecessor, ParsedSecret,
    SecretKind,
};
use super::{Cas, SessionRecord};
use crate::workspace::boundary::Overlap;

/// Environment variable that overrides the local CAS directory.
pub const CAS_DIR_ENV: &str = "SCONE_CAS_DIR";

/// The local CAS directory: `$SCONE_CAS_DIR`, else `<user data dir>/scone/cas`.
pub fn default_dir() -> Result<PathBuf, CasError> {
    if let Some(dir) = std::env::var_os(CAS_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    standard_dir().ok_or_else(|| CasError::Store {
        path: PathBuf::from("~"),
        detail: format!("no user data directory is known; set {CAS_DIR_ENV}"),
    })
}

/// The local CAS directory when `$SCONE_CAS_DIR` is not set:
/// `<user data dir>/scone/cas` (`None`: no user data directory is known).
pub fn standard_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("scone").join("cas"))
}

/// [`standard_dir`] for a message.
pub fn standard_dir_text() -> String {
    standard_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "~/.local/share/scone/cas".into())
}

/// Refuses a folder that may not hold a local CAS, changing nothing: a
/// writer uses a folder that does not exist yet (and makes it), an empty one,
/// or one that is a local CAS already (it has `sessions/`). Any other folder
/// is someone else's: scone does not put secrets among its files, nor change
/// its mode.
pub fn check_dir(dir: &Path) -> Result<(), CasError> {
    let refuse = |detail: String| CasError::NotCasDir {
        dir: dir.to_path_buf(),
        detail,
    };
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CasError::io("look at", dir, e)),
    };
    if !meta.is_dir() {
        return Err(refuse("exists and is not a folder".into()));
    }
    let sessions = dir.join("sessions");
    match std::fs::metadata(&sessions) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(refuse("holds a `sessions` that is not a folder".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CasError::io("look at", &sessions, e)),
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| CasError::io("list", dir, e))?;
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(refuse(
            "is a folder that is not a local CAS (it is not empty and has no `sessions/`)".into(),
        )),
    }
}

/// Group or world permission bits of an existing local CAS folder (`None`
/// when it is private or missing): its sessions hold secrets, so a writer
/// warns of them; their own folder and files are private whatever they are.
pub fn loose_mode(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// How the local CAS folder `cas` lies against the target dir `target`
/// (`scone clean` removes the target dir, and with it a CAS in it); `None`
/// when they are apart. Relative paths are taken from `cwd`; links are
/// followed as far as the paths exist.
pub fn target_overlap(cas: &Path, target: &Path, cwd: &Path) -> Option<Overlap> {
    let resolve = |p: &Path| crate::workspace::boundary::resolve(&cwd.join(p));
    Overlap::of(&resolve(cas), &resolve(target))
}

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    kind: String,
    size: Option<u32>,
    /// SHA-256 over kind, size and fixed value: a change regenerates the secret.
    declaration: String,
    /// The value, base64 (absent for opaque kinds).
    value: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    name: String,
    hash: String,
    content_hash: String,
    /// The session exactly as uploaded.
    yaml: String,
    /// Fingerprint of the client certificate that created it and may read
    /// and update it (`None`: created or taken over locally; a local upload
    /// clears it).
    owner: Option<String>,
    /// The project whose apply created it or took it over (its canonical
    /// workspace root; `None`: made before sessions had one, or over HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// The project whose apply sent this revision (`None`: sent over HTTPS,
    /// by a local client of no project, or before revisions said it). The
    /// owner (`project`) stays when another client updates the session;
    /// this does not: an apply tells its own interrupted update from
    /// another's by it (`crate::cas::is_own_update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_by: Option<String>,
    /// Earlier hashes of this session, oldest first.
    history: Vec<String>,
    secrets: BTreeMap<String, StoredSecret>,
}

fn declaration_digest(secret: &ParsedSecret) -> String {
    let mut h = Sha256::new();
    h.update(secret.kind.as_bytes());
    h.update([0]);
    h.update(
        secret
            .size
            .map(|s| s.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    h.update([0]);
    match &secret.value {
        Some(v) => {
            h.update([1]);
            h.update(v.as_bytes());
        }
        None => h.update([0]),
    }
    hex::encode(h.finalize())
}

/// The embedded local CAS rooted at one directory.
#[derive(Debug, Clone)]
pub struct LocalCas {
    dir: PathBuf,
    /// The project uploads are made for (see [`LocalCas::for_project`]).
    project: Option<String>,
    /// Whether this project may replace another project's session.
    take_over: bool,
}

impl LocalCas {
    /// Opens the local CAS in `dir` to read it: nothing on disk is made or
    /// changed. A folder that does not exist, or holds no `sessions/`, reads
    /// as a CAS without sessions. An upload through it first makes the CAS as
    /// [`LocalCas::create`] does.
    pub fn open(dir: &Path) -> Result<LocalCas, CasError> {
        Ok(LocalCas {
            dir: dir.to_path_buf(),
            project: None,
            take_over: false,
        })
    }

    /// Opens the local CAS in `dir` to write it: a missing folder is made
    /// (with its parents, mode 0700); an existing one is used only when it is
    /// a local CAS already or empty (see [`check_dir`]), and its mode is left
    /// as it is.
    pub fn create(dir: &Path) -> Result<LocalCas, CasError> {
        let cas = Self::open(dir)?;
        cas.prepare()?;
        Ok(cas)
    }

    /// Makes the layout a writer needs, after [`check_dir`].
    fn prepare(&self) -> Result<(), CasError> {
        check_dir(&self.dir)?;
        private_dir(&self.dir)?;
        private_dir(&self.dir.join("sessions"))
    }

    /// Whether `dir` holds a local CAS (its `sessions/` folder): a
    /// missing one reads as a CAS without sessions.
    pub fn exists(&self) -> bool {
        self.dir.join("sessions").is_dir()
    }

    /// This CAS as `project` sees it (its canonical workspace root): an
    /// upload of a session another project created is refused with
    /// [`CasError::OtherProject`], unless `take_over`; a session this
    /// project creates or takes over becomes its own.
    pub fn for_project(mut self, project: impl Into<String>, take_over: bool) -> LocalCas {
        self.project = Some(project.into());
        self.take_over = take_over;
        self
    }

    /// Refuses (as an upload would) when session `name` belongs to another
    /// project than [`LocalCas::for_project`]'s, or to a client certificate:
    /// checked before anything is sent, even a session that would come out
    /// the same.
    pub fn check_project(&self, name: &str) -> Result<(), CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        let existing = self.load(name)?;
        self.refuse_other_project(name, existing.as_ref())
    }

    fn refuse_other_project(
        &self,
        name: &str,
        existing: Option<&StoredSession>,
    ) -> Result<(), CasError> {
        // A `scone cas serve` client's session: its certificate reads what
        // this apply would put in (see the module documentation).
        if let (Some(ours), Some(fingerprint), false) = (
            self.project.as_deref(),
            existing.and_then(|s| s.owner.as_deref()),
            self.take_over,
        ) {
            return Err(CasError::ClientOwned {
                name: name.to_string(),
                fingerprint: fingerprint.to_string(),
                project: ours.to_string(),
                cas: self.dir.clone(),
            });
        }
        let (Some(ours), Some(theirs)) = (
            self.project.as_deref(),
            existing.and_then(|s| s.project.as_deref()),
        ) else {
            return Ok(());
        };
        if ours == theirs || self.take_over {
            return Ok(());
        }
        Err(CasError::OtherProject {
            name: name.to_string(),
            owner: theirs.to_string(),
            owner_gone: !Path::new(theirs).exists(),
            project: ours.to_string(),
            cas: self.dir.clone(),
        })
    }

    /// Opens the local CAS in [`default_dir`] to read it (see [`LocalCas::open`]).
    pub fn open_default() -> Result<LocalCas, CasError> {
        Self::open(&default_dir()?)
    }

    /// The CAS directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn session_path(&self, name: &str) -> PathBuf {
        self.dir.join("sessions").join(format!("{name}.json"))
    }

    fn load(&self, name: &str) -> Result<Option<StoredSession>, CasError> {
        check_session_name(name)?;
        let path = self.session_path(name);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let stored: StoredSession =
            serde_json::from_slice(&bytes).map_err(|e| CasError::Store {
                path: path.clone(),
                detail: format!(
                    "unreadable session record ({e}); restore it from a backup or remove it"
                ),
            })?;
        // Its YAML is what the hash it names was taken of: one edited since
        // (by hand, or anyone who can write the folder) is no session CAS
        // holds, and is never compared or served as one.
        if session_hash(&stored.yaml) != stored.hash {
            return Err(CasError::Store {
                path,
                detail: format!(
                    "the session record was changed outside scone: its YAML does not hash to \
                     the session hash it names ({}); restore it from a backup, or remove it \
                     and apply again (its generated secrets are then new)",
                    stored.hash
                ),
            });
        }
        Ok(Some(stored))
    }

    fn save(&self, stored: &StoredSession) -> Result<(), CasError> {
        let path = self.session_path(&stored.name);
        let bytes = serde_json::to_vec_pretty(stored).map_err(|e| CasError::Store {
            path: path.clone(),
            detail: format!("cannot encode session record: {e}"),
        })?;
        write_private(&path, &bytes)
    }

    /// Uploads a session on behalf of `owner` (a client certificate fingerprint;
    /// `None` for the local user, who owns the directory and may update any
    /// session but a project's or a client's, see [`LocalCas::for_project`]; the
    /// local user's upload makes the session no certificate's). The top-level `predecessor` of `session_yaml` is set to
    /// `predecessor` first. Creating needs no predecessor; updating must name the
    /// current hash. Secrets are generated on create, kept on update unless their
    /// declaration (kind, size, fixed value) changed, and dropped when undeclared.
    /// A session holding the placeholder of a fixed value
    /// ([`super::fixed::PLACEHOLDER`]) is refused. Returns the new session hash.
    pub fn upload_as(
        &self,
        session_yaml: &str,
        predecessor: Option<&str>,
        owner: Option<&str>,
    ) -> Result<String, CasError> {
        self.upload_document_as(with_predecessor(session_yaml, predecessor), owner)
    }

    /// Uploads a session document exactly as given (its own `predecessor` field
    /// names the predecessor), as the HTTPS server receives it; see [`Self::upload_as`].
    pub fn upload_document_as(
        &self,
        yaml: String,
        owner: Option<&str>,
    ) -> Result<String, CasError> {
        let parsed = parse_session(&yaml)?;
        check_filled(&parsed)?;
        self.prepare()?;
        let _lock = DirLock::exclusive(&self.dir)?;
        let existing = self.load(&parsed.name)?;
        if owner.is_none() {
            self.refuse_other_project(&parsed.name, existing.as_ref())?;
        }
        if let (Some(owner), Some(current)) = (owner, &existing) {
            if current.owner.as_deref() != Some(owner) {
                return Err(not_owner(&parsed.name));
            }
        }
        let current_hash = existing.as_ref().map(|s| s.hash.clone());
        if parsed.predecessor != current_hash {
            return Err(CasError::PredecessorConflict {
                name: parsed.name,
                given: parsed.predecessor,
                current: current_hash,
            });
        }
        let mut old_secrets = BTreeMap::new();
        let mut history = Vec::new();
        let mut created_by = owner.map(str::to_string);
        // A local apply makes the session its project's (created, taken over,
        // or one made before sessions had a project); an HTTPS client keeps it.
        // A local upload also ends a client certificate's ownership: what the
        // local user sends (fixed values, a salt) is no certificate's to read.
        let mut project = if owner.is_none() {
            self.project.clone()
        } else {
            None
        };
        if let Some(current) = existing {
            old_secrets = current.secrets;
            history = current.history;
            history.push(current.hash);
            if owner.is_some() {
                created_by = current.owner;
            }
            if owner.is_some() || project.is_none() {
                project = current.project;
            }
        }
        let mut secrets = BTreeMap::new();
        for decl in &parsed.secrets {
            let declaration = declaration_digest(decl);
            if let Some(kept) = old_secrets.remove(&decl.name) {
                if kept.declaration == declaration {
                    secrets.insert(decl.name.clone(), kept);
                    continue;
                }
            }
            let kind = SecretKind::parse(&decl.kind);
            let value = match &decl.value {
                Some(fixed) => Some(fixed.as_bytes().to_vec()),
                None => generate(&kind, decl.size)?.map(|v| v.expose_bytes().to_vec()),
            };
            secrets.insert(
                decl.name.clone(),
                StoredSecret {
                    kind: decl.kind.clone(),
                    size: decl.size,
                    declaration,
                    value: value.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
                },
            );
        }
        let hash = session_hash(&yaml);
        let sent_by = if owner.is_none() {
            self.project.clone()
        } else {
            None
        };
        self.save(&StoredSession {
            name: parsed.name,
            hash: hash.clone(),
            content_hash: content_hash(&yaml),
            yaml,
            owner: created_by,
            project,
            sent_by,
            history,
            secrets,
        })?;
        Ok(hash)
    }

    /// The current session `name` as seen by `owner` (`None`: the local user).
    pub fn session_as(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<Option<SessionRecord>, CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        let Some(stored) = self.load(name)? else {
            return Ok(None);
        };
        if let Some(owner) = owner {
            if stored.owner.as_deref() != Some(owner) {
                return Err(not_owner(name));
            }
        }
        Ok(Some(SessionRecord {
            name: stored.name,
            hash: stored.hash,
            yaml: stored.yaml,
            project: stored.sent_by,
        }))
    }

    /// The project session `name` belongs to (see [`LocalCas::for_project`]).
    pub fn project_of(&self, name: &str) -> Result<Option<String>, CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        Ok(self.load(name)?.and_then(|s| s.project))
    }

    /// The fingerprint of the client certificate that owns session `name`
    /// (created it through `scone cas serve` and may read and update it;
    /// `None`: no certificate, or no such session).
    pub fn certificate_of(&self, name: &str) -> Result<Option<String>, CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        Ok(self.load(name)?.and_then(|s| s.owner))
    }

    /// Earlier hashes of session `name`, oldest first (empty if it does not exist).
    pub fn history(&self, name: &str) -> Result<Vec<String>, CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        Ok(self.load(name)?.map(|s| s.history).unwrap_or_default())
    }

    /// The secret values of session `name`, for `scone run` to inject as CAS
    /// would. Opaque kinds (neither ascii nor binary, without a fixed value) are
    /// not included.
    pub fn secret_values(&self, name: &str) -> Result<BTreeMap<String, SecretValue>, CasError> {
        let _lock = DirLock::shared(&self.dir)?;
        let stored = self.load(name)?.ok_or_else(|| CasError::NotFound {
            name: name.to_string(),
        })?;
        let path = self.session_path(name);
        let mut values = BTreeMap::new();
        for (secret, record) in stored.secrets {
            let Some(encoded) = record.value else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| CasError::Store {
                    path: path.clone(),
                    detail: format!("the value of secret `{secret}` is not valid base64"),
                })?;
            values.insert(
                secret,
                SecretValue::new(SecretKind::parse(&record.kind), bytes),
            );
        }
        Ok(values)
    }
}

fn not_owner(name: &str) -> CasError {
    CasError::NotOwner {
        name: name.to_string(),
        detail: "the session was created with another client certificate and its access \
                 policy lets only its CREATOR read or update it"
            .to_string(),
    }
}

impl Cas for LocalCas {
    fn upload(&self, session_yaml: &str, predecessor: Option<&str>) -> Result<String, CasError> {
        self.upload_as(session_yaml, predecessor, None)
    }

    fn session(&self, name: &str) -> Result<Option<SessionRecord>, CasError> {
        self.session_as(name, None)
    }

    fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
