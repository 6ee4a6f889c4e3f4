//! Checking a build against what is deployed, and an image on its own:
//! the model of a check ([`Check`]), an image's enclave recomputed from its
//! layers without SGX ([`image`]), what a session says of a service
//! ([`session`]), which files differ between two layers ([`layers`]).
//! `scone verify` (`src/cli/verify.rs`) puts them together.

pub mod image;
pub mod layers;
pub mod session;

use serde::Serialize;

/// One comparison: a field of a subject (a service, a session, an image), the
/// value the build (or the recomputation) gives and the one found where it
/// is deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A service's `build.name`, a session's namespace, or an image reference.
    pub subject: String,
    /// What is compared: `image digest`, `MRENCLAVE`, `SIGSTRUCT`, …
    pub field: String,
    /// Where the deployed value was read: `scone.lock`, `registry`, `CAS`, …
    pub place: String,
    /// What it should be.
    pub expected: String,
    /// What was found (`(none)` when there is nothing).
    pub found: String,
    pub ok: bool,
    /// When it does not match: the likely cause and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl Check {
    /// A comparison of `expected` with `found`; `cause` is kept only when
    /// they differ.
    pub fn compare(
        subject: impl Into<String>,
        field: impl Into<String>,
        place: impl Into<String>,
        expected: impl Into<String>,
        found: Option<&str>,
        cause: impl FnOnce() -> String,
    ) -> Check {
        let expected = expected.into();
        let ok = found == Some(expected.as_str());
        Check {
            subject: subject.into(),
            field: field.into(),
            place: place.into(),
            expected,
            found: found.unwrap_or(NONE).to_string(),
            ok,
            cause: (!ok).then(cause),
        }
    }

    /// A check that holds or not, with a statement of what was found.
    pub fn holds(
        subject: impl Into<String>,
        field: impl Into<String>,
        place: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
        ok: bool,
        cause: impl FnOnce() -> String,
    ) -> Check {
        Check {
            subject: subject.into(),
            field: field.into(),
            place: place.into(),
            expected: expected.into(),
            found: found.into(),
            ok,
            cause: (!ok).then(cause),
        }
    }
}

/// What a check shows when nothing was found.
pub const NONE: &str = "(none)";

/// A value as a table shows it: a SHA-256 digest cut to 12 hex digits.
pub fn short(value: &str) -> String {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = if value.starts_with("sha256:") {
            "sha256:"
        } else {
            ""
        };
        format!("{prefix}{}…", &hex[..12])
    } else {
        value.to_string()
    }
}
