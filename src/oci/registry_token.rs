//! Registry authentication: a `WWW-Authenticate` challenge answered with the
//! Docker config's credentials — basic, or a bearer token fetched from the
//! challenge's realm (the token service's answer read up to 1 MiB).

use std::collections::HashMap;

use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;

use super::{OciError, Reference, RegistryClient, Result};

/// The largest token-service answer read.
const TOKEN_LIMIT: u64 = 1 << 20;

impl RegistryClient {
    /// The `Authorization` header that answers `challenge` (a 401's
    /// `WWW-Authenticate`) for `scope` (`pull`, `pull,push`) of `reference`'s
    /// repository.
    pub(super) fn authenticate(
        &self,
        reference: &Reference,
        scope: &str,
        challenge: &str,
        status: StatusCode,
    ) -> Result<String> {
        let creds = self.auth.credentials_for(&reference.registry);
        let refused = || OciError::AuthRefused {
            registry: reference.registry.clone(),
            status: status.as_u16(),
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return creds.map(|c| c.basic_header()).ok_or_else(refused);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(refused());
        }
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| Self::err(reference, "bearer challenge without a realm"))?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        query.push((
            "scope",
            format!("repository:{}:{scope}", reference.repository),
        ));
        let url = reqwest::Url::parse_with_params(realm, &query)
            .map_err(|e| Self::err(reference, format!("bad token realm: {e}")))?;
        let mut request = self.http.get(url);
        if let Some(c) = creds {
            request = request.header(AUTHORIZATION, c.basic_header());
        }
        let response = request.send().map_err(|e| {
            Self::err(
                reference,
                format!("token request failed: {}", crate::cause::of_request(e)),
            )
        })?;
        if !response.status().is_success() {
            return Err(OciError::AuthRefused {
                registry: reference.registry.clone(),
                status: response.status().as_u16(),
            });
        }
        // A token is a few kB: a realm that sends more is no token service.
        let body = crate::bounded::body(response, TOKEN_LIMIT)
            .map_err(|e| Self::err(reference, format!("reading the token: {e}")))?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Self::err(reference, format!("token response is not JSON: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| Self::err(reference, "token response has no token"))?;
        Ok(format!("Bearer {token}"))
    }
}

/// Parses `key="value", key2="value2"` of a WWW-Authenticate challenge.
pub(super) fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = after.trim_start_matches(',').trim();
    }
    out
}
