//! A blocking client for the OCI distribution API: pull manifests and blobs, push an
//! image layout (HEAD to skip blobs the registry has, monolithic upload, manifest PUT).
//!
//! Plain HTTP for loopback registries and those named in `insecure`, HTTPS elsewhere.
//! Anonymous, basic and bearer-token auth (credentials from the Docker `config.json`).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::StatusCode;

use super::auth::{docker_config_path, DockerAuth};
use super::digest::{sha256_digest, HashingWriter, TempFile};
use super::error::{io_at, OciError, Result};
use super::image::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use super::layout::read_layout;
pub use super::reference::Reference;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host` or `host:port`) to reach over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// Credentials; `None` reads the Docker config (`DOCKER_CONFIG` honoured).
    pub auth: Option<DockerAuth>,
    /// User-Agent header; empty means `scone/<version>`.
    pub user_agent: String,
    /// Bound on each request (connect included); `None`: 30 s to connect, an hour
    /// per request (pushes of big layers).
    pub timeout: Option<Duration>,
    /// Bound on each request that moves no blob (manifests, tags, tokens,
    /// blob checks, upload sessions); `None`: [`SILENCE`]. A blob's upload
    /// or download is bound by [`Self::timeout`] alone.
    pub silence: Option<Duration>,
}

/// How long a request that moves no blob may take: a registry that takes the
/// connection and never answers (a dead load balancer, a firewall) hung a
/// push, a pull or `verify --registry` for the hour a request may last.
pub const SILENCE: Duration = Duration::from_secs(120);

/// Progress of a push, one event per blob and one for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The registry already has this blob.
    BlobSkipped { digest: String, size: u64 },
    /// Upload of a blob starts.
    BlobStarted { digest: String, size: u64 },
    /// A blob was uploaded.
    BlobUploaded { digest: String, size: u64 },
    /// The manifest was stored under `reference`.
    ManifestPushed { digest: String, reference: String },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Digests of the blobs uploaded.
    pub uploaded: Vec<String>,
    /// Digests of the blobs the registry already had.
    pub skipped: Vec<String>,
    /// Digest of the manifest pushed.
    pub manifest_digest: String,
}

/// A manifest as pulled.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    /// The bytes exactly as served (their sha256 is the digest).
    pub bytes: Vec<u8>,
    /// `sha256:` of `bytes`.
    pub digest: String,
    /// Content-Type the registry gave.
    pub media_type: String,
}

/// The largest manifest read: registries refuse to store more than 4 MiB
/// (distribution's limit); a bigger answer is not a manifest.
const MANIFEST_LIMIT: u64 = 16 << 20;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How many times a request is sent before a passing error (see
/// [`RegistryClient::send`]) is the answer.
const TRIES: u32 = 4;

/// Whether a registry's answer is an error that may pass if asked again.
fn passing(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Install the ring crypto provider for rustls once (ignoring "already installed").
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A registry client; cheap to share by reference across threads.
pub struct RegistryClient {
    /// Every request that moves no blob: each fails after [`SILENCE`].
    pub(super) http: Client,
    /// A blob's upload or download, as long as a big layer takes.
    transfer: Client,
    /// The bounds the clients were built with, for messages.
    silence: Duration,
    total: Duration,
    insecure: Vec<String>,
    auth: DockerAuth,
    /// `(registry, repository)` → Authorization header value that worked.
    tokens: Mutex<HashMap<(String, String), String>>,
}

impl RegistryClient {
    /// Build a client. Must not be called from inside an async runtime.
    pub fn new(opts: RegistryOptions) -> Result<RegistryClient> {
        install_crypto_provider();
        let user_agent = if opts.user_agent.is_empty() {
            format!("scone/{}", env!("CARGO_PKG_VERSION"))
        } else {
            opts.user_agent.clone()
        };
        let (connect, total) = match opts.timeout {
            Some(t) => (t.min(Duration::from_secs(30)), t),
            None => (Duration::from_secs(30), Duration::from_secs(3600)),
        };
        let silence = opts.silence.unwrap_or(SILENCE).min(total);
        let build = |total: Duration| {
            Client::builder()
                .user_agent(&user_agent)
                .connect_timeout(connect.min(total))
                .timeout(total)
                .build()
                .map_err(|e| OciError::Registry {
                    registry: "-".into(),
                    reason: format!("cannot build the HTTP client: {e}"),
                })
        };
        let http = build(silence)?;
        let transfer = build(total)?;
        let auth = match opts.auth {
            Some(auth) => auth,
            None => DockerAuth::load(docker_config_path().as_deref())?,
        };
        Ok(RegistryClient {
            http,
            transfer,
            silence,
            total,
            insecure: opts.insecure,
            auth,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn base_url(&self, reference: &Reference) -> String {
        let host = reference.api_host();
        let bare = host.split(':').next().unwrap_or(host);
        let plain = reference.is_loopback()
            || self
                .insecure
                .iter()
                .any(|h| h == host || h == bare || h == &reference.registry);
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    fn err(reference: &Reference, reason: impl Into<String>) -> OciError {
        OciError::Registry {
            registry: reference.registry.clone(),
            reason: reason.into(),
        }
    }

    /// Send a request built by `make` (called again after authenticating, and for each
    /// try), handling the 401 challenge: basic credentials or a bearer token for `scope`
    /// (`pull` / `pull,push`). A registry that answers 429 or a 5xx that can pass (500,
    /// 502, 503, 504: docker-registry answers 500 to a blob read while another client
    /// commits it) is asked again, [`TRIES`] times in all, after 50, 100, 200… ms.
    /// Every request scone sends is idempotent (reads, blob and manifest PUTs by
    /// digest, upload sessions it abandons if one fails).
    pub(super) fn send(
        &self,
        reference: &Reference,
        scope: &str,
        make: &dyn Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut pause = Duration::from_millis(50);
        for _ in 1..TRIES {
            let response = self.send_once(reference, scope, make)?;
            if !passing(response.status()) {
                return Ok(response);
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
        self.send_once(reference, scope, make)
    }

    fn send_once(
        &self,
        reference: &Reference,
        scope: &str,
        make: &dyn Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let key = (
            reference.registry.clone(),
            format!("{}:{scope}", reference.repository),
        );
        let cached = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
        let mut request = make()?;
        if let Some(header) = &cached {
            request = request.header(AUTHORIZATION, header);
        }
        let response = request.send().map_err(|e| {
            let timed_out = e.is_timeout();
            let cause = crate::cause::of_request(e);
            Self::err(
                reference,
                match timed_out {
                    true => format!(
                        "no answer in time ({cause}): a request fails after {} s, or {} s when \
                         it moves a blob; check that the registry is up and reachable",
                        self.silence.as_secs(),
                        self.total.as_secs()
                    ),
                    false => format!("request failed: {cause}"),
                },
            )
        })?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let header = self.authenticate(reference, scope, &challenge, response.status())?;
        let retry = make()?.header(AUTHORIZATION, &header).send().map_err(|e| {
            Self::err(
                reference,
                format!("request failed: {}", crate::cause::of_request(e)),
            )
        })?;
        if retry.status() == StatusCode::UNAUTHORIZED || retry.status() == StatusCode::FORBIDDEN {
            return Err(OciError::AuthRefused {
                registry: reference.registry.clone(),
                status: retry.status().as_u16(),
            });
        }
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(key, header);
        }
        Ok(retry)
    }

    pub(super) fn check(reference: &Reference, response: Response, what: &str) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(OciError::AuthRefused {
                registry: reference.registry.clone(),
                status: status.as_u16(),
            });
        }
        let body = response.text().unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        Err(Self::err(
            reference,
            format!("{what}: HTTP {status}: {}", body.trim()),
        ))
    }

    /// Fetch the manifest (or index) named by `reference` (tag or digest).
    pub fn pull_manifest(&self, reference: &Reference) -> Result<PulledManifest> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base_url(reference),
            reference.repository,
            reference.manifest_ref()
        );
        let response = self.send(reference, "pull", &|| {
            Ok(self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT))
        })?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(OciError::BaseNotFound {
                reference: reference.to_string(),
                reason: "the registry has no such manifest".into(),
            });
        }
        let response = Self::check(reference, response, "fetching manifest")?;
        let media_type = content_type(response.headers());
        let bytes = crate::bounded::body(response, MANIFEST_LIMIT)
            .map_err(|e| Self::err(reference, format!("reading manifest: {e}")))?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = &reference.digest {
            if &digest != expected {
                return Err(OciError::DigestMismatch {
                    what: format!("manifest of {reference}"),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        Ok(PulledManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Download blob `digest` of `reference`'s repository to `dest` (crash-safe, verified).
    pub fn pull_blob(&self, reference: &Reference, digest: &str, dest: &Path) -> Result<u64> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository
        );
        let response = self.send(reference, "pull", &|| Ok(self.transfer.get(&url)))?;
        let mut response = Self::check(reference, response, &format!("fetching blob {digest}"))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        let (temp, file) = TempFile::new_in(dir)?;
        let mut writer = HashingWriter::new(BufWriter::new(file));
        response.copy_to(&mut writer).map_err(|e| {
            Self::err(
                reference,
                format!("downloading {digest}: {}", crate::cause::of_request(e)),
            )
        })?;
        let (buffered, actual, size) = writer.finish();
        if actual != digest {
            return Err(OciError::DigestMismatch {
                what: format!("blob from {reference}"),
                expected: digest.to_string(),
                actual,
            });
        }
        let file = buffered
            .into_inner()
            .map_err(|e| OciError::io("writing blob", e.into_error()))?;
        temp.persist(file, dest)?;
        Ok(size)
    }

    /// Stream blob `digest` of `reference`'s repository into `out`; `Ok(None)` if the
    /// registry does not have it. The caller verifies the bytes.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository
        );
        let response = self.send(reference, "pull", &|| Ok(self.transfer.get(&url)))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut response = Self::check(reference, response, &format!("fetching blob {digest}"))?;
        let size = response.copy_to(out).map_err(|e| {
            Self::err(
                reference,
                format!("downloading {digest}: {}", crate::cause::of_request(e)),
            )
        })?;
        Ok(Some(size))
    }

    /// Whether the repository of `reference` has blob `digest`.
    pub fn has_blob(&self, reference: &Reference, digest: &str) -> Result<bool> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository
        );
        let response = self.send(reference, "pull,push", &|| Ok(self.http.head(&url)))?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Self::check(reference, response, "checking blob").map(|_| false),
        }
    }

    /// Upload a blob file in one PUT (POST for a session, then PUT with the digest).
    pub fn upload_blob(&self, reference: &Reference, digest: &str, file: &Path) -> Result<u64> {
        let size = std::fs::metadata(file)
            .map_err(io_at("reading", file))?
            .len();
        let base = self.base_url(reference);
        let start = format!("{base}/v2/{}/blobs/uploads/", reference.repository);
        let response = self.send(reference, "pull,push", &|| {
            Ok(self.http.post(&start).header(CONTENT_LENGTH, 0))
        })?;
        let response = Self::check(reference, response, "starting upload")?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Self::err(reference, "upload session without a Location"))?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{base}{location}")
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(digest);
        let response = self.send(reference, "pull,push", &|| {
            let body = File::open(file).map_err(io_at("opening", file))?;
            Ok(self
                .transfer
                .put(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::blocking::Body::sized(body, size)))
        })?;
        Self::check(reference, response, &format!("uploading {digest}"))?;
        Ok(size)
    }

    /// Store a manifest under `reference`'s tag (or digest); returns its digest.
    pub fn put_manifest(
        &self,
        reference: &Reference,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<String> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base_url(reference),
            reference.repository,
            reference.manifest_ref()
        );
        let response = self.send(reference, "pull,push", &|| {
            Ok(self
                .http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(manifest.to_vec()))
        })?;
        let response = Self::check(reference, response, "storing manifest")?;
        let digest = sha256_digest(manifest);
        if let Some(served) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if served != digest {
                return Err(Self::err(
                    reference,
                    format!("registry stored the manifest as {served}, expected {digest}"),
                ));
            }
        }
        Ok(digest)
    }

    /// Push the image tagged `tag` in layout `dir` (None: its only image) to `reference`.
    pub fn push_layout(
        &self,
        dir: &Path,
        tag: Option<&str>,
        reference: &Reference,
        progress: &dyn Fn(PushEvent),
    ) -> Result<PushReport> {
        let image = read_layout(dir, tag)?;
        let mut report = PushReport {
            uploaded: Vec::new(),
            skipped: Vec::new(),
            manifest_digest: image.manifest_digest.clone(),
        };
        let config_path = super::layout::blob_path(dir, &image.config_digest)?;
        let blobs = image
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.path.clone()))
            .chain(std::iter::once((image.config_digest.clone(), config_path)));
        for (digest, path) in blobs {
            let size = std::fs::metadata(&path)
                .map_err(io_at("reading", &path))?
                .len();
            if self.has_blob(reference, &digest)? {
                progress(PushEvent::BlobSkipped {
                    digest: digest.clone(),
                    size,
                });
                report.skipped.push(digest);
                continue;
            }
            progress(PushEvent::BlobStarted {
                digest: digest.clone(),
                size,
            });
            self.upload_blob(reference, &digest, &path)?;
            progress(PushEvent::BlobUploaded {
                digest: digest.clone(),
                size,
            });
            report.uploaded.push(digest);
        }
        let doc: serde_json::Value = serde_json::from_slice(&image.manifest)
            .map_err(|e| OciError::invalid("image manifest", e))?;
        let media_type = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(MEDIA_TYPE_MANIFEST)
            .to_string();
        let digest = self.put_manifest(reference, &image.manifest, &media_type)?;
        progress(PushEvent::ManifestPushed {
            digest: digest.clone(),
            reference: reference.to_string(),
        });
        Ok(report)
    }
}

/// Whether a Content-Type names an index (OCI or Docker list).
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST
}

/// Whether a Content-Type names a single-image manifest.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default()
}

#[path = "registry_token.rs"]
mod token;
#[cfg(test)]
use token::parse_challenge;

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
