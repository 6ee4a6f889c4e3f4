//! DSSE (Dead Simple Signing Envelope, v1.0): the signature over a payload and
//! its type, as in-toto attestations carry it. The signed bytes are the
//! pre-authentication encoding `DSSEv1 <len type> <type> <len body> <body>`;
//! the envelope is JSON with the payload and signatures in base64.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::key::{ProvenanceKey, PublicKey};
use super::AttestError;

/// The payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The media type of an envelope (an OCI layer or artifact blob).
pub const MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// The pre-authentication encoding of `payload` of `payload_type`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id (see [`PublicKey::keyid`]).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    /// `payload` signed with `key`.
    pub fn sign(
        payload: &[u8],
        payload_type: &str,
        key: &ProvenanceKey,
    ) -> Result<Envelope, AttestError> {
        let sig = key.sign(&pae(payload_type, payload))?;
        Ok(Envelope {
            payload: b64().encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                keyid: key.public().keyid(),
                sig: b64().encode(sig),
            }],
        })
    }

    /// The JSON text: sorted keys, indented, a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses an envelope.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, AttestError> {
        serde_json::from_slice(bytes)
            .map_err(|e| AttestError::Invalid(format!("not a DSSE envelope: {e}")))
    }

    /// The payload bytes.
    pub fn payload(&self) -> Result<Vec<u8>, AttestError> {
        b64()
            .decode(&self.payload)
            .map_err(|e| AttestError::Invalid(format!("the envelope's payload is not base64: {e}")))
    }

    /// Whether a signature of `key` over the payload verifies (signatures of
    /// other keys are skipped).
    pub fn verify(&self, key: &PublicKey) -> Result<(), AttestError> {
        let payload = self.payload()?;
        let signed = pae(&self.payload_type, &payload);
        let keyid = key.keyid();
        let mut of_key = 0;
        for s in &self.signatures {
            if !s.keyid.is_empty() && s.keyid != keyid {
                continue;
            }
            of_key += 1;
            if let Ok(sig) = b64().decode(&s.sig) {
                if key.verify(&signed, &sig) {
                    return Ok(());
                }
            }
        }
        Err(AttestError::Signature(if of_key == 0 {
            format!("the envelope has no signature of key {keyid}")
        } else {
            format!("the signature of key {keyid} does not verify: the envelope was changed")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        // The example of the DSSE specification (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn an_envelope_verifies_and_a_changed_byte_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = ProvenanceKey::generate_at(&dir.path().join("k.pem")).unwrap();
        let env = Envelope::sign(b"{\"a\":1}", PAYLOAD_TYPE, &key).unwrap();
        let parsed = Envelope::parse(&env.to_json()).unwrap();
        assert_eq!(parsed, env);
        parsed.verify(key.public()).unwrap();
        let mut changed = parsed.clone();
        changed.payload = b64().encode(b"{\"a\":2}");
        assert!(changed.verify(key.public()).is_err());
        let other = ProvenanceKey::generate_at(&dir.path().join("o.pem")).unwrap();
        let err = parsed.verify(other.public()).unwrap_err();
        assert!(err.to_string().contains("no signature"), "{err}");
    }
}
