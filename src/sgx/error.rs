//! The error type of the SGX module: every failure names what was wrong (the variable,
//! the file, the field) and never carries key material.

use std::path::PathBuf;

/// Everything that can go wrong while measuring, signing or verifying an enclave.
#[derive(Debug, thiserror::Error)]
pub enum SgxError {
    /// An enclave setting (a `SCONE_*` variable) has a value we cannot use.
    #[error("invalid {name}={value:?}: {reason}")]
    InvalidSetting {
        /// The variable, e.g. `SCONE_HEAP`.
        name: String,
        /// The value as given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The entry binary is not an ELF file we can measure.
    #[error("entry binary is not a measurable ELF file: {0}")]
    Elf(String),
    /// The program of `command` is not an executable file in the image.
    #[error(
        "entry binary `{program}` not found in the image (looked at {searched}); set build.binary"
    )]
    EntryNotFound {
        /// The first word of `command`.
        program: String,
        /// The in-image paths tried.
        searched: String,
    },
    /// The enclave layout does not fit (sizes overflow or exceed the supported maximum).
    #[error("enclave layout: {0}")]
    Layout(String),
    /// An `.sgxs` measurement stream is malformed.
    #[error("invalid SGXS stream at byte {offset}: {reason}")]
    Sgxs {
        /// Byte offset of the offending record.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A SIGSTRUCT has the wrong size.
    #[error("a SIGSTRUCT is 1808 bytes, this one has {0}")]
    SigstructSize(usize),
    /// A date for the SIGSTRUCT is invalid.
    #[error("invalid SIGSTRUCT date {value:?}: {reason}")]
    Date {
        /// The date or epoch as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A signing key file could not be parsed as an RSA private key (PKCS#1 or PKCS#8 PEM).
    #[error(
        "{path}: {what}; scone signs with an unencrypted RSA-3072 private key with public \
         exponent 3 in PEM form (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)"
    )]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What the file is instead, and what to do with it.
        what: String,
    },
    /// A signing key is RSA but not what SGX requires.
    #[error(
        "{path}: SGX signing keys must be RSA-3072 with public exponent 3, this key is \
         RSA-{bits} with exponent {exponent}"
    )]
    KeyNotSgx {
        /// The key file.
        path: PathBuf,
        /// Modulus size in bits.
        bits: usize,
        /// The public exponent (decimal).
        exponent: String,
    },
    /// Generating a key refused to overwrite an existing file.
    #[error("{0}: a file already exists there; refusing to overwrite a signing key")]
    KeyExists(PathBuf),
    /// No per-user configuration directory is known and `SCONE_SIGNING_KEY` is unset.
    #[error(
        "cannot find a configuration directory for the default signing key; set SCONE_SIGNING_KEY"
    )]
    NoConfigDir,
    /// An RSA operation failed.
    #[error("RSA {operation} failed: {reason}")]
    Rsa {
        /// What we were doing (`sign`, `generate`, ...).
        operation: &'static str,
        /// The library's reason (never contains key material).
        reason: String,
    },
    /// An output path the user gave is refused (it is no regular file, or it is
    /// one of the inputs).
    #[error("{path}: {reason}")]
    OutputRefused {
        /// The output path as given.
        path: PathBuf,
        /// What it is and what to give instead.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl SgxError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SgxError::Io {
            path: path.into(),
            source,
        }
    }
}
