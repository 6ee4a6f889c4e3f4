//! Secret values the CAS generates for a session's declarations: random ascii or
//! binary of the declared size. Values never appear in `Debug` output or errors.

use super::error::CasError;
use super::session::SecretKind;

/// Size CAS uses when a declaration gives none.
pub const DEFAULT_SECRET_SIZE: u32 = 32;

/// Alphabet of generated ascii secrets: letters and digits, so values are safe in
/// environment variables, command lines and URLs without quoting.
const ASCII_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The value of one secret. `Debug` prints only its kind and length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    kind: SecretKind,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretValue({}, {} bytes, <redacted>)",
            self.kind.as_str(),
            self.bytes.len()
        )
    }
}

impl SecretValue {
    /// Wraps a value of `kind`.
    pub fn new(kind: SecretKind, bytes: Vec<u8>) -> Self {
        SecretValue { kind, bytes }
    }

    /// Its kind.
    pub fn kind(&self) -> &SecretKind {
        &self.kind
    }

    /// The raw value, to inject into a process (never to print).
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as text when it is valid UTF-8 (always for ascii secrets).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

fn random_bytes(len: usize) -> Result<Vec<u8>, CasError> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|e| CasError::Random(e.to_string()))?;
    Ok(buf)
}

/// Generates a value for a declaration: `size` random alphanumeric characters for
/// ascii, `size` random bytes for binary; `None` for other kinds, which the local
/// CAS keeps declared but opaque.
pub fn generate(kind: &SecretKind, size: Option<u32>) -> Result<Option<SecretValue>, CasError> {
    let len = size.unwrap_or(DEFAULT_SECRET_SIZE) as usize;
    match kind {
        SecretKind::Binary => Ok(Some(SecretValue::new(kind.clone(), random_bytes(len)?))),
        SecretKind::Ascii => {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - (256 % ASCII_ALPHABET.len());
            let mut out = Vec::with_capacity(len);
            while out.len() < len {
                for b in random_bytes(len * 2)? {
                    if (b as usize) < limit && out.len() < len {
                        out.push(ASCII_ALPHABET[b as usize % ASCII_ALPHABET.len()]);
                    }
                }
            }
            Ok(Some(SecretValue::new(kind.clone(), out)))
        }
        SecretKind::Other(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_declared_kind_and_size() {
        let ascii = generate(&SecretKind::Ascii, Some(10))
            .expect("rng")
            .expect("ascii");
        assert_eq!(ascii.expose_bytes().len(), 10);
        assert!(ascii.expose_bytes().iter().all(u8::is_ascii_alphanumeric));
        let binary = generate(&SecretKind::Binary, None)
            .expect("rng")
            .expect("binary");
        assert_eq!(binary.expose_bytes().len(), DEFAULT_SECRET_SIZE as usize);
        assert!(generate(&SecretKind::Other("x509".into()), None)
            .expect("rng")
            .is_none());
        let again = generate(&SecretKind::Ascii, Some(10))
            .expect("rng")
            .expect("ascii");
        assert_ne!(ascii, again, "two draws of 10 alphanumerics differ");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::new(SecretKind::Ascii, b"hunter2hunter2".to_vec());
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("14 bytes"));
    }
}
