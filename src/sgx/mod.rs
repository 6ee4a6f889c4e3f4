//! SGX enclave measurement (MRENCLAVE), SIGSTRUCT signing and verification, the
//! scone enclave layout, and file-system protection tags.
//!
//! Everything here is pure computation over bytes in memory, except where a function
//! names a path ([`keys::SigningKey::load`], [`keys::SigningKey::generate_at`],
//! [`output::write_enclave_dir`]). No SGX hardware is needed. The layout, the `.sgxs`
//! stream and the fspf serialization are documented in `docs/enclave.md`.

pub mod elf;
pub mod entry;
pub mod error;
pub mod fspf;
pub mod keys;
pub mod layout;
pub mod measure;
pub mod output;
pub mod sigstruct;

pub use error::SgxError;
pub use fspf::{fspf_tag, FspfEntry};
pub use keys::{default_key_path, SigningKey};
pub use layout::{build_enclave, Enclave, EnclaveSettings};
pub use sigstruct::{Sigstruct, SigstructParams, Verification};

#[cfg(test)]
pub(crate) mod tests;
