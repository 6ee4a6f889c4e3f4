//! SIGSTRUCT (Intel SDM Vol. 3D, 1808 bytes): building and signing one (RSA-3072, e = 3,
//! PKCS#1 v1.5 SHA-256 over bytes [0,128) ++ [900,1028), with Q1/Q2), reading one, and
//! verifying its signature and Q1/Q2. Dates are BCD (`0x20160109`); the sign step takes
//! them from `SOURCE_DATE_EPOCH` so that SIGSTRUCTs are reproducible.

use rsa::traits::SignatureScheme;
use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey};
use sha2::{Digest, Sha256};

use super::error::SgxError;
use super::keys::{mrsigner_of, SigningKey, EXPONENT, KEY_BITS, KEY_BYTES};

/// Size of a SIGSTRUCT.
pub const SIGSTRUCT_SIZE: usize = 1808;
/// HEADER (offset 0).
pub const HEADER1: [u8; 16] = [6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
/// HEADER2 (offset 24).
pub const HEADER2: [u8; 16] = [1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0];
/// ATTRIBUTES.FLAGS bit DEBUG.
pub const FLAG_DEBUG: u64 = 0x2;
/// ATTRIBUTES.FLAGS bit MODE64BIT.
pub const FLAG_MODE64BIT: u64 = 0x4;

/// Field offsets (bytes) in the SIGSTRUCT.
mod off {
    pub const VENDOR: usize = 16;
    pub const DATE: usize = 20;
    pub const HEADER2: usize = 24;
    pub const SWDEFINED: usize = 40;
    pub const MODULUS: usize = 128;
    pub const EXPONENT: usize = 512;
    pub const SIGNATURE: usize = 516;
    pub const MISCSELECT: usize = 900;
    pub const MISCMASK: usize = 904;
    pub const ISVFAMILYID: usize = 912;
    pub const ATTRIBUTES: usize = 928;
    pub const ATTRIBUTEMASK: usize = 944;
    pub const ENCLAVEHASH: usize = 960;
    pub const ISVEXTPRODID: usize = 1008;
    pub const ISVPRODID: usize = 1024;
    pub const ISVSVN: usize = 1026;
    pub const Q1: usize = 1040;
    pub const Q2: usize = 1424;
}

/// The signer-chosen fields of a SIGSTRUCT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstructParams {
    /// VENDOR (0, or 0x8086 for Intel).
    pub vendor: u32,
    /// DATE as BCD `0xYYYYMMDD`.
    pub date: u32,
    /// SWDEFINED.
    pub swdefined: u32,
    /// MISCSELECT and its mask.
    pub miscselect: u32,
    /// MISCMASK.
    pub miscmask: u32,
    /// ATTRIBUTES.FLAGS.
    pub flags: u64,
    /// ATTRIBUTEMASK.FLAGS.
    pub flags_mask: u64,
    /// ATTRIBUTES.XFRM.
    pub xfrm: u64,
    /// ATTRIBUTEMASK.XFRM.
    pub xfrm_mask: u64,
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
}

impl SigstructParams {
    /// What the sign step uses for `debug`/production at BCD `date`: FLAGS = MODE64BIT
    /// (+ DEBUG), all FLAGS bits enforced; XFRM = x87|SSE with AVX and AVX-512 state
    /// (bits 2, 5, 6, 7) allowed; MISCSELECT 0 enforced; product 0, SVN 0, vendor 0.
    pub fn for_mode(debug: bool, date: u32) -> Self {
        SigstructParams {
            vendor: 0,
            date,
            swdefined: 0,
            miscselect: 0,
            miscmask: 0xffff_ffff,
            flags: FLAG_MODE64BIT | if debug { FLAG_DEBUG } else { 0 },
            flags_mask: u64::MAX,
            xfrm: 0x3,
            xfrm_mask: !0xe4,
            isvprodid: 0,
            isvsvn: 0,
        }
    }

    /// What real SGX refuses at launch in these values, though the SIGSTRUCT is
    /// well formed (explicit overrides: a warning each, not an error). EINIT
    /// compares the enclave's attributes with these under the masks, so a bit is
    /// a problem only where its mask enforces it: XFRM without x87 and SSE
    /// (bits 0, 1), which ECREATE requires of every enclave; FLAGS without
    /// MODE64BIT, which every 64-bit enclave (all scone builds) has.
    pub fn launch_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let missing = !self.xfrm & self.xfrm_mask & 0x3;
        if missing != 0 {
            problems.push(format!(
                "XFRM {:#x} lacks bit(s) {missing:#x} of x87 and SSE (0x3), which SGX requires \
                 of every enclave: EINIT will refuse this SIGSTRUCT; give --xfrm with 0x3 set",
                self.xfrm
            ));
        }
        if self.flags_mask & FLAG_MODE64BIT != 0 && self.flags & FLAG_MODE64BIT == 0 {
            problems.push(format!(
                "FLAGS {:#x} lacks MODE64BIT (0x4): a 64-bit enclave, as scone builds, will not \
                 launch under this SIGSTRUCT; give --flags with 0x4 set",
                self.flags
            ));
        }
        problems
    }

    /// [`Self::for_mode`] dated from `SOURCE_DATE_EPOCH` (UTC day), 1970-01-01 if unset.
    /// An unparsable `SOURCE_DATE_EPOCH` is an error, never silently ignored.
    pub fn from_env(debug: bool) -> Result<Self, SgxError> {
        Ok(Self::for_mode(debug, source_date()?))
    }
}

impl Default for SigstructParams {
    /// Production, dated 1970-01-01 (use [`SigstructParams::from_env`] for
    /// `SOURCE_DATE_EPOCH`).
    fn default() -> Self {
        Self::for_mode(false, 0x1970_0101)
    }
}

/// BCD date `0xYYYYMMDD` for a calendar date.
pub fn bcd_date(year: u32, month: u32, day: u32) -> Result<u32, SgxError> {
    let text = format!("{year:04}-{month:02}-{day:02}");
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    };
    if year > 9999 || day == 0 || day > days_in_month {
        return Err(SgxError::Date {
            value: text,
            reason: "not a calendar date between 0000 and 9999".to_string(),
        });
    }
    u32::from_str_radix(&format!("{year:04}{month:02}{day:02}"), 16).map_err(|e| SgxError::Date {
        value: text,
        reason: e.to_string(),
    })
}

/// Parses `YYYY-MM-DD` into a BCD date.
pub fn parse_date(text: &str) -> Result<u32, SgxError> {
    let bad = || SgxError::Date {
        value: text.to_string(),
        reason: "expected YYYY-MM-DD".to_string(),
    };
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    bcd_date(num(y)?, num(m)?, num(d)?)
}

/// The BCD date of the UTC day containing `epoch_seconds`.
pub fn bcd_date_from_epoch(epoch_seconds: u64) -> Result<u32, SgxError> {
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = (epoch_seconds / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    bcd_date(year, month, day)
}

/// The BCD date from `SOURCE_DATE_EPOCH`, or 1970-01-01 when it is unset or empty.
pub fn source_date() -> Result<u32, SgxError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            let secs = v.trim().parse::<u64>().map_err(|_| SgxError::Date {
                value: v.clone(),
                reason: "SOURCE_DATE_EPOCH must be a number of seconds since 1970".to_string(),
            })?;
            bcd_date_from_epoch(secs)
        }
        _ => Ok(0x1970_0101),
    }
}

/// A SIGSTRUCT, kept as its 1808 bytes; fields are read through accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct Sigstruct {
    bytes: [u8; SIGSTRUCT_SIZE],
}

impl std::fmt::Debug for Sigstruct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sigstruct")
            .field("date", &format_args!("{:#010x}", self.date()))
            .field("enclavehash", &hex::encode(self.enclavehash()))
            .field("mrsigner", &hex::encode(self.mrsigner()))
            .finish()
    }
}

/// The outcome of [`Sigstruct::verify`], check by check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// HEADER and HEADER2 are the constants of the SDM.
    pub headers: bool,
    /// EXPONENT is 3 and the modulus is 3072 bits.
    pub key: bool,
    /// The RSA signature verifies over [0,128) ++ [900,1028).
    pub signature: bool,
    /// Q1 = floor(s² / n).
    pub q1: bool,
    /// Q2 = floor((s³ − q1·s·n) / n).
    pub q2: bool,
}

impl Verification {
    /// Whether every check passed.
    pub fn is_valid(&self) -> bool {
        self.headers && self.key && self.signature && self.q1 && self.q2
    }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Q1 = floor(s²/n) and Q2 = floor(s·(s² mod n)/n) (= floor((s³ − q1·s·n)/n)), both
/// little-endian 384 bytes, for little-endian `s` and `n`.
pub fn q1_q2(signature_le: &[u8], modulus_le: &[u8]) -> Option<([u8; KEY_BYTES], [u8; KEY_BYTES])> {
    let wide = 2 * KEY_BITS as u32;
    let s = BoxedUint::from_le_slice(signature_le, wide).ok()?;
    let n = BoxedUint::from_le_slice(modulus_le, wide).ok()?;
    let n = crypto_bigint::NonZero::new(n).into_option()?;
    let s2 = s.wrapping_mul(&s);
    let (q1, r) = s2.div_rem_vartime(&n);
    let (q2, _) = s.wrapping_mul(&r).div_rem_vartime(&n);
    let to_le = |v: BoxedUint| -> Option<[u8; KEY_BYTES]> {
        let bytes = v.to_le_bytes();
        if bytes[KEY_BYTES..].iter().any(|b| *b != 0) {
            return None;
        }
        let mut out = [0u8; KEY_BYTES];
        out.copy_from_slice(&bytes[..KEY_BYTES]);
        Some(out)
    };
    Some((to_le(q1)?, to_le(q2)?))
}

impl Sigstruct {
    /// Builds and signs the SIGSTRUCT for `enclave_hash` (MRENCLAVE) with `params`.
    pub fn sign(
        key: &SigningKey,
        params: &SigstructParams,
        enclave_hash: &[u8; 32],
    ) -> Result<Self, SgxError> {
        Self::sign_unsigned(key, Self::unsigned(&key.modulus_le(), params, enclave_hash))
    }

    /// The SIGSTRUCT [`Sigstruct::sign`] makes, before it is signed: SIGNATURE, Q1 and
    /// Q2 zero. RSA PKCS#1 v1.5 is deterministic, so equal bytes here and the same key
    /// always give the same SIGSTRUCT.
    pub fn unsigned(
        modulus_le: &[u8; KEY_BYTES],
        params: &SigstructParams,
        enclave_hash: &[u8; 32],
    ) -> [u8; SIGSTRUCT_SIZE] {
        let mut b = [0u8; SIGSTRUCT_SIZE];
        b[..16].copy_from_slice(&HEADER1);
        b[off::VENDOR..off::VENDOR + 4].copy_from_slice(&params.vendor.to_le_bytes());
        b[off::DATE..off::DATE + 4].copy_from_slice(&params.date.to_le_bytes());
        b[off::HEADER2..off::HEADER2 + 16].copy_from_slice(&HEADER2);
        b[off::SWDEFINED..off::SWDEFINED + 4].copy_from_slice(&params.swdefined.to_le_bytes());
        b[off::EXPONENT..off::EXPONENT + 4].copy_from_slice(&EXPONENT.to_le_bytes());
        b[off::MISCSELECT..off::MISCSELECT + 4].copy_from_slice(&params.miscselect.to_le_bytes());
        b[off::MISCMASK..off::MISCMASK + 4].copy_from_slice(&params.miscmask.to_le_bytes());
        b[off::ATTRIBUTES..off::ATTRIBUTES + 8].copy_from_slice(&params.flags.to_le_bytes());
        b[off::ATTRIBUTES + 8..off::ATTRIBUTES + 16].copy_from_slice(&params.xfrm.to_le_bytes());
        b[off::ATTRIBUTEMASK..off::ATTRIBUTEMASK + 8]
            .copy_from_slice(&params.flags_mask.to_le_bytes());
        b[off::ATTRIBUTEMASK + 8..off::ATTRIBUTEMASK + 16]
            .copy_from_slice(&params.xfrm_mask.to_le_bytes());
        b[off::ENCLAVEHASH..off::ENCLAVEHASH + 32].copy_from_slice(enclave_hash);
        b[off::ISVPRODID..off::ISVPRODID + 2].copy_from_slice(&params.isvprodid.to_le_bytes());
        b[off::ISVSVN..off::ISVSVN + 2].copy_from_slice(&params.isvsvn.to_le_bytes());
        b[off::MODULUS..off::MODULUS + KEY_BYTES].copy_from_slice(modulus_le);
        b
    }

    /// Signs what [`Sigstruct::unsigned`] made (for `key`'s modulus).
    pub fn sign_unsigned(key: &SigningKey, mut b: [u8; SIGSTRUCT_SIZE]) -> Result<Self, SgxError> {
        let modulus = key.modulus_le();
        if b[off::MODULUS..off::MODULUS + KEY_BYTES] != modulus {
            return Err(SgxError::Rsa {
                operation: "signing",
                reason: "the SIGSTRUCT names another key's modulus".to_string(),
            });
        }
        let mut signature = key.sign_sha256(&signed_digest(&b))?;
        if signature.len() != KEY_BYTES {
            return Err(SgxError::Rsa {
                operation: "signing",
                reason: format!(
                    "signature has {} bytes, expected {KEY_BYTES}",
                    signature.len()
                ),
            });
        }
        signature.reverse();
        b[off::SIGNATURE..off::SIGNATURE + KEY_BYTES].copy_from_slice(&signature);
        let (q1, q2) = q1_q2(&signature, &modulus).ok_or_else(|| SgxError::Rsa {
            operation: "Q1/Q2",
            reason: "the signature is not below the modulus".to_string(),
        })?;
        b[off::Q1..off::Q1 + KEY_BYTES].copy_from_slice(&q1);
        b[off::Q2..off::Q2 + KEY_BYTES].copy_from_slice(&q2);
        Ok(Sigstruct { bytes: b })
    }

    /// Reads a SIGSTRUCT (exactly 1808 bytes; contents are checked by [`Self::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SgxError> {
        let bytes: [u8; SIGSTRUCT_SIZE] = bytes
            .try_into()
            .map_err(|_| SgxError::SigstructSize(bytes.len()))?;
        Ok(Sigstruct { bytes })
    }

    /// The 1808 bytes.
    /// The bytes without SIGNATURE, Q1 and Q2 (what [`Sigstruct::unsigned`] gives).
    pub fn unsigned_bytes(&self) -> [u8; SIGSTRUCT_SIZE] {
        let mut b = self.bytes;
        for at in [off::SIGNATURE, off::Q1, off::Q2] {
            b[at..at + KEY_BYTES].fill(0);
        }
        b
    }

    pub fn to_bytes(&self) -> [u8; SIGSTRUCT_SIZE] {
        self.bytes
    }

    /// HEADER.
    pub fn header(&self) -> &[u8] {
        &self.bytes[..16]
    }
    /// HEADER2.
    pub fn header2(&self) -> &[u8] {
        &self.bytes[off::HEADER2..off::HEADER2 + 16]
    }
    /// VENDOR.
    pub fn vendor(&self) -> u32 {
        le_u32(&self.bytes, off::VENDOR)
    }
    /// DATE (BCD).
    pub fn date(&self) -> u32 {
        le_u32(&self.bytes, off::DATE)
    }
    /// SWDEFINED.
    pub fn swdefined(&self) -> u32 {
        le_u32(&self.bytes, off::SWDEFINED)
    }
    /// MODULUS (little-endian).
    pub fn modulus(&self) -> &[u8] {
        &self.bytes[off::MODULUS..off::MODULUS + KEY_BYTES]
    }
    /// EXPONENT.
    pub fn exponent(&self) -> u32 {
        le_u32(&self.bytes, off::EXPONENT)
    }
    /// SIGNATURE (little-endian).
    pub fn signature(&self) -> &[u8] {
        &self.bytes[off::SIGNATURE..off::SIGNATURE + KEY_BYTES]
    }
    /// MISCSELECT.
    pub fn miscselect(&self) -> u32 {
        le_u32(&self.bytes, off::MISCSELECT)
    }
    /// MISCMASK.
    pub fn miscmask(&self) -> u32 {
        le_u32(&self.bytes, off::MISCMASK)
    }
    /// ISVFAMILYID.
    pub fn isvfamilyid(&self) -> &[u8] {
        &self.bytes[off::ISVFAMILYID..off::ISVFAMILYID + 16]
    }
    /// ATTRIBUTES.FLAGS.
    pub fn flags(&self) -> u64 {
        le_u64(&self.bytes, off::ATTRIBUTES)
    }
    /// ATTRIBUTES.XFRM.
    pub fn xfrm(&self) -> u64 {
        le_u64(&self.bytes, off::ATTRIBUTES + 8)
    }
    /// ATTRIBUTEMASK.FLAGS.
    pub fn flags_mask(&self) -> u64 {
        le_u64(&self.bytes, off::ATTRIBUTEMASK)
    }
    /// ATTRIBUTEMASK.XFRM.
    pub fn xfrm_mask(&self) -> u64 {
        le_u64(&self.bytes, off::ATTRIBUTEMASK + 8)
    }
    /// ENCLAVEHASH (the MRENCLAVE it signs).
    pub fn enclavehash(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.bytes[off::ENCLAVEHASH..off::ENCLAVEHASH + 32]);
        h
    }
    /// ISVEXTPRODID.
    pub fn isvextprodid(&self) -> &[u8] {
        &self.bytes[off::ISVEXTPRODID..off::ISVEXTPRODID + 16]
    }
    /// ISVPRODID.
    pub fn isvprodid(&self) -> u16 {
        le_u16(&self.bytes, off::ISVPRODID)
    }
    /// ISVSVN.
    pub fn isvsvn(&self) -> u16 {
        le_u16(&self.bytes, off::ISVSVN)
    }
    /// Q1 (little-endian).
    pub fn q1(&self) -> &[u8] {
        &self.bytes[off::Q1..off::Q1 + KEY_BYTES]
    }
    /// Q2 (little-endian).
    pub fn q2(&self) -> &[u8] {
        &self.bytes[off::Q2..off::Q2 + KEY_BYTES]
    }
    /// Whether ATTRIBUTES.FLAGS has DEBUG.
    pub fn is_debug(&self) -> bool {
        self.flags() & FLAG_DEBUG != 0
    }

    /// MRSIGNER: SHA-256 of MODULUS.
    pub fn mrsigner(&self) -> [u8; 32] {
        let mut m = [0u8; KEY_BYTES];
        m.copy_from_slice(self.modulus());
        mrsigner_of(&m)
    }

    /// Checks headers, key shape, the RSA signature and Q1/Q2.
    pub fn verify(&self) -> Verification {
        let headers = self.header() == HEADER1 && self.header2() == HEADER2;
        let n_le = self.modulus();
        let n_bits = BoxedUint::from_le_slice(n_le, KEY_BITS as u32)
            .map(|n| n.bit_width_vartime() as usize)
            .unwrap_or(0);
        let key = self.exponent() == EXPONENT && n_bits == KEY_BITS;
        let signature = key && self.signature_verifies();
        let (q1, q2) = match q1_q2(self.signature(), n_le) {
            Some((q1, q2)) => (q1.as_slice() == self.q1(), q2.as_slice() == self.q2()),
            None => (false, false),
        };
        Verification {
            headers,
            key,
            signature,
            q1,
            q2,
        }
    }

    fn signature_verifies(&self) -> bool {
        let mut n_be = self.modulus().to_vec();
        n_be.reverse();
        let mut s_be = self.signature().to_vec();
        s_be.reverse();
        let Ok(n) = BoxedUint::from_be_slice(&n_be, KEY_BITS as u32) else {
            return false;
        };
        let Ok(public) = PublicKey::new(n, BoxedUint::from(u64::from(EXPONENT))) else {
            return false;
        };
        Pkcs1v15Sign::new::<Sha256>()
            .verify(&public, &signed_digest(&self.bytes), &s_be)
            .is_ok()
    }
}

/// SHA-256 over the signed parts of a SIGSTRUCT: bytes [0,128) ++ [900,1028).
pub fn signed_digest(bytes: &[u8; SIGSTRUCT_SIZE]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&bytes[..128]);
    h.update(&bytes[900..1028]);
    h.finalize().into()
}
