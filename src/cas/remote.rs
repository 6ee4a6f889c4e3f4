//! The remote CAS client: uploads sessions over HTTPS with the user's client
//! certificate (rustls), reads a session's current hash, and turns TLS, ownership
//! and predecessor failures into errors that say what to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::CasError;
use super::local;
use super::session::{parse_session, with_predecessor};
use super::tls::{default_config_dir, ClientIdentity};
use super::{Cas, SessionRecord};

/// Port of the CAS client API when a URL names none.
pub const DEFAULT_CAS_PORT: u16 = 8081;

/// Turns a mesh's `cas_url` (`host`, `host:port` or `https://host[:port]`) into a
/// base URL `https://host:port` without a trailing slash.
pub fn normalize_url(url: &str) -> Result<String, CasError> {
    let bad = |detail: &str| CasError::InvalidUrl {
        url: url.to_string(),
        detail: detail.to_string(),
    };
    let trimmed = url.trim().trim_end_matches('/');
    let rest = match trimmed.split_once("://") {
        Some(("https", rest)) => rest,
        Some((_, _)) => return Err(bad("a CAS is reached over https only")),
        None => trimmed,
    };
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad("expected host[:port], optionally after https://"));
    }
    let has_port = match rest.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':') && (!host.contains(':') || host.ends_with(']')) =>
        {
            port.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?;
            true
        }
        _ => false,
    };
    Ok(if has_port {
        format!("https://{rest}")
    } else {
        format!("https://{rest}:{DEFAULT_CAS_PORT}")
    })
}

/// The CA certificate to trust when none is given: `<config dir>/ca.crt` if it
/// exists, else the CA of the local `scone cas serve` (`<local CAS dir>/tls/ca.crt`)
/// if that exists.
pub fn default_ca_file(config_dir: &Path) -> Option<PathBuf> {
    let configured = config_dir.join("ca.crt");
    if configured.is_file() {
        return Some(configured);
    }
    let served = local::default_dir().ok()?.join("tls").join("ca.crt");
    served.is_file().then_some(served)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    msg: String,
    #[serde(default)]
    current: Option<String>,
}

#[derive(Deserialize)]
struct HashBody {
    hash: String,
}

#[derive(Deserialize)]
struct SessionBody {
    name: String,
    hash: String,
    session: String,
}

/// A CAS reached over HTTPS.
#[derive(Debug)]
pub struct RemoteCas {
    base: String,
    trust: String,
    client: reqwest::blocking::Client,
}

impl RemoteCas {
    /// Connects to `url` presenting `identity`, trusting only `ca_pem` when given
    /// (else the system's roots). Nothing is sent until the first request.
    /// Must not be called from async code (it builds a blocking client).
    pub fn connect(
        url: &str,
        identity: &ClientIdentity,
        ca_pem: Option<&str>,
    ) -> Result<RemoteCas, CasError> {
        let base = normalize_url(url)?;
        // reqwest needs a process-wide provider; another part may have installed it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .https_only(true);
        let (builder, trust) = match ca_pem {
            Some(ca) => (
                builder.tls_backend_preconfigured(identity.client_config(ca)?),
                "the given CA file".to_string(),
            ),
            None => {
                let pem = format!("{}\n{}", identity.cert_pem, identity.key_pem);
                let id = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
                    CasError::Identity(format!("the client certificate or key is unusable: {e}"))
                })?;
                (
                    builder.tls_backend_rustls().identity(id),
                    "the system's roots".to_string(),
                )
            }
        };
        let client = builder.build().map_err(|e| {
            CasError::Identity(format!(
                "cannot set up the HTTPS client: {}",
                crate::cause::with_causes(&e)
            ))
        })?;
        Ok(RemoteCas {
            base,
            trust,
            client,
        })
    }

    /// Connects with the client identity of the CAS config directory
    /// ([`default_config_dir`]; created on first use) and `ca_file`, or
    /// [`default_ca_file`] when `None`.
    pub fn connect_default(url: &str, ca_file: Option<&Path>) -> Result<RemoteCas, CasError> {
        let config_dir = default_config_dir()?;
        let identity = ClientIdentity::load_or_create(&config_dir)?;
        let ca_path = ca_file
            .map(Path::to_path_buf)
            .or_else(|| default_ca_file(&config_dir));
        let ca_pem = match &ca_path {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| CasError::io("read CA file", path, e))?,
            ),
            None => None,
        };
        let mut cas = Self::connect(url, &identity, ca_pem.as_deref())?;
        if let Some(path) = ca_path {
            cas.trust = path.display().to_string();
        }
        Ok(cas)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn transport_error(&self, err: &reqwest::Error) -> CasError {
        let detail = crate::cause::with_causes(err);
        let lower = detail.to_lowercase();
        let tls = [
            "certificate",
            "tls",
            "handshake",
            "alert",
            "unknownissuer",
            "badsignature",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if tls {
            CasError::Tls {
                url: self.base.clone(),
                detail,
                ca: self.trust.clone(),
            }
        } else {
            CasError::Unreachable {
                url: self.base.clone(),
                detail,
            }
        }
    }

    fn failure(&self, name: &str, status: u16, body: &str, given: Option<&str>) -> CasError {
        let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
        let msg = parsed
            .as_ref()
            .map(|b| b.msg.clone())
            .unwrap_or_else(|| body.chars().take(500).collect());
        match status {
            409 => CasError::PredecessorConflict {
                name: name.to_string(),
                given: given.map(str::to_string),
                current: parsed.and_then(|b| b.current),
            },
            401 | 403 => CasError::NotOwner {
                name: name.to_string(),
                detail: msg,
            },
            400 => CasError::InvalidSession(msg),
            404 => CasError::NotFound {
                name: name.to_string(),
            },
            _ => CasError::Server {
                url: self.base.clone(),
                status,
                message: msg,
            },
        }
    }
}

impl Cas for RemoteCas {
    fn upload(&self, session_yaml: &str, predecessor: Option<&str>) -> Result<String, CasError> {
        let yaml = with_predecessor(session_yaml, predecessor);
        let name = parse_session(&yaml)?.name;
        let response = self
            .client
            .post(format!("{}/session", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(yaml)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = response.text().map_err(|e| self.transport_error(&e))?;
        if status != 201 && status != 200 {
            return Err(self.failure(&name, status, &body, predecessor));
        }
        let parsed: HashBody = serde_json::from_str(&body).map_err(|_| CasError::Server {
            url: self.base.clone(),
            status,
            message: "the answer holds no session hash".to_string(),
        })?;
        Ok(parsed.hash)
    }

    fn session(&self, name: &str) -> Result<Option<SessionRecord>, CasError> {
        super::session::check_session_name(name)?;
        let response = self
            .client
            .get(format!("{}/v1/sessions/{name}", self.base))
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = response.text().map_err(|e| self.transport_error(&e))?;
        match status {
            200 => {
                let parsed: SessionBody =
                    serde_json::from_str(&body).map_err(|_| CasError::Server {
                        url: self.base.clone(),
                        status,
                        message: "the answer holds no session".to_string(),
                    })?;
                Ok(Some(SessionRecord {
                    name: parsed.name,
                    hash: parsed.hash,
                    yaml: parsed.session,
                    project: None,
                }))
            }
            404 => Ok(None),
            _ => Err(self.failure(name, status, &body, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_urls_are_normalized() {
        assert_eq!(
            normalize_url("edge.scone-cas.cf").expect("ok"),
            "https://edge.scone-cas.cf:8081"
        );
        assert_eq!(
            normalize_url("127.0.0.1:9000").expect("ok"),
            "https://127.0.0.1:9000"
        );
        assert_eq!(
            normalize_url("https://cas:1/").expect("ok"),
            "https://cas:1"
        );
        assert_eq!(normalize_url("[::1]:9").expect("ok"), "https://[::1]:9");
        assert!(normalize_url("http://cas").is_err());
        assert!(normalize_url("cas:port").is_err());
        assert!(normalize_url("").is_err());
    }
}
