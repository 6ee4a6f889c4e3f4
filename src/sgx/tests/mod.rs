//! Unit tests of the SGX module against the public vectors, an independent
//! implementation (Fortanix `sgxs`), and real ELF binaries of this machine.

mod fortanix;
mod keys;
mod layout;
mod vectors;

use std::path::PathBuf;

/// `fixtures/sgx`: the public vectors (see its README for their source).
pub(crate) fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sgx"))
}

/// Reads a vector file.
pub(super) fn vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The public test key `sig1.key.pem`.
pub(crate) fn sig1_key() -> super::keys::SigningKey {
    let path = vectors_dir().join("sig1.key.pem");
    super::keys::SigningKey::load(&path).expect("sig1 key loads")
}

/// A real x86-64 ELF of this machine (PIE on Debian).
pub(super) fn system_elf() -> Vec<u8> {
    std::fs::read("/bin/ls").expect("/bin/ls exists")
}
