//! What lets someone else check an image: its SBOM (SPDX 2.3, [`spdx`]), its
//! provenance (an in-toto statement with a SLSA provenance predicate,
//! [`provenance`]) signed in a DSSE envelope ([`dsse`]) with the provenance
//! key ([`key`]), and the Debian packages of a base ([`dpkg`]). The `sbom`,
//! `packages` and `provenance` steps make them; `push` attaches them to the
//! image as OCI referrers; `scone verify` reads them back.

pub mod dpkg;
pub mod dsse;
pub mod key;
pub mod provenance;
pub mod spdx;

/// What went wrong with a key, an envelope or a statement.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("provenance key: {0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Signature(String),
}

/// JSON as scone writes its attestations: sorted keys, indented by two
/// spaces, a final newline (the same bytes for the same value).
pub fn pretty_json(value: &serde_json::Value) -> Vec<u8> {
    let sorted =
        serde_json::from_slice::<serde_json::Value>(&crate::oci::image::canonical_json(value))
            .unwrap_or_else(|_| value.clone());
    let mut out = serde_json::to_vec_pretty(&sorted).unwrap_or_default();
    out.push(b'\n');
    out
}
