//! The provenance signing key: Ed25519 (the default; its signatures are
//! deterministic, so two builds sign the same statement with the same bytes) or
//! ECDSA P-256 (randomized signatures), as a PKCS#8 PEM file. It is not the
//! enclave key: it says "this builder made this image", not "this enclave may
//! run". Found in `scone.toml` `[provenance] key`, else `$SCONE_PROVENANCE_KEY`,
//! else `<config dir>/scone/provenance-key.pem`, generated there on first use
//! (mode 0600, never inside `target/`). Only its public half and its key id
//! leave the file: the key id enters fingerprints, the public key verifies.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::AttestError;

/// Environment variable that overrides [`default_key_path`].
pub const KEY_ENV: &str = "SCONE_PROVENANCE_KEY";

/// Which signature scheme a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Ed25519 (RFC 8032): deterministic.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER signatures: randomized.
    EcdsaP256,
}

impl Scheme {
    /// The securesystemslib `keytype`.
    pub fn keytype(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256 => "ecdsa",
        }
    }

    /// The securesystemslib `scheme`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256 => "ecdsa-sha2-nistp256",
        }
    }
}

/// A private key for signing provenance. `Debug` prints the key id only.
pub struct ProvenanceKey {
    pair: Pair,
    public: PublicKey,
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

impl std::fmt::Debug for ProvenanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProvenanceKey {{ keyid: {} }}", self.public.keyid())
    }
}

/// The public half: what verifies an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub scheme: Scheme,
    /// Ed25519: the 32-byte key; P-256: the 65-byte uncompressed point.
    pub bytes: Vec<u8>,
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER of a PKCS#8 v1 Ed25519 private key (RFC 8410) before its 32-byte seed.
const ED25519_PKCS8_V1: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480), uncompressed point.
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Where the user's provenance key lives unless `scone.toml` names one.
pub fn default_key_path() -> Result<PathBuf, AttestError> {
    if let Some(path) = std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("scone").join("provenance-key.pem"))
        .ok_or_else(|| {
            AttestError::Key(
                "no config folder to keep the provenance key in: set SCONE_PROVENANCE_KEY or \
                 `[provenance] key` in scone.toml"
                    .into(),
            )
        })
}

/// The DER of the first PEM block labelled `label` in `text`.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// `der` as PEM with `label`, 64 characters a line.
fn to_pem(der: &[u8], label: &str) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl ProvenanceKey {
    /// Parses a PKCS#8 PEM private key (`PRIVATE KEY`): Ed25519 or P-256.
    /// `origin` names the key in errors; errors never show key material.
    pub fn from_pem(text: &str, origin: &Path) -> Result<ProvenanceKey, AttestError> {
        let unusable = |why: &str| {
            AttestError::Key(format!(
                "{}: {why}; a provenance key is an Ed25519 or ECDSA P-256 private key in \
                 PKCS#8 PEM (`openssl genpkey -algorithm ed25519 -out KEY.pem`)",
                origin.display()
            ))
        };
        if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            return Err(unusable(
                "this is a SEC1 EC key; convert it with `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        let der =
            pem_block(text, "PRIVATE KEY").ok_or_else(|| unusable("no `PRIVATE KEY` PEM block"))?;
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            let public = PublicKey {
                scheme: Scheme::Ed25519,
                bytes: pair.public_key().as_ref().to_vec(),
            };
            return Ok(ProvenanceKey {
                pair: Pair::Ed25519(pair),
                public,
            });
        }
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
            .map_err(|_| unusable("not an Ed25519 or P-256 key"))?;
        let public = PublicKey {
            scheme: Scheme::EcdsaP256,
            bytes: pair.public_key().as_ref().to_vec(),
        };
        Ok(ProvenanceKey {
            pair: Pair::EcdsaP256(pair),
            public,
        })
    }

    /// Reads the key at `path` (a regular file of a key's size).
    pub fn load(path: &Path) -> Result<ProvenanceKey, AttestError> {
        let text = crate::regular_file::read_text(path, crate::regular_file::MAX_KEY_BYTES)
            .map_err(|e| AttestError::Key(format!("{}: {e}", path.display())))?;
        Self::from_pem(&text, path)
    }

    /// Generates an Ed25519 key and stores it at `path` (PKCS#8 PEM, mode 0600,
    /// folders 0700); refuses to replace a file.
    pub fn generate_at(path: &Path) -> Result<ProvenanceKey, AttestError> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| AttestError::Key("generating an Ed25519 key failed".into()))?;
        // ring writes a PKCS#8 v2 document whose public key other tools (Python's
        // `cryptography`) refuse; the v1 form `openssl genpkey` writes holds
        // the seed only: `SEQUENCE { 0, { id-Ed25519 }, OCTET STRING { OCTET
        // STRING seed } }`.
        let seed = doc
            .as_ref()
            .get(16..48)
            .filter(|_| doc.as_ref().get(14..16) == Some(&[0x04, 0x20][..]))
            .ok_or_else(|| AttestError::Key("internal: unexpected PKCS#8 from ring".into()))?;
        let v1 = [ED25519_PKCS8_V1, seed].concat();
        let pem = to_pem(&v1, "PRIVATE KEY");
        crate::sgx::keys::write_private_file(path, pem.as_bytes())
            .map_err(|e| AttestError::Key(e.to_string()))?;
        Self::from_pem(&pem, path)
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// A signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AttestError> {
        match &self.pair {
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::EcdsaP256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| AttestError::Key("ECDSA signing failed".into())),
        }
    }
}

impl PublicKey {
    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`), as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let prefix = match self.scheme {
            Scheme::Ed25519 => ED25519_SPKI,
            Scheme::EcdsaP256 => P256_SPKI,
        };
        to_pem(&[prefix, &self.bytes].concat(), "PUBLIC KEY")
    }

    /// Parses a `PUBLIC KEY` PEM (Ed25519 or P-256).
    pub fn from_pem(text: &str) -> Result<PublicKey, AttestError> {
        let der = pem_block(text, "PUBLIC KEY").ok_or_else(|| {
            AttestError::Key(
                "no `PUBLIC KEY` PEM block (`openssl pkey -in KEY.pem -pubout` makes one)".into(),
            )
        })?;
        if let Some(bytes) = der.strip_prefix(ED25519_SPKI).filter(|b| b.len() == 32) {
            return Ok(PublicKey {
                scheme: Scheme::Ed25519,
                bytes: bytes.to_vec(),
            });
        }
        if let Some(bytes) = der.strip_prefix(P256_SPKI).filter(|b| b.len() == 65) {
            return Ok(PublicKey {
                scheme: Scheme::EcdsaP256,
                bytes: bytes.to_vec(),
            });
        }
        Err(AttestError::Key(
            "the public key is neither Ed25519 nor ECDSA P-256".into(),
        ))
    }

    /// The securesystemslib key id: the SHA-256 of the canonical JSON of
    /// `{keytype, scheme, keyval: {public}}` (`public` is the hex key for
    /// Ed25519, the PEM for ECDSA), so `SSlibKey.from_pem` finds the signature.
    pub fn keyid(&self) -> String {
        let public = match self.scheme {
            Scheme::Ed25519 => hex::encode(&self.bytes),
            Scheme::EcdsaP256 => self.to_pem(),
        };
        // OLPC canonical JSON: sorted keys, no spaces, only `"` and `\` escaped.
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let text = format!(
            "{{\"keytype\":{},\"keyval\":{{\"public\":{}}},\"scheme\":{}}}",
            quote(self.scheme.keytype()),
            quote(&public),
            quote(self.scheme.name())
        );
        crate::oci::digest::sha256_digest(text.as_bytes())
            .trim_start_matches("sha256:")
            .to_string()
    }

    /// Whether `sig` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.scheme {
            Scheme::Ed25519 => &signature::ED25519,
            Scheme::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
        };
        signature::UnparsedPublicKey::new(alg, &self.bytes)
            .verify(message, sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_deterministically_and_its_public_pem_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k").join("provenance.pem");
        let key = ProvenanceKey::generate_at(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(ProvenanceKey::generate_at(&path).is_err(), "never replaced");
        let again = ProvenanceKey::load(&path).unwrap();
        let (a, b) = (key.sign(b"m").unwrap(), again.sign(b"m").unwrap());
        assert_eq!(a, b, "Ed25519 is deterministic");
        assert!(key.public().verify(b"m", &a));
        assert!(!key.public().verify(b"n", &a));
        let back = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(&back, key.public());
        assert_eq!(key.public().keyid().len(), 64);
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn an_ecdsa_key_signs_and_verifies_and_other_keys_are_refused() {
        let rng = SystemRandom::new();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pem = to_pem(doc.as_ref(), "PRIVATE KEY");
        let key = ProvenanceKey::from_pem(&pem, Path::new("k.pem")).unwrap();
        assert_eq!(key.public().scheme, Scheme::EcdsaP256);
        let sig = key.sign(b"statement").unwrap();
        assert!(key.public().verify(b"statement", &sig));
        let back = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(&back, key.public());
        let rsa = std::fs::read_to_string(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sgx/sig1.key.pem"),
        )
        .unwrap();
        let err = ProvenanceKey::from_pem(&rsa, Path::new("sig1.key.pem")).unwrap_err();
        assert!(err.to_string().contains("sig1.key.pem"), "{err}");
        assert!(!err.to_string().contains("MII"), "no key material: {err}");
    }
}
