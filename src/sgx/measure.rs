//! The SGX measurement (Intel SDM Vol. 3D, ECREATE/EADD/EEXTEND): writing the
//! measured record stream (`.sgxs`, the format of Fortanix's `sgxs` tools) and
//! computing MRENCLAVE from one.
//!
//! Each record is 64 bytes: an 8-byte tag, then the operation's measured fields, zero
//! padded. EEXTEND records are followed by the 256 measured bytes. MRENCLAVE is the
//! SHA-256 over the measured records in order, so for a stream of measured records only
//! (what [`SgxsWriter`] writes) `MRENCLAVE == sha256(file)`.

use std::io::Read;
use std::path::Path;

use super::error::SgxError;
use sha2::{Digest, Sha256};

/// The page size of SGX enclaves.
pub const PAGE_SIZE: u64 = 4096;
/// The size of a measured chunk (one EEXTEND).
pub const CHUNK_SIZE: usize = 256;

const TAG_ECREATE: &[u8; 8] = b"ECREATE\0";
const TAG_EADD: &[u8; 8] = b"EADD\0\0\0\0";
const TAG_EEXTEND: &[u8; 8] = b"EEXTEND\0";
/// Fortanix's tag for a loaded-but-not-measured chunk (`UNMEASRD`); skipped by the hash.
const TAG_UNMEASURED: &[u8; 8] = b"UNMEASRD";
/// Fortanix's tag for a stream whose size is filled in later (`UNSIZED\0`).
const TAG_UNSIZED: &[u8; 8] = b"UNSIZED\0";

/// SECINFO.FLAGS bits.
pub mod secinfo {
    /// Readable.
    pub const R: u64 = 1;
    /// Writable.
    pub const W: u64 = 2;
    /// Executable.
    pub const X: u64 = 4;
    /// Page type `PT_REG` (bits 8..16).
    pub const PT_REG: u64 = 2 << 8;
    /// Page type `PT_TCS`.
    pub const PT_TCS: u64 = 1 << 8;
}

/// Appends measured records to an in-memory `.sgxs` stream, hashing it as it grows
/// (a piece at a time, while it is still in the cache), so [`SgxsWriter::finish_measured`]
/// costs no second pass over the stream.
#[derive(Debug)]
pub struct SgxsWriter {
    out: Vec<u8>,
    hasher: Sha256,
    /// How much of `out` the hasher has seen (a multiple of 64: every record is).
    hashed: usize,
}

/// Hash what was written once this much is pending.
const HASH_PIECE: usize = 64 << 10;

impl SgxsWriter {
    /// Starts a stream with the ECREATE record (`ssaframesize` in pages, `size` in bytes).
    pub fn new(ssaframesize: u32, size: u64, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(64));
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(TAG_ECREATE);
        rec[8..12].copy_from_slice(&ssaframesize.to_le_bytes());
        rec[12..20].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&rec);
        SgxsWriter {
            out,
            hasher: Sha256::new(),
            hashed: 0,
        }
    }

    /// EADD of the page at `offset` with SECINFO `flags`; contents are measured only if
    /// `data` is given (16 EEXTENDs of 256 bytes).
    pub fn add_page(&mut self, offset: u64, flags: u64, data: Option<&[u8; PAGE_SIZE as usize]>) {
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(TAG_EADD);
        rec[8..16].copy_from_slice(&offset.to_le_bytes());
        rec[16..24].copy_from_slice(&flags.to_le_bytes());
        self.out.extend_from_slice(&rec);
        if let Some(page) = data {
            for (i, chunk) in page.chunks_exact(CHUNK_SIZE).enumerate() {
                let mut rec = [0u8; 64];
                rec[..8].copy_from_slice(TAG_EEXTEND);
                rec[8..16].copy_from_slice(&(offset + (i * CHUNK_SIZE) as u64).to_le_bytes());
                self.out.extend_from_slice(&rec);
                self.out.extend_from_slice(chunk);
            }
        }
        if self.out.len() - self.hashed >= HASH_PIECE {
            self.catch_up();
        }
    }

    fn catch_up(&mut self) {
        self.hasher.update(&self.out[self.hashed..]);
        self.hashed = self.out.len();
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing is written (never: the ECREATE record is there from the start).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The SHA-256 state over everything written so far: with [`SgxsWriter::resume`],
    /// a stream that starts with the same bytes need not hash them again.
    pub fn state(&mut self) -> Sha256 {
        self.catch_up();
        self.hasher.clone()
    }

    /// Takes `state` as the hash of everything written so far, instead of hashing it.
    /// `state` must be what [`SgxsWriter::state`] gave for a stream that began with
    /// exactly these bytes (the caller keys it by everything they depend on): a wrong
    /// one gives a wrong MRENCLAVE.
    pub fn resume(&mut self, state: Sha256) {
        self.hasher = state;
        self.hashed = self.out.len();
    }

    /// The stream written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// The stream and its MRENCLAVE (the SHA-256 of the stream: it holds measured
    /// records only).
    pub fn finish_measured(mut self) -> (Vec<u8>, [u8; 32]) {
        self.catch_up();
        let mrenclave = self.hasher.finalize().into();
        (self.out, mrenclave)
    }
}

/// What a stream contains, besides its MRENCLAVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// MRENCLAVE: SHA-256 over the measured records.
    pub mrenclave: [u8; 32],
    /// ECREATE's SSAFRAMESIZE (pages).
    pub ssaframesize: u32,
    /// ECREATE's SIZE (bytes).
    pub size: u64,
    /// Number of EADD records.
    pub eadd: usize,
    /// Number of EEXTEND records.
    pub eextend: usize,
}

/// Reads `u64` little-endian at `at` (the caller has checked the bounds).
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Parses and checks an `.sgxs` stream and computes its MRENCLAVE.
///
/// The stream must start with one ECREATE, EADD offsets must be page aligned,
/// increasing and inside the enclave, and each EEXTEND must fall on a 256-byte chunk of
/// the page added last. Unmeasured chunks (`UNMEASRD`) are accepted and not hashed.
pub fn measure(sgxs: &[u8]) -> Result<Measurement, SgxError> {
    measure_reader(sgxs, Path::new("<memory>"))
}

/// Reads into `buf` until it is full or the stream ends; how many bytes came.
fn fill(from: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match from.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// [`measure`] of a stream read record by record (a file of any size in
/// constant memory); `origin` names it in a read error.
pub fn measure_reader(mut from: impl Read, origin: &Path) -> Result<Measurement, SgxError> {
    let err = |offset: usize, reason: &str| SgxError::Sgxs {
        offset,
        reason: reason.to_string(),
    };
    let mut hasher = Sha256::new();
    let mut pos = 0usize;
    let mut created: Option<(u32, u64)> = None;
    let mut last_page: Option<u64> = None;
    let (mut eadd, mut eextend) = (0usize, 0usize);
    let mut rec = [0u8; 64];
    let mut data = [0u8; CHUNK_SIZE];
    loop {
        match fill(&mut from, &mut rec).map_err(|e| SgxError::io(origin, e))? {
            0 => break,
            64 => {}
            _ => return Err(err(pos, "truncated record (records are 64 bytes)")),
        }
        let tag: &[u8] = &rec[..8];
        if tag == TAG_ECREATE || tag == TAG_UNSIZED {
            if created.is_some() || pos != 0 {
                return Err(err(
                    pos,
                    "ECREATE must be the first and only creation record",
                ));
            }
            if tag == TAG_UNSIZED {
                return Err(err(
                    pos,
                    "the stream is unsized (its enclave size was never filled in)",
                ));
            }
            let mut ssa = [0u8; 4];
            ssa.copy_from_slice(&rec[8..12]);
            let size = le_u64(&rec, 12);
            if !size.is_power_of_two() || size < 2 * PAGE_SIZE {
                return Err(err(
                    pos,
                    "enclave size is not a power of two of at least two pages",
                ));
            }
            created = Some((u32::from_le_bytes(ssa), size));
            hasher.update(rec);
            pos += 64;
            continue;
        }
        let Some((_, size)) = created else {
            return Err(err(pos, "the stream does not start with ECREATE"));
        };
        if tag == TAG_EADD {
            let offset = le_u64(&rec, 8);
            if !offset.is_multiple_of(PAGE_SIZE) || offset >= size {
                return Err(err(pos, "EADD offset is not a page inside the enclave"));
            }
            if last_page.is_some_and(|last| offset <= last) {
                return Err(err(pos, "EADD offsets must increase"));
            }
            last_page = Some(offset);
            eadd += 1;
            hasher.update(rec);
            pos += 64;
        } else if tag == TAG_EEXTEND || tag == TAG_UNMEASURED {
            let offset = le_u64(&rec, 8);
            let in_page = last_page.is_some_and(|p| offset >= p && offset < p + PAGE_SIZE);
            if !offset.is_multiple_of(CHUNK_SIZE as u64) || !in_page {
                return Err(err(
                    pos,
                    "EEXTEND offset is not a 256-byte chunk of the last added page",
                ));
            }
            if fill(&mut from, &mut data).map_err(|e| SgxError::io(origin, e))? != CHUNK_SIZE {
                return Err(err(pos, "EEXTEND record is missing its 256 data bytes"));
            }
            if tag == TAG_EEXTEND {
                eextend += 1;
                hasher.update(rec);
                hasher.update(data);
            }
            pos += 64 + CHUNK_SIZE;
        } else {
            return Err(err(pos, "unknown record tag"));
        }
    }
    let (ssaframesize, size) = created.ok_or_else(|| err(0, "empty stream"))?;
    Ok(Measurement {
        mrenclave: hasher.finalize().into(),
        ssaframesize,
        size,
        eadd,
        eextend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vectors() -> PathBuf {
        crate::sgx::tests::vectors_dir()
    }

    #[test]
    fn public_vectors_measure_to_their_readme_values() {
        let cases = [
            (
                "test_enclave.sgxs",
                "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc",
                9,
                144,
            ),
            (
                "report.sgxs",
                "a06a560b26f5e397b2d7872fac66fe4b43bf4f507296ee048f110be6fb1a2290",
                0,
                0,
            ),
        ];
        for (file, expected, eadd, eextend) in cases {
            let bytes = std::fs::read(vectors().join(file)).expect("vector present");
            let m = measure(&bytes).expect("valid stream");
            assert_eq!(hex::encode(m.mrenclave), expected, "{file}");
            if eadd > 0 {
                assert_eq!((m.eadd, m.eextend), (eadd, eextend), "{file}");
            }
        }
    }

    #[test]
    fn writer_output_hashes_to_its_measurement() {
        let mut w = SgxsWriter::new(1, 4 * PAGE_SIZE, 0);
        let page = [7u8; 4096];
        w.add_page(0, secinfo::R | secinfo::X | secinfo::PT_REG, Some(&page));
        w.add_page(PAGE_SIZE, secinfo::R | secinfo::W | secinfo::PT_REG, None);
        let sgxs = w.finish();
        assert_eq!(sgxs.len(), 64 + 64 + 16 * (64 + 256) + 64);
        let m = measure(&sgxs).expect("own stream is valid");
        let direct: [u8; 32] = Sha256::digest(&sgxs).into();
        assert_eq!(m.mrenclave, direct);
        assert_eq!(
            (m.eadd, m.eextend, m.size, m.ssaframesize),
            (2, 16, 4 * PAGE_SIZE, 1)
        );
    }

    #[test]
    fn rejects_malformed_streams() {
        let mut w = SgxsWriter::new(1, 4 * PAGE_SIZE, 0);
        w.add_page(PAGE_SIZE, secinfo::R | secinfo::PT_REG, None);
        w.add_page(0, secinfo::R | secinfo::PT_REG, None);
        let err = measure(&w.finish()).unwrap_err();
        assert!(err.to_string().contains("must increase"), "{err}");
        let mut w = SgxsWriter::new(1, 3 * PAGE_SIZE, 0);
        w.add_page(0, secinfo::R | secinfo::PT_REG, None);
        assert!(measure(&w.finish())
            .unwrap_err()
            .to_string()
            .contains("power of two"));
        let mut stream = SgxsWriter::new(1, 4 * PAGE_SIZE, 0).finish();
        stream.extend_from_slice(&[0u8; 10]);
        assert!(measure(&stream)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(measure(b"").unwrap_err().to_string().contains("empty"));
    }
}
