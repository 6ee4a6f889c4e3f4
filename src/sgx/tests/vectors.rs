//! The public vectors: MRENCLAVE of the `.sgxs` files, sig1 reproduced byte for byte,
//! `test_enclave.sig` verified and a tampered copy rejected.

use super::{sig1_key, vector};
use crate::sgx::measure::measure;
use crate::sgx::sigstruct::{
    bcd_date, bcd_date_from_epoch, parse_date, Sigstruct, SigstructParams,
};
use sha2::{Digest, Sha256};

fn sig1_params() -> SigstructParams {
    SigstructParams {
        vendor: 0,
        date: 0x2016_0109,
        swdefined: 0,
        miscselect: 0,
        miscmask: 0xffff_ffff,
        flags: 0x4,
        flags_mask: !0x2,
        xfrm: 0x3,
        xfrm_mask: !0xe4,
        isvprodid: 0,
        isvsvn: 0,
    }
}

#[test]
fn sig1_is_reproduced_byte_for_byte() {
    let expected = vector("sig1.sigstruct.bin");
    assert_eq!(
        hex::encode(Sha256::digest(&expected)),
        "7c315fa9798fc884e13feddeb12d05532cc432e057cea4aaf2cb07a63ea6f726"
    );
    let mut hash = [0u8; 32];
    hex::decode_to_slice(
        "c50673624a6cb17c1c6c2a4e6906f47a170c4629b8723781d1017ef376f1a75d",
        &mut hash,
    )
    .expect("hex");
    let ours = Sigstruct::sign(&sig1_key(), &sig1_params(), &hash).expect("signs");
    assert_eq!(ours.to_bytes().as_slice(), expected.as_slice());
    assert!(ours.verify().is_valid());
    assert_eq!(ours.mrsigner(), sig1_key().mrsigner());
}

#[test]
fn test_enclave_sig_verifies_and_matches_its_sgxs() {
    let sig = Sigstruct::from_bytes(&vector("test_enclave.sig")).expect("1808 bytes");
    let v = sig.verify();
    assert!(v.is_valid(), "{v:?}");
    let m = measure(&vector("test_enclave.sgxs")).expect("valid");
    assert_eq!(sig.enclavehash(), m.mrenclave);
    assert_eq!(
        Sigstruct::from_bytes(&sig.to_bytes()).expect("round trip"),
        sig
    );
}

#[test]
fn one_flipped_byte_is_rejected() {
    let original = vector("test_enclave.sig");
    // A signed field, the signature itself, the modulus, Q1 and Q2.
    for (at, check) in [
        (960usize, "signature"),
        (600, "signature"),
        (200, "signature"),
        (1100, "q1"),
        (1500, "q2"),
    ] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        let v = Sigstruct::from_bytes(&bytes).expect("1808 bytes").verify();
        assert!(!v.is_valid(), "flip at {at} accepted");
        let failed = match check {
            "signature" => !v.signature,
            "q1" => !v.q1,
            _ => !v.q2,
        };
        assert!(failed, "flip at {at}: {v:?}");
    }
    assert!(Sigstruct::from_bytes(&original[..1807]).is_err());
}

#[test]
fn dates_are_bcd() {
    assert_eq!(bcd_date(2016, 1, 9).expect("valid"), 0x2016_0109);
    assert_eq!(parse_date("2024-02-29").expect("leap day"), 0x2024_0229);
    assert!(parse_date("2023-02-29").is_err());
    assert!(parse_date("2023-13-01").is_err());
    assert!(parse_date("20230101").is_err());
    assert_eq!(bcd_date_from_epoch(0).expect("epoch"), 0x1970_0101);
    // 2016-01-09T12:00:00Z
    assert_eq!(
        bcd_date_from_epoch(1_452_340_800).expect("date"),
        0x2016_0109
    );
    // 2000-02-29T23:59:59Z
    assert_eq!(bcd_date_from_epoch(951_868_799).expect("date"), 0x2000_0229);
}

#[test]
fn debug_mode_sets_the_debug_attribute() {
    let key = sig1_key();
    let hash = [7u8; 32];
    let debug =
        Sigstruct::sign(&key, &SigstructParams::for_mode(true, 0x2020_0101), &hash).expect("signs");
    let prod = Sigstruct::sign(&key, &SigstructParams::for_mode(false, 0x2020_0101), &hash)
        .expect("signs");
    assert!(debug.is_debug());
    assert!(!prod.is_debug());
    assert_eq!(debug.flags_mask(), u64::MAX);
    assert!(debug.verify().is_valid() && prod.verify().is_valid());
    assert_eq!(debug.date(), 0x2020_0101);
    assert_eq!(SigstructParams::default().date, 0x1970_0101);
}
