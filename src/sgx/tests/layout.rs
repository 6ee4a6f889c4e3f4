//! The enclave layout: what changes MRENCLAVE (binary, every setting) and what does not
//! (rebuilds, bytes outside the loaded segments, the fspf files), and settings parsing.

use super::system_elf;
use crate::sgx::elf::{synthetic, ET_DYN, ET_EXEC};
use crate::sgx::fspf::{fspf_tag, FspfEntry};
use crate::sgx::layout::{build_enclave, parse_size, EnclaveSettings};
use crate::sgx::measure::measure;
use sha2::{Digest, Sha256};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn small() -> EnclaveSettings {
    EnclaveSettings {
        heap: 1 << 20,
        stack: 64 << 10,
        threads: 2,
        ..EnclaveSettings::default()
    }
}

#[test]
fn same_inputs_give_the_same_enclave_and_sgxs_hash_is_mrenclave() {
    let elf = system_elf();
    let a = build_enclave(&elf, &small()).expect("layout");
    let b = build_enclave(&elf, &small()).expect("layout");
    assert_eq!(a, b);
    let direct: [u8; 32] = Sha256::digest(&a.sgxs).into();
    assert_eq!(a.mrenclave, direct);
    let m = measure(&a.sgxs).expect("our stream is valid");
    assert_eq!(m.mrenclave, a.mrenclave);
    assert_eq!(m.size, a.size);
    assert!(a.size.is_power_of_two());
    assert_eq!(m.ssaframesize, 1);
}

#[test]
fn every_setting_and_the_binary_change_mrenclave() {
    let elf = system_elf();
    let base = build_enclave(&elf, &small()).expect("layout").mrenclave;
    let variants = [
        EnclaveSettings {
            heap: 2 << 20,
            ..small()
        },
        EnclaveSettings {
            stack: 128 << 10,
            ..small()
        },
        EnclaveSettings {
            threads: 3,
            ..small()
        },
        EnclaveSettings {
            allow_dlopen: true,
            ..small()
        },
        EnclaveSettings {
            debug: true,
            ..small()
        },
    ];
    let mut seen = vec![base];
    for v in &variants {
        let m = build_enclave(&elf, v).expect("layout").mrenclave;
        assert!(!seen.contains(&m), "{v:?} did not give a new MRENCLAVE");
        seen.push(m);
    }
    // One byte of code changed.
    let img = crate::sgx::elf::parse(&elf).expect("elf");
    let exec = img
        .segments
        .iter()
        .find(|s| s.flags.execute)
        .expect("code segment");
    let at = exec.data.as_ptr() as usize - elf.as_ptr() as usize + exec.data.len() / 2;
    let mut patched = elf.clone();
    patched[at] ^= 0xff;
    let m = build_enclave(&patched, &small()).expect("layout").mrenclave;
    assert!(!seen.contains(&m));
}

#[test]
fn bytes_outside_loaded_segments_and_fspf_files_do_not_change_mrenclave() {
    let elf = system_elf();
    let base = build_enclave(&elf, &small()).expect("layout").mrenclave;
    let mut appended = elf.clone();
    appended.extend_from_slice(b"trailing data that no PT_LOAD covers");
    assert_eq!(
        build_enclave(&appended, &small())
            .expect("layout")
            .mrenclave,
        base
    );

    // The service's own files go into the fspf tag, not into the enclave.
    let bin = FspfEntry::from_contents("/usr/bin/ls", 0o755, &elf);
    let mut v1 = vec![
        bin.clone(),
        FspfEntry::from_contents("/python/print_env.py", 0o644, b"print(1)\n"),
    ];
    let mut v2 = vec![
        bin,
        FspfEntry::from_contents("/python/print_env.py", 0o644, b"print(2)\n"),
    ];
    assert_ne!(fspf_tag(&mut v1), fspf_tag(&mut v2));
    assert_eq!(
        build_enclave(&elf, &small()).expect("layout").mrenclave,
        base
    );
}

#[test]
fn settings_from_env() {
    let s = EnclaveSettings::from_env(&env(&[
        ("SCONE_HEAP", "256M"),
        ("SCONE_STACK", "100k"),
        ("SCONE_THREADS", "4"),
        ("SCONE_ALLOW_DLOPEN", "1"),
        ("API_USER", "ignored"),
    ]))
    .expect("valid");
    assert_eq!(s.heap, 256 << 20);
    assert_eq!(s.stack, 100 << 10); // 100K is 25 pages exactly
    assert_eq!(s.threads, 4);
    assert!(s.allow_dlopen && !s.debug);
    assert_eq!(
        EnclaveSettings::from_env(&[]).expect("defaults"),
        EnclaveSettings::default()
    );
    let rounded = EnclaveSettings::from_env(&env(&[("SCONE_HEAP", "5000")])).expect("valid");
    assert_eq!(rounded.heap, 8192);
    assert_eq!(parse_size("SCONE_HEAP", "1G").expect("1G"), 1 << 30);
    assert_eq!(parse_size("SCONE_HEAP", "64MiB").expect("64MiB"), 64 << 20);

    for (name, value, needle) in [
        ("SCONE_HEAP", "lots", "SCONE_HEAP"),
        ("SCONE_HEAP", "0", "between"),
        ("SCONE_HEAP", "100G", "between"),
        ("SCONE_STACK", "12Q", "SCONE_STACK"),
        ("SCONE_THREADS", "0", "SCONE_THREADS"),
        ("SCONE_THREADS", "many", "1 to"),
        ("SCONE_ALLOW_DLOPEN", "maybe", "SCONE_ALLOW_DLOPEN"),
        ("SCONE_HEAP", "99999999999999999999G", "SCONE_HEAP"),
    ] {
        let err = EnclaveSettings::from_env(&env(&[(name, value)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle) && err.contains(name),
            "{name}={value}: {err}"
        );
    }
    // The total is bounded too, and reported on the size given last.
    let err = EnclaveSettings::from_env(&env(&[("SCONE_THREADS", "4096"), ("SCONE_STACK", "1G")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SCONE_STACK") && err.contains("at most 64 GiB"),
        "{err}"
    );
    let at_bound = env(&[
        ("SCONE_HEAP", "32G"),
        ("SCONE_THREADS", "32"),
        ("SCONE_STACK", "1G"),
    ]);
    assert_eq!(
        EnclaveSettings::from_env(&at_bound)
            .expect("64 GiB")
            .memory(),
        64 << 30
    );
    let over = env(&[
        ("SCONE_THREADS", "32"),
        ("SCONE_STACK", "1G"),
        ("SCONE_HEAP", "33G"),
    ]);
    let err = EnclaveSettings::from_env(&over).unwrap_err().to_string();
    assert!(
        err.contains("SCONE_HEAP") && err.contains("at most 64 GiB"),
        "{err}"
    );
}

#[test]
fn shared_pages_bss_and_fixed_address_binaries() {
    // Two segments sharing page 1 (code ends, data begins mid-page), a bss tail.
    let code = vec![0x90u8; 0x1800];
    let data = vec![0xAAu8; 0x100];
    let elf = synthetic(
        ET_EXEC,
        0x401000,
        &[(0x400000, 0x1800, 5, &code), (0x401800, 0x5000, 6, &data)],
    );
    let e = build_enclave(&elf, &small()).expect("layout");
    let m = measure(&e.sgxs).expect("valid");
    // Pages 0..=6 of the image: 7 measured pages, 16 EEXTENDs each, + TCS x2 + config.
    assert_eq!(m.eextend, (7 + 2 + 1) * 16);
    // The same binary linked elsewhere (PIE at 0) measures the same: offsets are relative.
    let pie = synthetic(
        ET_DYN,
        0x1000,
        &[(0, 0x1800, 5, &code), (0x1800, 0x5000, 6, &data)],
    );
    assert_eq!(
        build_enclave(&pie, &small()).expect("layout").mrenclave,
        e.mrenclave
    );
    // An entry point outside the segments is refused.
    let bad = synthetic(ET_DYN, 0x9_0000, &[(0, 0x1800, 5, &code)]);
    let err = build_enclave(&bad, &small()).unwrap_err().to_string();
    assert!(err.contains("entry point"), "{err}");
    let err = build_enclave(b"#!/bin/sh\n", &small())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ELF"), "{err}");
}

#[test]
fn a_large_heap_is_a_power_of_two_enclave() {
    let s = EnclaveSettings {
        heap: 760 << 20,
        ..EnclaveSettings::default()
    };
    let e = build_enclave(&system_elf(), &s).expect("layout");
    assert_eq!(e.size, 1 << 30);
    let m = measure(&e.sgxs).expect("valid");
    assert!(m.eadd as u64 >= (760u64 << 20) / 4096);
}

#[test]
fn an_oversized_image_is_refused_before_any_work() {
    // A 2 GiB .bss would be 2 GiB of measured pages: refused with a clear message.
    let elf = synthetic(ET_DYN, 0, &[(0, 2 << 30, 6, b"x")]);
    let err = build_enclave(&elf, &small()).unwrap_err().to_string();
    assert!(err.contains("more than 1G"), "{err}");
}

/// Prefix states in memory, counting what was asked.
#[derive(Default)]
struct States {
    kept: std::cell::RefCell<std::collections::HashMap<[u8; 32], Sha256>>,
}

impl crate::sgx::layout::PrefixStates for States {
    fn get(&self, key: &[u8; 32]) -> Option<Sha256> {
        self.kept.borrow().get(key).cloned()
    }
    fn put(&self, key: &[u8; 32], state: &Sha256) {
        self.kept.borrow_mut().insert(*key, state.clone());
    }
}

#[test]
fn a_reused_prefix_state_gives_the_enclave_a_fresh_measurement_gives() {
    use crate::sgx::layout::{build_enclave_reusing, prefix_key};
    let elf = system_elf();
    let elf_id: [u8; 32] = Sha256::digest(&elf).into();
    let states = States::default();
    let first = build_enclave_reusing(&elf, &small(), Some((&elf_id, &states))).expect("layout");
    assert_eq!(first, build_enclave(&elf, &small()).expect("layout"));
    assert_eq!(states.kept.borrow().len(), 1, "the prefix state is kept");
    let key = prefix_key(&elf_id, first.size);
    assert!(states.kept.borrow().contains_key(&key));

    // Another heap, the same size: the kept state is used, and gives the same bytes
    // and MRENCLAVE as measuring from nothing.
    let other = EnclaveSettings {
        heap: small().heap + (64 << 10),
        ..small()
    };
    let reused = build_enclave_reusing(&elf, &other, Some((&elf_id, &states))).expect("layout");
    assert_eq!(reused.size, first.size);
    assert_eq!(reused, build_enclave(&elf, &other).expect("layout"));
    assert_ne!(reused.mrenclave, first.mrenclave);
    assert_eq!(states.kept.borrow().len(), 1, "nothing new to keep");

    // It really is used: a wrong state under that key gives a wrong MRENCLAVE (which
    // is why the key must name the binary's bytes).
    states.kept.borrow_mut().insert(key, Sha256::new());
    let wrong = build_enclave_reusing(&elf, &other, Some((&elf_id, &states))).expect("layout");
    assert_eq!(wrong.sgxs, reused.sgxs);
    assert_ne!(wrong.mrenclave, reused.mrenclave);

    // A bigger enclave or another binary is another prefix.
    assert_ne!(prefix_key(&elf_id, first.size * 2), key);
    assert_ne!(prefix_key(&[0u8; 32], first.size), key);
}
