//! `scone enclave measure|sign|show` through the binary, against the public SGX vectors
//! in `fixtures/sgx` (see its README for their source).

mod support;

use predicates::prelude::*;
use rsa::pkcs1::EncodeRsaPrivateKey;
use std::path::PathBuf;

fn vectors() -> PathBuf {
    support::vectors()
}

fn vector(name: &str) -> PathBuf {
    vectors().join(name)
}

#[test]
fn measure_prints_the_readme_mrenclaves() {
    for (file, expected) in [
        (
            "test_enclave.sgxs",
            "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc",
        ),
        (
            "report.sgxs",
            "a06a560b26f5e397b2d7872fac66fe4b43bf4f507296ee048f110be6fb1a2290",
        ),
    ] {
        support::scone()
            .args(["enclave", "measure"])
            .arg(vector(file))
            .assert()
            .success()
            .stdout(format!("{expected}\n"));
    }
}

#[test]
fn measure_refuses_a_file_that_is_not_sgxs() {
    support::scone()
        .args(["enclave", "measure"])
        .arg(vector("sig1.key.pem"))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("invalid SGXS stream"))
        .stderr(predicate::str::contains("PRIVATE").not());
}

#[test]
fn sign_reproduces_sig1_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sig1.bin");
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(vector("sig1.key.pem"))
        .args([
            "--enclave-hash",
            "c50673624a6cb17c1c6c2a4e6906f47a170c4629b8723781d1017ef376f1a75d",
            "--date",
            "2016-01-09",
            "--flags",
            "0x4",
            "--flags-mask",
            "0xfffffffffffffffd",
            "--xfrm",
            "3",
            "--xfrm-mask",
            "0xffffffffffffff1b",
            "--miscselect",
            "0",
            "--miscmask",
            "4294967295",
            "--isvprodid",
            "0",
            "--isvsvn",
            "0",
            "--vendor",
            "0",
            "-o",
        ])
        .arg(&out)
        .assert()
        .success();
    let ours = std::fs::read(&out).expect("written");
    let expected = std::fs::read(vector("sig1.sigstruct.bin")).expect("vector");
    assert_eq!(ours, expected);
}

#[test]
fn show_verifies_test_enclave_sig_and_rejects_a_flipped_byte() {
    support::scone()
        .args(["enclave", "show"])
        .arg(vector("test_enclave.sig"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "enclavehash          784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc",
        ))
        .stdout(predicate::str::contains("date                 2016-12-14"))
        .stdout(predicate::str::contains("mrsigner"))
        .stdout(predicate::str::contains("FAILED").not());

    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(vector("test_enclave.sig")).expect("vector");
    bytes[1024] ^= 0x01; // ISVPRODID: a signed field
    let tampered = dir.path().join("tampered.sig");
    std::fs::write(&tampered, &bytes).expect("write");
    support::scone()
        .args(["enclave", "show"])
        .arg(&tampered)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("rsa signature        FAILED"))
        .stderr(predicate::str::contains("does not verify"));

    let short = dir.path().join("short.sig");
    std::fs::write(&short, &bytes[..100]).expect("write");
    support::scone()
        .args(["enclave", "show"])
        .arg(&short)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("1808 bytes"));
}

#[test]
fn show_json_is_one_sorted_object() {
    let out = support::scone()
        .args(["enclave", "show", "--json"])
        .arg(vector("test_enclave.sig"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["verification"]["q1"], true);
    assert_eq!(
        v["enclavehash"],
        "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
    );
    assert_eq!(v["isvprodid"], 65535);
    assert_eq!(v["mrsigner"].as_str().map(str::len), Some(64));
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(text.find("\"attributemask_flags\"") < text.find("\"valid\""));
}

#[test]
fn sign_an_sgxs_reproducibly_from_source_date_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sign = |out: &std::path::Path| {
        support::scone()
            .env("SOURCE_DATE_EPOCH", "1452340800")
            .args(["enclave", "sign", "--mode", "debug", "--key"])
            .arg(vector("sig1.key.pem"))
            .arg("--sgxs")
            .arg(vector("test_enclave.sgxs"))
            .arg("-o")
            .arg(out)
            .assert()
            .success()
            .stderr(predicate::str::contains(
                "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc",
            ));
    };
    let (a, b) = (dir.path().join("a.sig"), dir.path().join("b.sig"));
    sign(&a);
    sign(&b);
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    support::scone()
        .args(["enclave", "show"])
        .arg(&a)
        .assert()
        .success()
        .stdout(predicate::str::contains("date                 2016-01-09"))
        .stdout(predicate::str::contains("debug                true"))
        .stdout(predicate::str::contains(
            "enclavehash          784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc",
        ));
}

#[test]
fn sign_refuses_non_sgx_keys_and_bad_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key =
        rsa::PrivateKey::new_with_exp(&mut getrandom::SysRng, 2048, rsa::BoxedUint::from(3u64))
            .expect("keygen");
    let small = dir.path().join("small.pem");
    std::fs::write(
        &small,
        key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pem")
            .as_bytes(),
    )
    .expect("write");
    let hash = "00".repeat(32);
    let out = dir.path().join("out.sig");
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(&small)
        .args(["--enclave-hash", &hash, "-o"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("RSA-3072 with public exponent 3"))
        .stderr(predicate::str::contains("RSA-2048"));
    assert!(!out.exists());

    // Neither --sgxs nor --enclave-hash, a non-number, a too-large number: usage errors.
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(vector("sig1.key.pem"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2);
    for (flag, value) in [
        ("--flags", "zz"),
        ("--isvsvn", "0x10000"),
        ("--miscmask", "0x100000000"),
    ] {
        support::scone()
            .args(["enclave", "sign", "--key"])
            .arg(vector("sig1.key.pem"))
            .args(["--enclave-hash", &hash, flag, value, "-o"])
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
    }
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(vector("sig1.key.pem"))
        .args(["--enclave-hash", "abc", "-o"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("64 hex digits, this one has 3"));
    // Not hex: which character, where (a usage error, exit 2, like --flags zz).
    let not_hex = format!("zz{}", &hash[2..]);
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(vector("sig1.key.pem"))
        .args(["--enclave-hash", &not_hex, "-o"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "'z' at character 1 is not a hex digit",
        ));
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(vector("sig1.key.pem"))
        .args(["--enclave-hash", &hash, "--date", "2023-02-30", "-o"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2023-02-30"));
    assert!(!out.exists());
}

#[test]
fn sign_says_what_a_key_that_cannot_sign_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n";
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "enc.pem",
            format!("-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}-----END ENCRYPTED PRIVATE KEY-----\n")
                .into_bytes(),
            "is an encrypted private key (ENCRYPTED PRIVATE KEY): decrypt it first",
        ),
        (
            "pub.pem",
            format!("-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n").into_bytes(),
            "is a public key (PUBLIC KEY): signing needs the private key",
        ),
        (
            "legacy.pem",
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                 DEK-Info: AES-128-CBC,00\n\n{body}-----END RSA PRIVATE KEY-----\n"
            )
            .into_bytes(),
            "is an encrypted private key (RSA PRIVATE KEY, Proc-Type: 4,ENCRYPTED)",
        ),
        (
            "k.der",
            vec![0x30, 0x82, 0x06, 0xe3, 0x02, 0x01, 0x00, 0x02, 0x82, 0x01, 0x81, 0x00, 0xc1],
            "is binary DER, not PEM: convert it",
        ),
    ];
    for (name, bytes, said) in cases {
        let key = dir.path().join(name);
        std::fs::write(&key, bytes).expect("write");
        support::scone()
            .args(["enclave", "sign", "--key"])
            .arg(&key)
            .args(["--enclave-hash", &"00".repeat(32), "-o"])
            .arg(dir.path().join("out.sig"))
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!("{name}: {said}")))
            .stderr(predicate::str::contains(
                "unencrypted RSA-3072 private key with public exponent 3",
            ));
    }
}

#[test]
fn show_says_a_zero_date_is_no_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(vector("test_enclave.sig")).expect("vector");
    bytes[20..24].copy_from_slice(&[0; 4]); // DATE
    let sig = dir.path().join("nodate.sig");
    std::fs::write(&sig, &bytes).expect("write");
    support::scone()
        .args(["enclave", "show"])
        .arg(&sig)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "date                 0000-00-00 (no date)",
        ));
    let out = support::scone()
        .args(["enclave", "show", "--json"])
        .arg(&sig)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["date"], "0000-00-00 (no date)");
}

#[test]
fn show_whose_reader_goes_away_ends_quietly() {
    // `scone enclave show FILE | head -1`: the reader has gone before scone
    // writes; it ends as `cat` would, not with a panic.
    let mut show = std::process::Command::new(assert_cmd::cargo::cargo_bin("scone"));
    show.args(["enclave", "show"])
        .arg(vector("test_enclave.sig"));
    support::assert_ends_quietly_without_reader(show);
}

/// Values real SGX refuses at launch (probe 52 F8) are signed, as asked, with a
/// warning each: XFRM without x87 and SSE, FLAGS without MODE64BIT. The
/// defaults, and bits the masks leave free, say nothing.
#[test]
fn sign_warns_of_attributes_sgx_refuses_at_launch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sig.bin");
    let sign = |extra: &[&str]| {
        let assert = support::scone()
            .args(["enclave", "sign", "--key"])
            .arg(vector("sig1.key.pem"))
            .args(["--enclave-hash", &"00".repeat(32), "-o"])
            .arg(&out)
            .args(extra)
            .assert()
            .success();
        String::from_utf8_lossy(&assert.get_output().stderr).to_string()
    };
    let told = sign(&["--xfrm", "0", "--flags", "0x2"]);
    let warns: Vec<&str> = told.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warns.len(), 2, "{told}");
    assert!(
        warns[0].contains("XFRM 0x0 lacks") && warns[0].contains("x87 and SSE"),
        "{told}"
    );
    assert!(warns[1].contains("lacks MODE64BIT (0x4)"), "{told}");
    assert_eq!(std::fs::metadata(&out).map(|m| m.len()).ok(), Some(1808));
    for quiet in [
        &[][..],
        &["--mode", "debug"],
        &["--xfrm", "0", "--xfrm-mask", "0xfffffffffffffffc"],
        &["--flags", "0", "--flags-mask", "0xfffffffffffffffb"],
    ] {
        let told = sign(quiet);
        assert!(!told.contains("warning:"), "{quiet:?}: {told}");
    }
}
