//! Registry credentials from the Docker CLI's `config.json` (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`): the `auths` map, with `auth` (base64 `user:pass`) or
//! `username`/`password`. Credential helpers (`credsStore`, `credHelpers`) are not run.
//!
//! Credentials never appear in `Debug` output or in errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::error::{io_at, OciError, Result};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of an HTTP `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Credentials per registry host, as read from a Docker `config.json`.
#[derive(Debug, Clone, Default)]
pub struct DockerAuth {
    by_host: BTreeMap<String, Credentials>,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// Normalise an `auths` key or a registry name to a bare `host[:port]`.
pub fn normalize_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_string(),
    }
}

impl DockerAuth {
    /// Read a config file; a missing file means no credentials.
    pub fn load(path: Option<&Path>) -> Result<DockerAuth> {
        let Some(path) = path else {
            return Ok(DockerAuth::default());
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DockerAuth::default()),
            Err(e) => return Err(io_at("reading", path)(e)),
        };
        // Do not echo serde's message: it may quote part of a secret.
        let file: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| {
            OciError::invalid(
                path.display().to_string(),
                format!(
                    "not a Docker config.json (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in file.auths {
            let creds = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok());
                    match decoded.as_deref().and_then(|d| d.split_once(':')) {
                        Some((user, pass)) => Credentials {
                            username: user.to_string(),
                            password: pass.to_string(),
                        },
                        None => {
                            return Err(OciError::invalid(
                                path.display().to_string(),
                                format!("the `auth` of `{key}` is not base64 of user:password"),
                            ))
                        }
                    }
                }
                (_, Some(user), Some(pass)) => Credentials {
                    username: user.clone(),
                    password: pass.clone(),
                },
                _ => continue,
            };
            by_host.insert(normalize_host(&key), creds);
        }
        Ok(DockerAuth { by_host })
    }

    /// Credentials for a registry (`host[:port]`, docker.io aliases understood).
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(&normalize_host(registry))
    }

    /// Add or replace credentials (for callers with their own source, e.g. tests or flags).
    pub fn insert(&mut self, registry: &str, credentials: Credentials) {
        self.by_host.insert(normalize_host(registry), credentials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_and_username_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},
                   "127.0.0.1:5000":{{"username":"bob","password":"pw"}}}},"credsStore":"desktop"}}"#
            ),
        )
        .unwrap();
        let cfg = DockerAuth::load(Some(&path)).unwrap();
        let hub = cfg.credentials_for("registry-1.docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(
            cfg.credentials_for("127.0.0.1:5000").unwrap().username,
            "bob"
        );
        assert!(cfg.credentials_for("example.com").is_none());
        assert!(!format!("{hub:?}").contains("s3cret"));
    }

    #[test]
    fn missing_file_is_no_credentials() {
        let cfg = DockerAuth::load(Some(Path::new("/nonexistent/config.json"))).unwrap();
        assert!(cfg.credentials_for("docker.io").is_none());
    }
}
