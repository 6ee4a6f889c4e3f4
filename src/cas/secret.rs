//! Secret values the CAS generates for a session's declarations: random ascii or
//! binary of the declared size, within the documented bounds ([`MAX_SECRET_SIZE`]
//! per secret, [`MAX_SESSION_SECRET_BYTES`] per session), which are checked before
//! anything is allocated. Values never appear in `Debug` output or errors.

use super::error::CasError;
use super::session::SecretKind;

/// Size CAS uses when a declaration gives none.
pub const DEFAULT_SECRET_SIZE: u32 = 32;

/// Largest size a secret may declare: 65536 characters (ascii) or bytes (binary).
/// Keys, tokens and passwords are far smaller; larger data belongs in a file.
pub const MAX_SECRET_SIZE: u32 = 64 << 10;

/// Largest total of the sizes one session's generated secrets (ascii and binary)
/// may declare, a missing size counting as [`DEFAULT_SECRET_SIZE`]: 1048576.
pub const MAX_SESSION_SECRET_BYTES: u64 = 1 << 20;

/// Whether CAS generates a value for secrets of `kind` (ascii and binary).
pub fn is_generated(kind: &str) -> bool {
    matches!(kind, "ascii" | "binary")
}

/// Checks one declared size against [`MAX_SECRET_SIZE`].
pub fn check_size(name: &str, size: u32) -> Result<(), CasError> {
    if size > MAX_SECRET_SIZE {
        return Err(CasError::InvalidSession(format!(
            "secret `{name}` declares size {size}, more than the maximum of \
             {MAX_SECRET_SIZE}; declare at most {MAX_SECRET_SIZE} (characters for ascii, \
             bytes for binary)"
        )));
    }
    Ok(())
}

/// Checks a session's secret declarations (name, kind, size) against
/// [`MAX_SECRET_SIZE`] and [`MAX_SESSION_SECRET_BYTES`], before any is generated.
pub fn check_declarations<'a>(
    declarations: impl IntoIterator<Item = (&'a str, &'a str, Option<u32>)>,
) -> Result<(), CasError> {
    let mut total: u64 = 0;
    for (name, kind, size) in declarations {
        if let Some(size) = size {
            check_size(name, size)?;
        }
        if is_generated(kind) {
            total += u64::from(size.unwrap_or(DEFAULT_SECRET_SIZE));
        }
    }
    if total > MAX_SESSION_SECRET_BYTES {
        return Err(CasError::InvalidSession(format!(
            "the session's secrets declare {total} characters or bytes in all, more than the \
             maximum of {MAX_SESSION_SECRET_BYTES}; declare fewer or smaller secrets"
        )));
    }
    Ok(())
}

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
/// CAS keeps declared but opaque. A size past [`MAX_SECRET_SIZE`] is an error.
pub fn generate(kind: &SecretKind, size: Option<u32>) -> Result<Option<SecretValue>, CasError> {
    let size = size.unwrap_or(DEFAULT_SECRET_SIZE);
    check_size("<generated>", size)?;
    let len = size as usize;
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
    fn sizes_past_the_maximum_are_refused_before_generating() {
        for kind in [SecretKind::Ascii, SecretKind::Binary] {
            let max = generate(&kind, Some(MAX_SECRET_SIZE))
                .expect("the maximum is allowed")
                .expect("a value");
            assert_eq!(max.expose_bytes().len(), MAX_SECRET_SIZE as usize);
            let err = generate(&kind, Some(u32::MAX)).expect_err("refused");
            assert!(err.to_string().contains("65536"), "{err}");
        }
        let ok = [("a", "ascii", Some(MAX_SECRET_SIZE)), ("b", "x509", None)];
        check_declarations(ok).expect("one maximal secret");
        let too_big = [("a", "binary", Some(MAX_SECRET_SIZE + 1))];
        assert!(check_declarations(too_big).is_err());
        // 16 of the maximum are exactly the session total; one default secret more is not.
        let names: Vec<String> = (0..17).map(|i| format!("s{i}")).collect();
        let full = names[..16]
            .iter()
            .map(|n| (n.as_str(), "binary", Some(MAX_SECRET_SIZE)));
        check_declarations(full.clone()).expect("exactly the total");
        let over = full.chain([("extra", "ascii", None)]);
        let err = check_declarations(over).expect_err("past the total");
        assert!(err.to_string().contains("1048576"), "{err}");
        // Opaque kinds generate nothing and do not count.
        let opaque = names
            .iter()
            .map(|n| (n.as_str(), "x509", Some(MAX_SECRET_SIZE)));
        check_declarations(opaque).expect("opaque kinds are not generated");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::new(SecretKind::Ascii, b"hunter2hunter2".to_vec());
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("14 bytes"));
    }
}
