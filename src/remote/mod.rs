//! The shared remote cache: a tier behind the local store, on engines teams
//! already run (we do not build a cache server).
//!
//! | URL                          | engine                                   | module     |
//! |------------------------------|------------------------------------------|------------|
//! | `oci://HOST[:PORT]/REPO`     | any OCI registry (distribution, Harbor…) | [`oci`]    |
//! | `http(s)://HOST[:PORT]/PREFIX` | the Bazel HTTP cache protocol (bazel-remote, nginx WebDAV…) | [`http`] |
//!
//! What is stored, per step result, is an [`entry::Entry`] (the action
//! record and the sha256 of each blob) and the blobs themselves; nothing
//! else. Signing keys, CAS secrets and secret values never reach a step's
//! outputs, and effect steps (policy upload, push) are never cached, so none
//! of them can be uploaded. See `docs/cache.md` ("Remote cache").
//!
//! [`tier::Tier`] puts a [`Backend`] behind the engine's
//! [`RemoteTier`](crate::engine::RemoteTier) contract: a build index and packs
//! ([`index`], [`pack`]) so one request answers for many steps and blobs, requests
//! on a pool sized for latency ([`pool`]), verified downloads, local builds of
//! steps whose result is slow to come, background uploads, one warning and local
//! builds when the remote fails.

pub mod entry;
pub mod http;
pub mod index;
pub mod oci;
pub mod pack;
pub mod pool;
pub mod tier;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use entry::{BlobRef, Entry};
pub use tier::Tier;

/// What went wrong talking to a remote. Never holds credentials.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Transport(String),
    #[error("{what}: HTTP {status}")]
    Status { what: String, status: u16 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The remote answered, but not with what was asked (not JSON, not a scone
    /// manifest, a config that does not match its digest): a miss with one
    /// warning, the remote stays on.
    #[error("{0}")]
    Broken(String),
}

/// A bad `--remote-cache` / `[cache] remote` value.
#[derive(Debug, thiserror::Error)]
#[error("remote cache `{url}`: {reason}")]
pub struct RemoteUrlError {
    pub url: String,
    pub reason: String,
}

/// The storage operations a remote engine offers.
pub trait Backend: Send + Sync {
    /// The entry stored for a fingerprint, if any.
    fn get_entry(&self, fingerprint: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Streams a blob (by hex sha256) into `out`; `false` if the remote lacks it.
    fn get_blob(&self, sha256: &str, out: &mut dyn Write) -> Result<bool, RemoteError>;
    fn has_blob(&self, sha256: &str) -> Result<bool, RemoteError>;
    fn put_blob(&self, sha256: &str, size: u64, path: &Path) -> Result<(), RemoteError>;
    /// Stores an entry; called after all its blobs are stored.
    fn put_entry(&self, fingerprint: &str, entry: &Entry) -> Result<(), RemoteError>;
    /// The build index stored for a plan ([`index::scope`]), if any (its bytes as
    /// [`index::Index::to_bytes`] made them).
    fn get_index(&self, scope: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Stores a build index; called after every blob it names is stored.
    /// `stored`: every remote blob the index's entries name (packs, and blobs stored
    /// on their own).
    fn put_index(
        &self,
        scope: &str,
        bytes: &[u8],
        stored: &[pack::PackInfo],
    ) -> Result<(), RemoteError>;

    /// Stores bytes made in memory (a pack) under their sha256.
    fn put_bytes(&self, sha256: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(sha256);
        std::fs::write(&path, bytes)?;
        self.put_blob(sha256, bytes.len() as u64, &path)
    }
}

/// How to reach and use a remote.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// The URL as configured (may carry credentials; never printed as is).
    pub url: String,
    /// Upload what this build makes.
    pub write: bool,
    /// Bound on each request.
    pub timeout: Duration,
    /// Registries to reach over plain HTTP (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// How long a step waits for its remote result before it builds locally.
    pub wait: Duration,
}

/// The most an action entry may weigh as the remote sends it (a 10,000-service
/// chart's record is ~1 MB): a bigger answer is a failure of the remote.
pub const ENTRY_LIMIT: u64 = 64 << 20;

/// The most a build index may weigh as the remote sends it (gzip; a
/// 10,000-service build's is ~60 MB unpacked).
pub const INDEX_LIMIT: u64 = 512 << 20;

/// The default bound on one remote request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default wait of a step for its remote result ([`RemoteOptions::wait`]).
pub const DEFAULT_WAIT: Duration = Duration::from_millis(2000);

/// Opens the remote named by `opts.url`. Only a malformed URL is an error;
/// an unreachable remote is found (and warned about) during the build.
pub fn open(opts: &RemoteOptions) -> Result<Arc<Tier>, RemoteUrlError> {
    let url = opts.url.trim();
    let bad = |reason: &str| RemoteUrlError {
        url: redact(url),
        reason: reason.to_string(),
    };
    // A token in the query would be dropped from the requests (and shown).
    if url.contains(['?', '#']) {
        return Err(bad(
            "a remote cache URL takes no query or fragment; give an HTTP cache's credentials as https://USER:TOKEN@HOST/PREFIX",
        ));
    }
    let backend: Box<dyn Backend> = if let Some(rest) = url.strip_prefix("oci://") {
        Box::new(oci::OciBackend::new(rest, opts).map_err(|e| bad(&e))?)
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Box::new(http::HttpBackend::new(url, opts.timeout).map_err(|e| bad(&e))?)
    } else {
        return Err(bad(
            "unknown scheme; use oci://HOST[:PORT]/REPO or http(s)://HOST[:PORT]/PREFIX",
        ));
    };
    Ok(Arc::new(Tier::new(backend, redact(url), opts)))
}

/// The URL as messages show it: nothing of what may hold a credential. All
/// before the last `@` (user-info, wherever a mistyped or missing scheme left
/// it, and a token with a `/` in it) and any query or fragment become `***`.
/// A digest at the end (`REPO@sha256:…`) is no user-info: it is shown, and
/// only an `@` before it hides what comes before.
pub fn redact(url: &str) -> String {
    let (url, rest) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], "?***".to_string()),
        None => (url, String::new()),
    };
    let (url, rest) = match digest_suffix(url) {
        Some((before, digest)) => (before, format!("@{digest}{rest}")),
        None => (url, rest),
    };
    let (scheme, after) = match url.split_once("://") {
        Some((scheme, after)) => (format!("{scheme}://"), after),
        None => (String::new(), url),
    };
    match after.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}{rest}"),
        None => format!("{scheme}{after}{rest}"),
    }
}

/// `URL@DIGEST` split at the digest's `@`, when what comes before is a host
/// (its port, if any, a number) and a path: anything else keeps the `@` as
/// user-info's, hidden with all before it.
fn digest_suffix(url: &str) -> Option<(&str, &str)> {
    let (before, digest) = url.rsplit_once('@')?;
    let after_scheme = before.split_once("://").map_or(before, |(_, a)| a);
    let (authority, path) = after_scheme.split_once('/')?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port_ok = host
        .rsplit_once(':')
        .is_none_or(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    (is_digest(digest) && port_ok && !path.is_empty()).then_some((before, digest))
}

/// Whether `s` is an OCI digest (`ALGORITHM:ENCODED`, e.g. `sha256:` and 64 hex
/// digits): at least 32 characters after the `:`, so never a host's port.
pub(crate) fn is_digest(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        && encoded.len() >= 32
        && encoded.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials_only() {
        assert_eq!(
            redact("https://user:s3cret@cache.example/p"),
            "https://***@cache.example/p"
        );
        assert_eq!(redact("oci://127.0.0.1:5000/c"), "oci://127.0.0.1:5000/c");
        assert_eq!(redact("cache.example:80/p"), "cache.example:80/p");
    }

    /// What users paste and mistype: a base64 token (it may hold a `/`), a
    /// scheme without its `:` or none, a token in the query.
    #[test]
    fn redact_hides_credentials_in_malformed_urls() {
        for (url, shown) in [
            (
                "http://bob:T0ken/Secret99@127.0.0.1:1/c",
                "http://***@127.0.0.1:1/c",
            ),
            (
                "https//bob:T0kenSecret99@cache.example/x",
                "***@cache.example/x",
            ),
            (
                "bob:T0kenSecret99@127.0.0.1:18551/cache",
                "***@127.0.0.1:18551/cache",
            ),
            (
                "http://cache.example/x?token=T0kenSecret99",
                "http://cache.example/x?***",
            ),
            (
                "http://cache.example/x#T0kenSecret99",
                "http://cache.example/x?***",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            let told = match open(&opts(url)) {
                Ok(_) => panic!("{url} opened"),
                Err(e) => e.to_string(),
            };
            assert!(!told.contains("T0ken"), "{told}");
        }
    }

    /// A digest's `@` is no user-info (probe 52 F6): the host and repository
    /// stay; an `@` before them still hides all before it.
    #[test]
    fn redact_shows_a_digest_and_hides_only_user_info() {
        let hex = "a".repeat(64);
        for (url, shown) in [
            (
                format!("oci://127.0.0.1:5052/repo@sha256:{hex}"),
                format!("oci://127.0.0.1:5052/repo@sha256:{hex}"),
            ),
            (
                format!("oci://bob:T0ken@127.0.0.1:5052/repo@sha256:{hex}"),
                format!("oci://***@127.0.0.1:5052/repo@sha256:{hex}"),
            ),
            (
                format!("oci://bob:t0ken/secret@sha256:{hex}"),
                format!("oci://***@sha256:{hex}"),
            ),
            (
                format!("oci://bob:t0ken@sha256:{hex}"),
                format!("oci://***@sha256:{hex}"),
            ),
        ] {
            assert_eq!(redact(&url), shown, "{url}");
        }
    }

    /// Probe 52 F6: a port out of range, a digest and a tag are refused up front,
    /// each saying what is wrong and what to give; nothing after an `@` that may
    /// be a credential is quoted.
    #[test]
    fn an_oci_url_with_a_bad_port_a_digest_or_a_tag_says_so() {
        let hex = "a".repeat(64);
        for (url, says) in [
            (
                "oci://127.0.0.1:99999/x".to_string(),
                "the port must be a number from 1 to 65535, not `99999`",
            ),
            ("oci://127.0.0.1:0/x".to_string(), "not `0`"),
            ("oci://[::1]:70000/x".to_string(), "not `70000`"),
            (
                format!("oci://127.0.0.1:5052/repo@sha256:{hex}"),
                "names one manifest by its digest",
            ),
            (
                "oci://127.0.0.1:5052/team/repo:v1".to_string(),
                "`:v1` is a tag; a remote cache names a repository",
            ),
        ] {
            let Err(err) = open(&opts(&url)) else {
                panic!("{url} opened");
            };
            let told = err.to_string();
            assert!(told.contains(says), "{url}: {told}");
        }
        let Err(err) = open(&opts(&format!("oci://127.0.0.1:5052/repo@sha256:{hex}"))) else {
            panic!("a digest opened");
        };
        let told = err.to_string();
        assert!(
            told.contains("oci://127.0.0.1:5052/repo@sha256:") && !told.contains("***"),
            "{told}"
        );
        assert!(told.contains("give oci://127.0.0.1:5052/repo"), "{told}");
        let Err(err) = open(&opts("oci://127.0.0.1:5052/team/repo:v1")) else {
            panic!("a tag opened");
        };
        assert!(
            err.to_string()
                .contains("give oci://127.0.0.1:5052/team/repo"),
            "{err}"
        );
        assert!(open(&opts("oci://[::1]:5052/x")).is_ok());
        assert!(open(&opts("oci://localhost:65535/x")).is_ok());
        for url in [
            format!("oci://bob:T0kenSecret99/x@127.0.0.1:1/c@sha256:{hex}"),
            "oci://bob:T0kenSecret99/x@127.0.0.1:1/c".to_string(),
        ] {
            let Err(err) = open(&opts(&url)) else {
                panic!("{url} opened");
            };
            let told = err.to_string();
            assert!(told.contains("takes no credentials"), "{told}");
            assert!(!told.contains("T0ken"), "{told}");
        }
    }

    #[test]
    fn an_oci_url_with_credentials_is_refused_without_quoting_them() {
        for url in [
            "oci://bob:T0kenSecret99@127.0.0.1:5061/cache",
            "oci://T0kenSecret99@127.0.0.1:5061/cache",
        ] {
            let Err(err) = open(&opts(url)) else {
                panic!("{url} opened");
            };
            let told = err.to_string();
            assert!(told.contains("takes no credentials"), "{told}");
            assert!(!told.contains("T0ken"), "{told}");
        }
        let Err(err) = open(&opts("oci://127.0.0.1:5061/Cache")) else {
            panic!("an upper-case repository opened");
        };
        let told = err.to_string();
        assert!(told.contains("is no registry repository"), "{told}");
        assert!(!told.contains("probe"), "{told}");
    }

    fn opts(url: &str) -> RemoteOptions {
        RemoteOptions {
            url: url.into(),
            write: false,
            timeout: DEFAULT_TIMEOUT,
            insecure: Vec::new(),
            wait: DEFAULT_WAIT,
        }
    }

    #[test]
    fn open_rejects_unknown_schemes_and_bad_urls() {
        let err = open(&opts("s3://bucket")).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unknown scheme"));
        assert!(
            open(&opts("oci://127.0.0.1:5000")).is_err(),
            "no repository"
        );
        assert!(open(&opts("oci://127.0.0.1:5000/cache")).is_ok());
        assert!(open(&opts("http://127.0.0.1:1/cache")).is_ok());
        let err = open(&opts("https://u:pw@[bad/x"))
            .err()
            .map(|e| e.to_string());
        assert!(
            !err.unwrap_or_default().contains("pw"),
            "credentials leaked"
        );
    }
}
