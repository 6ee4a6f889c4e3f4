//! SGX enclave signing keys: RSA-3072 with public exponent 3, loaded from PEM (PKCS#1
//! or PKCS#8), or generated and stored with mode 0600 outside `target/`. MRSIGNER is the
//! SHA-256 of the little-endian modulus.

use std::io::Write;
use std::path::{Path, PathBuf};

use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey};
use sha2::{Digest, Sha256};

use super::error::SgxError;

/// Modulus size SGX requires.
pub const KEY_BITS: usize = 3072;
/// Bytes of the modulus and signature.
pub const KEY_BYTES: usize = KEY_BITS / 8;
/// The public exponent SGX requires.
pub const EXPONENT: u32 = 3;
/// Environment variable that overrides [`default_key_path`].
pub const KEY_ENV: &str = "SCONE_SIGNING_KEY";

/// An RSA-3072, e = 3 private key for signing SIGSTRUCTs.
#[derive(Clone)]
pub struct SigningKey {
    key: PrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(
            f,
            "SigningKey {{ mrsigner: {} }}",
            hex::encode(self.mrsigner())
        )
    }
}

/// Where the user's signing key lives unless the workspace names one:
/// `$SCONE_SIGNING_KEY`, else `<config dir>/scone/enclave-key.pem`
/// (`~/.config/scone/enclave-key.pem` on Linux).
pub fn default_key_path() -> Result<PathBuf, SgxError> {
    if let Some(path) = std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    dirs::config_dir()
        .map(|dir| dir.join("scone").join("enclave-key.pem"))
        .ok_or(SgxError::NoConfigDir)
}

fn rsa_err(operation: &'static str) -> impl Fn(rsa::Error) -> SgxError {
    move |e| SgxError::Rsa {
        operation,
        reason: e.to_string(),
    }
}

impl SigningKey {
    /// Parses a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) and
    /// checks it is RSA-3072 with e = 3. `origin` names the key in errors.
    pub fn from_pem(pem: &str, origin: &Path) -> Result<Self, SgxError> {
        let key = PrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| PrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| SgxError::KeyFormat {
                path: origin.to_path_buf(),
                what: pem_kind(pem),
            })?;
        Self::checked(key, origin)
    }

    fn checked(key: PrivateKey, origin: &Path) -> Result<Self, SgxError> {
        let bits = key.n().bit_width_vartime() as usize;
        let e = key.e();
        let e_is_3 = e.bit_width_vartime() == 2 && e.to_le_bytes().first() == Some(&3);
        if bits != KEY_BITS || !e_is_3 {
            return Err(SgxError::KeyNotSgx {
                path: origin.to_path_buf(),
                bits,
                exponent: e.to_string_radix_vartime(10),
            });
        }
        Ok(SigningKey { key })
    }

    /// Reads and checks the key at `path`.
    pub fn load(path: &Path) -> Result<Self, SgxError> {
        Self::load_with_text(path).map(|(key, _)| key)
    }

    /// [`SigningKey::load`], also giving the file's text (to key what is derived from
    /// the key by a digest of it).
    pub fn load_with_text(path: &Path) -> Result<(Self, String), SgxError> {
        // A regular file of a key's size: a FIFO or a device is never opened.
        let bytes = crate::regular_file::read(path, crate::regular_file::MAX_KEY_BYTES).map_err(
            |e| match e {
                crate::regular_file::ReadError::Io(io) => SgxError::io(path, io),
                other => SgxError::io(path, std::io::Error::other(other.to_string())),
            },
        )?;
        let pem = match String::from_utf8(bytes) {
            Ok(pem) => pem,
            // DER starts with an ASN.1 SEQUENCE (0x30).
            Err(e) if e.as_bytes().first() == Some(&0x30) => {
                return Err(SgxError::KeyFormat {
                    path: path.to_path_buf(),
                    what: "is binary DER, not PEM: convert it with \
                           `openssl pkey -inform DER -in KEY.der -out KEY.pem`"
                        .to_string(),
                })
            }
            Err(e) => {
                let byte = e.utf8_error().valid_up_to();
                return Err(SgxError::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("is not UTF-8 (byte {byte}), so no PEM key"),
                    ),
                ));
            }
        };
        Ok((Self::from_pem(&pem, path)?, pem))
    }

    /// Generates a fresh RSA-3072, e = 3 key from the operating system's RNG.
    pub fn generate() -> Result<Self, SgxError> {
        let mut rng = getrandom::SysRng;
        let key =
            PrivateKey::new_with_exp(&mut rng, KEY_BITS, BoxedUint::from(u64::from(EXPONENT)))
                .map_err(rsa_err("key generation"))?;
        Self::checked(key, Path::new("<generated>"))
    }

    /// Generates a key and stores it at `path` as PKCS#1 PEM with mode 0600, creating
    /// the parent folders (mode 0700). Refuses to replace an existing file. The write is
    /// crash safe: temp file in the same folder, fsync, then an atomic no-clobber link.
    pub fn generate_at(path: &Path) -> Result<Self, SgxError> {
        if path.exists() {
            return Err(SgxError::KeyExists(path.to_path_buf()));
        }
        let key = Self::generate()?;
        let pem = key
            .key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| SgxError::Rsa {
                operation: "PEM encoding",
                reason: e.to_string(),
            })?;
        write_private_file(path, pem.as_bytes())?;
        Ok(key)
    }

    /// The modulus, little-endian, 384 bytes (as in SIGSTRUCT.MODULUS).
    pub fn modulus_le(&self) -> [u8; KEY_BYTES] {
        let mut out = [0u8; KEY_BYTES];
        let le = self.key.n().to_le_bytes();
        let n = le.len().min(KEY_BYTES);
        out[..n].copy_from_slice(&le[..n]);
        out
    }

    /// MRSIGNER: SHA-256 of the little-endian modulus.
    pub fn mrsigner(&self) -> [u8; 32] {
        mrsigner_of(&self.modulus_le())
    }

    /// RSASSA-PKCS1-v1_5 signature over a SHA-256 `digest`, big-endian, 384 bytes.
    pub fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SgxError> {
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), digest)
            .map_err(rsa_err("signing"))
    }
}

/// What a PEM text that holds no usable RSA private key is, by its first
/// `-----BEGIN …-----` label, and what to do (for [`SgxError::KeyFormat`]).
fn pem_kind(pem: &str) -> String {
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"));
    let legacy_encrypted = pem.contains("Proc-Type: 4,ENCRYPTED");
    match label {
        Some("ENCRYPTED PRIVATE KEY") => "is an encrypted private key (ENCRYPTED PRIVATE KEY): \
             decrypt it first (`openssl pkey -in KEY.pem -out plain.pem`)"
            .to_string(),
        Some(l) if legacy_encrypted => format!(
            "is an encrypted private key ({l}, Proc-Type: 4,ENCRYPTED): decrypt it first \
             (`openssl pkey -in KEY.pem -out plain.pem`)"
        ),
        Some(l) if l.contains("PUBLIC KEY") => {
            format!("is a public key ({l}): signing needs the private key")
        }
        Some(l @ ("RSA PRIVATE KEY" | "PRIVATE KEY")) => {
            format!("holds a {l} that does not parse as an RSA key")
        }
        Some(l) => format!("holds a {l}, not an RSA private key"),
        None => "holds no PEM block (-----BEGIN …-----)".to_string(),
    }
}

/// MRSIGNER of a little-endian modulus.
pub fn mrsigner_of(modulus_le: &[u8; KEY_BYTES]) -> [u8; 32] {
    Sha256::digest(modulus_le).into()
}

/// Writes `bytes` to `path` with mode 0600 without ever replacing an existing file.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), SgxError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| SgxError::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| SgxError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| SgxError::io(&tmp, e))?;
        f.sync_all().map_err(|e| SgxError::io(&tmp, e))?;
        std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SgxError::KeyExists(path.to_path_buf()),
            _ => SgxError::io(path, e),
        })?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}
