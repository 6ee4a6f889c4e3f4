//! Cross-check against an independent implementation: Fortanix's `sgxs` crate reads our
//! `.sgxs` stream (canonical-stream checks, its own MRENCLAVE computation), parses our
//! SIGSTRUCT, verifies it, and builds the same SIGSTRUCT from the same fields.

use super::{sig1_key, system_elf};
use crate::sgx::keys::SigningKey;
use crate::sgx::layout::{build_enclave, EnclaveSettings};
use crate::sgx::sigstruct::{q1_q2, Sigstruct, SigstructParams};
use rsa::traits::SignatureScheme;
use sgxs::crypto::{Hash, SgxHashOps, SgxRsaOps};
use sgxs::sgxs::{PageReader, SgxsRead};
use sgxs::sigstruct::{AttributesFlags, EnclaveHash, Miscselect, Signer};
use sha2::Digest;

/// SHA-256 plugged into `sgxs` (its own `sha2` feature stays off).
struct Sha256Ops(sha2::Sha256);

impl SgxHashOps for Sha256Ops {
    fn new() -> Self {
        Sha256Ops(sha2::Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self) -> Hash {
        self.0.finalize().into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RsaOpsError(String);

/// Our key behind `sgxs`'s RSA trait (RSA primitive from the `rsa` crate).
struct RsaOps(SigningKey);

impl SgxRsaOps for RsaOps {
    type Error = RsaOpsError;
    fn len(&self) -> usize {
        3072
    }
    fn sign_sha256_pkcs1v1_5_with_q1_q2<H: AsRef<[u8]>>(
        &self,
        hash: H,
    ) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), Self::Error> {
        let digest: [u8; 32] = hash
            .as_ref()
            .try_into()
            .map_err(|_| RsaOpsError("hash size".into()))?;
        let mut s = self
            .0
            .sign_sha256(&digest)
            .map_err(|e| RsaOpsError(e.to_string()))?;
        s.reverse();
        let (q1, q2) =
            q1_q2(&s, &self.0.modulus_le()).ok_or_else(|| RsaOpsError("q1/q2".into()))?;
        Ok((s, q1.to_vec(), q2.to_vec()))
    }
    fn verify_sha256_pkcs1v1_5<S: AsRef<[u8]>, H: AsRef<[u8]>>(
        &self,
        sig: S,
        hash: H,
    ) -> Result<(), Self::Error> {
        let mut n_be = self.0.modulus_le().to_vec();
        n_be.reverse();
        let mut s_be = sig.as_ref().to_vec();
        s_be.reverse();
        let n =
            rsa::BoxedUint::from_be_slice(&n_be, 3072).map_err(|e| RsaOpsError(e.to_string()))?;
        let public = rsa::PublicKey::new(n, rsa::BoxedUint::from(3u64))
            .map_err(|e| RsaOpsError(e.to_string()))?;
        rsa::Pkcs1v15Sign::new::<sha2::Sha256>()
            .verify(&public, hash.as_ref(), &s_be)
            .map_err(|e| RsaOpsError(e.to_string()))
    }
    fn e(&self) -> Vec<u8> {
        vec![3]
    }
    fn n(&self) -> Vec<u8> {
        self.0.modulus_le().to_vec()
    }
}

#[test]
fn sgxs_crate_measures_our_stream_to_our_mrenclave() {
    let settings = EnclaveSettings {
        heap: 1 << 20,
        stack: 64 << 10,
        threads: 3,
        ..EnclaveSettings::default()
    };
    let enclave = build_enclave(&system_elf(), &settings).expect("layout");
    let theirs =
        EnclaveHash::from_stream::<_, Sha256Ops>(&mut &enclave.sgxs[..]).expect("their reader");
    assert_eq!(theirs.hash(), enclave.mrenclave);

    // Their canonical-stream reader accepts every page; count TCS pages and the size.
    let mut stream = &enclave.sgxs[..];
    let (info, mut pages) = PageReader::new(&mut stream).expect("canonical start");
    let their_size = info.ecreate.size;
    assert_eq!(their_size, enclave.size);
    assert!(info.sized);
    let mut tcs = 0;
    let mut heap_like = 0;
    while let Some((eadd, chunks, _data)) = pages.read_page().expect("canonical page") {
        let page_type = eadd.secinfo.flags.page_type();
        if page_type == 1 {
            // PT_TCS
            tcs += 1;
            assert_eq!(chunks.0, 0xffff, "TCS pages are measured");
        }
        if chunks.0 == 0 {
            heap_like += 1;
        }
    }
    assert_eq!(tcs, 3);
    let expected_unmeasured = (1 << 20) / 4096 + 3 * ((64 << 10) / 4096 + 2);
    assert_eq!(heap_like, expected_unmeasured);
    // Nothing after the stream.
    assert!(stream.read_meas().expect("eof").is_none());
}

#[test]
fn sgxs_crate_parses_and_verifies_our_sigstruct() {
    let key = sig1_key();
    let enclave = build_enclave(&system_elf(), &EnclaveSettings::default()).expect("layout");
    let params = SigstructParams::for_mode(true, 0x2024_0315);
    let ours = Sigstruct::sign(&key, &params, &enclave.mrenclave).expect("signs");

    let theirs = sgxs::sigstruct::read(&mut &ours.to_bytes()[..]).expect("1808 bytes");
    assert_eq!(theirs.enclavehash, enclave.mrenclave);
    assert_eq!(theirs.date, 0x2024_0315);
    assert_eq!(theirs.exponent, 3);
    assert_eq!(
        theirs.attributes.flags,
        AttributesFlags::MODE64BIT | AttributesFlags::DEBUG
    );
    assert_eq!(theirs.attributes.xfrm, 0x3);
    assert_eq!(theirs.attributemask, [u64::MAX, !0xe4]);
    assert_eq!(&theirs.modulus[..], &key.modulus_le()[..]);
    sgxs::sigstruct::verify::<_, Sha256Ops>(&theirs, &RsaOps(key.clone()))
        .expect("their verification");

    // Their signer, fed the same fields, produces the same bytes.
    let mut signer = Signer::new(EnclaveHash::new(enclave.mrenclave));
    signer
        .date(2024, 3, 15)
        .attributes_flags(
            AttributesFlags::MODE64BIT | AttributesFlags::DEBUG,
            u64::MAX,
        )
        .attributes_xfrm(0x3, !0xe4)
        .miscselect(Miscselect::default(), 0xffff_ffff);
    let built = signer
        .sign::<_, Sha256Ops>(&RsaOps(key))
        .expect("their signer");
    assert_eq!(built.as_ref(), &ours.to_bytes()[..]);
}
