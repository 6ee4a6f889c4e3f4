//! The Bazel HTTP cache protocol: `GET/PUT/HEAD {prefix}/ac/<key>` for action
//! entries and `{prefix}/cas/<sha256>` for blobs. bazel-remote, BuildBuddy-style
//! caches and a plain nginx with WebDAV `PUT` all speak it.
//!
//! Our `ac` values are [`Entry`] JSON, not Bazel `ActionResult` protobufs, so
//! bazel-remote needs `--disable_http_ac_validation`. The build index
//! ([`super::index`]) is an `ac` value too, under its plan's key; packs are `cas`
//! blobs. Credentials come from the
//! URL's user-info (`https://user:token@host/prefix`) and go out as basic auth.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use super::{Backend, Entry, RemoteError};

/// See the module documentation.
pub struct HttpBackend {
    http: Client,
    /// `scheme://host[:port]/prefix`, no user-info, no trailing slash.
    base: String,
    basic: Option<(String, String)>,
}

impl HttpBackend {
    pub fn new(url: &str, timeout: Duration) -> Result<HttpBackend, String> {
        crate::oci::registry::install_crypto_provider();
        let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if parsed.host_str().is_none() {
            return Err("the URL has no host".into());
        }
        let basic = (!parsed.username().is_empty()).then(|| {
            (
                percent_decode(parsed.username()),
                percent_decode(parsed.password().unwrap_or("")),
            )
        });
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_query(None);
        parsed.set_fragment(None);
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let http = Client::builder()
            .user_agent(format!("scone/{}", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpBackend { http, base, basic })
    }

    fn url(&self, kind: &str, key: &str) -> String {
        format!("{}/{kind}/{key}", self.base)
    }

    fn send(&self, what: &str, request: RequestBuilder) -> Result<Response, RemoteError> {
        let request = match &self.basic {
            Some((user, pass)) => request.basic_auth(user, Some(pass)),
            None => request,
        };
        request
            .send()
            .map_err(|e| RemoteError::Transport(format!("{what}: {}", crate::cause::of_request(e))))
    }

    fn status(what: &str, response: &Response) -> RemoteError {
        RemoteError::Status {
            what: what.to_string(),
            status: response.status().as_u16(),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Backend for HttpBackend {
    fn get_entry(&self, fingerprint: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_small("reading an action entry", fingerprint, super::ENTRY_LIMIT)
    }

    fn get_blob(&self, sha256: &str, out: &mut dyn Write) -> Result<bool, RemoteError> {
        self.get("downloading a blob", "cas", sha256, out)
    }

    fn has_blob(&self, sha256: &str) -> Result<bool, RemoteError> {
        let what = "checking a blob";
        let response = self.send(what, self.http.head(self.url("cas", sha256)))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(Self::status(what, &response)),
        }
    }

    fn put_blob(&self, sha256: &str, size: u64, path: &Path) -> Result<(), RemoteError> {
        let what = "uploading a blob";
        let body = File::open(path)?;
        let response = self.send(
            what,
            self.http
                .put(self.url("cas", sha256))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::blocking::Body::sized(body, size)),
        )?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::status(what, &response))
        }
    }

    fn put_entry(&self, fingerprint: &str, entry: &Entry) -> Result<(), RemoteError> {
        self.put(
            "uploading an action entry",
            "ac",
            fingerprint,
            entry.to_bytes(),
        )
    }

    fn get_index(&self, scope: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get_small("reading the build index", scope, super::INDEX_LIMIT)
    }

    fn put_index(
        &self,
        scope: &str,
        bytes: &[u8],
        _stored: &[super::pack::PackInfo],
    ) -> Result<(), RemoteError> {
        self.put("uploading the build index", "ac", scope, bytes.to_vec())
    }

    fn put_bytes(&self, sha256: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        self.put("uploading a pack", "cas", sha256, bytes.to_vec())
    }
}

impl HttpBackend {
    /// An `ac` value, refused past `limit` bytes.
    fn get_small(&self, what: &str, key: &str, limit: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        let response = self.send(what, self.http.get(self.url("ac", key)))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => crate::bounded::body(response, limit)
                .map(Some)
                .map_err(|e| RemoteError::Transport(format!("{what}: {e}"))),
            _ => Err(Self::status(what, &response)),
        }
    }

    fn get(
        &self,
        what: &str,
        kind: &str,
        key: &str,
        out: &mut dyn Write,
    ) -> Result<bool, RemoteError> {
        let mut response = self.send(what, self.http.get(self.url(kind, key)))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => {
                response.copy_to(out).map_err(|e| {
                    RemoteError::Transport(format!("{what}: {}", crate::cause::of_request(e)))
                })?;
                Ok(true)
            }
            _ => Err(Self::status(what, &response)),
        }
    }

    fn put(&self, what: &str, kind: &str, key: &str, body: Vec<u8>) -> Result<(), RemoteError> {
        let response = self.send(
            what,
            self.http
                .put(self.url(kind, key))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
        )?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Self::status(what, &response))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_drops_credentials_and_trailing_slash() {
        let b = HttpBackend::new(
            "http://u:p%40ss@127.0.0.1:8080/cache/",
            Duration::from_secs(1),
        )
        .map_err(|e| e.to_string());
        let b = match b {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(b.base, "http://127.0.0.1:8080/cache");
        assert_eq!(b.url("ac", "ab"), "http://127.0.0.1:8080/cache/ac/ab");
        assert_eq!(b.basic, Some(("u".to_string(), "p@ss".to_string())));
    }
}
