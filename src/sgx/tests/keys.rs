//! Signing keys: load, generate (mode 0600, no overwrite), refuse non-SGX keys.

use super::{sig1_key, vectors_dir};
use crate::sgx::error::SgxError;
use crate::sgx::keys::{default_key_path, SigningKey};
use crate::sgx::sigstruct::{Sigstruct, SigstructParams};
use rsa::pkcs1::EncodeRsaPrivateKey;
use std::os::unix::fs::PermissionsExt;

fn write_key(dir: &std::path::Path, name: &str, bits: usize, e: u64) -> std::path::PathBuf {
    let key = rsa::PrivateKey::new_with_exp(&mut getrandom::SysRng, bits, rsa::BoxedUint::from(e))
        .expect("keygen");
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pem");
    let path = dir.join(name);
    std::fs::write(&path, pem.as_bytes()).expect("write");
    path
}

#[test]
fn sig1_key_has_its_mrsigner_and_debug_hides_it() {
    let key = sig1_key();
    let sig = Sigstruct::from_bytes(&super::vector("sig1.sigstruct.bin")).expect("1808");
    assert_eq!(key.mrsigner(), sig.mrsigner());
    let shown = format!("{key:?}");
    assert!(shown.contains(&hex::encode(key.mrsigner())));
    assert!(!shown.contains("PRIVATE"));
}

#[test]
fn generated_key_is_private_signs_and_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/scone/enclave-key.pem");
    let key = SigningKey::generate_at(&path).expect("generates");
    let meta = std::fs::metadata(&path).expect("written");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let loaded = SigningKey::load(&path).expect("loads back");
    assert_eq!(loaded.mrsigner(), key.mrsigner());
    let sig = Sigstruct::sign(&loaded, &SigstructParams::default(), &[1u8; 32]).expect("signs");
    assert!(sig.verify().is_valid());
    assert_eq!(sig.mrsigner(), key.mrsigner());
    let again = SigningKey::generate_at(&path).unwrap_err();
    assert!(matches!(again, SgxError::KeyExists(_)), "{again}");
    assert_eq!(
        SigningKey::load(&path).expect("unchanged").mrsigner(),
        key.mrsigner()
    );
    // No temp file left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn refuses_keys_that_are_not_rsa3072_e3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = write_key(dir.path(), "small.pem", 2048, 3);
    let err = SigningKey::load(&small).unwrap_err().to_string();
    assert!(
        err.contains("RSA-3072 with public exponent 3") && err.contains("RSA-2048"),
        "{err}"
    );
    let f4 = write_key(dir.path(), "f4.pem", 1024, 65537);
    let err = SigningKey::load(&f4).unwrap_err().to_string();
    assert!(err.contains("exponent 65537"), "{err}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").expect("write");
    let err = SigningKey::load(&junk).unwrap_err().to_string();
    assert!(err.contains("holds no PEM block"), "{err}");
    assert!(
        !err.contains("not a key"),
        "errors never echo key files: {err}"
    );
    let missing = SigningKey::load(&dir.path().join("missing.pem")).unwrap_err();
    assert!(matches!(missing, SgxError::Io { .. }));
}

#[test]
fn pkcs8_keys_load_too() {
    use rsa::pkcs8::EncodePrivateKey;
    let pem = std::fs::read_to_string(vectors_dir().join("sig1.key.pem")).expect("read");
    let key =
        <rsa::PrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(&pem).expect("pkcs1");
    let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs8");
    let loaded = SigningKey::from_pem(&pkcs8, std::path::Path::new("pkcs8.pem")).expect("loads");
    assert_eq!(loaded.mrsigner(), sig1_key().mrsigner());
}

#[test]
fn default_key_path_is_in_the_config_dir() {
    // SCONE_SIGNING_KEY is not set in the test environment unless a user sets it.
    let path = default_key_path().expect("a config dir exists");
    match std::env::var_os("SCONE_SIGNING_KEY") {
        Some(p) if !p.is_empty() => assert_eq!(path, std::path::PathBuf::from(p)),
        _ => assert!(
            path.ends_with("scone/enclave-key.pem"),
            "{}",
            path.display()
        ),
    }
}

#[test]
fn unsigned_bytes_are_what_sign_signs_and_another_key_cannot_sign_them() {
    let key = sig1_key();
    let params = SigstructParams::for_mode(false, 0x2024_0101);
    let unsigned = Sigstruct::unsigned(&key.modulus_le(), &params, &[7u8; 32]);
    let signed = Sigstruct::sign(&key, &params, &[7u8; 32]).expect("signs");
    assert_eq!(signed.unsigned_bytes(), unsigned);
    assert_eq!(
        Sigstruct::sign_unsigned(&key, unsigned)
            .expect("signs")
            .to_bytes(),
        signed.to_bytes(),
        "deterministic"
    );
    let (pem, text) =
        SigningKey::load_with_text(&vectors_dir().join("sig1.key.pem")).expect("loads");
    assert_eq!(pem.mrsigner(), key.mrsigner());
    assert!(text.contains("PRIVATE KEY"));
    let other = SigningKey::generate().expect("a key");
    let err = Sigstruct::sign_unsigned(&other, unsigned).unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
}
