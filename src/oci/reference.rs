//! Registry image references: `[host[:port]/]repo[:tag][@sha256:…]`, with Docker Hub
//! defaults (`python` → `docker.io/library/python:latest`).

use std::fmt;

use super::digest::digest_hex;
use super::error::{OciError, Result};

/// A parsed registry reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Reference {
    /// `host[:port]` (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path, e.g. `library/python` or `cicd/python_hello_user`.
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// `sha256:` digest, if given.
    pub digest: Option<String>,
}

fn valid_component(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && part.as_bytes()[0].is_ascii_alphanumeric()
}

impl Reference {
    /// Parse a reference; `docker.io` and `library/` are filled in for Docker Hub names.
    pub fn parse(input: &str) -> Result<Reference> {
        let bad = |reason: &str| OciError::BadReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        let (name, digest) = match input.split_once('@') {
            Some((n, d)) => {
                digest_hex(d).map_err(|_| bad("the digest must be sha256:<64 hex digits>"))?;
                (n, Some(d.to_string()))
            }
            None => (input, None),
        };
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                let ok = !tag.is_empty()
                    && tag.len() <= 128
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(bad("a tag is up to 128 letters, digits, `.`, `_` or `-`"));
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io".to_string()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository names are lowercase letters, digits, `.`, `_`, `-` separated by `/`",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the API lives on (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// What goes after `/manifests/`: the digest if any, else the tag, else `latest`.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository at another digest.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// Whether the registry is on the loopback interface (plain HTTP, as Docker does).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_defaults() {
        let r = Reference::parse("python:3.11").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/python");
        assert_eq!(r.tag.as_deref(), Some("3.11"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/python:3.11");
    }

    #[test]
    fn host_port_tag_and_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r =
            Reference::parse(&format!("registry.scontain.com:5050/cicd/app:latest@{d}")).unwrap();
        assert_eq!(r.registry, "registry.scontain.com:5050");
        assert_eq!(r.repository, "cicd/app");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.manifest_ref(), d);
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert!(r.is_loopback());
        assert_eq!(r.manifest_ref(), "latest");
        assert!(Reference::parse("127.0.0.1:5000/a/b:t")
            .unwrap()
            .is_loopback());
        assert!(!Reference::parse("example.com/a").unwrap().is_loopback());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Upper/case",
            "repo:",
            "repo@sha256:abc",
            "a//b",
            "host.com/:tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
