//! Benchmark of the `sign` step's library work: lay out and measure an enclave with a
//! 760 MB heap around a 6 MB entry binary, sign its SIGSTRUCT and compute an fspf tag.
//! Target: well under one second. Run with `cargo bench --bench sign`.

use std::time::{Duration, Instant};

use scone::sgx::fspf::{fspf_tag, FspfEntry};
use scone::sgx::layout::{build_enclave, EnclaveSettings};
use scone::sgx::sigstruct::{Sigstruct, SigstructParams};
use scone::sgx::SigningKey;
use sha2::{Digest, Sha256};

/// A 64-bit x86-64 PIE with a `code_len`-byte executable segment of deterministic
/// pseudo-random bytes and a small data segment with a bss tail.
fn synthetic_elf(code_len: usize) -> Vec<u8> {
    let mut code = Vec::with_capacity(code_len);
    let mut block: [u8; 32] = Sha256::digest(b"scone bench").into();
    while code.len() < code_len {
        block = Sha256::digest(block).into();
        code.extend_from_slice(&block);
    }
    code.truncate(code_len);
    let data = vec![0x5au8; 64 << 10];
    let (ehdr, phdr) = (64usize, 56usize);
    let code_off = 0x1000usize;
    let data_off = (code_off + code_len).div_ceil(0x1000) * 0x1000;
    let mut out = vec![0u8; data_off + data.len()];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1;
    out[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    out[24..32].copy_from_slice(&(code_off as u64).to_le_bytes()); // entry
    out[32..40].copy_from_slice(&(ehdr as u64).to_le_bytes());
    out[54..56].copy_from_slice(&(phdr as u16).to_le_bytes());
    out[56..58].copy_from_slice(&2u16.to_le_bytes());
    let segs = [
        (5u32, code_off, code_len as u64),
        (6u32, data_off, data.len() as u64 + (1 << 20)),
    ];
    for (i, (flags, off, memsz)) in segs.iter().enumerate() {
        let at = ehdr + i * phdr;
        let filesz = if i == 0 { code_len } else { data.len() } as u64;
        out[at..at + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(*off as u64).to_le_bytes());
        out[at + 16..at + 24].copy_from_slice(&(*off as u64).to_le_bytes());
        out[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
        out[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    out[code_off..code_off + code_len].copy_from_slice(&code);
    out[data_off..].copy_from_slice(&data);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let elf = synthetic_elf(6 << 20);
    let settings = EnclaveSettings::from_env(&[("SCONE_HEAP".to_string(), "760M".to_string())])?;
    let key = SigningKey::generate()?;
    let params = SigstructParams::for_mode(false, 0x2024_0101);
    let script = b"print('hello')\n".to_vec();

    let runs = 7;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let enclave = build_enclave(&elf, &settings)?;
        let sig = Sigstruct::sign(&key, &params, &enclave.mrenclave)?;
        let mut files = vec![
            FspfEntry::from_contents("/usr/bin/python3", 0o755, &elf),
            FspfEntry::from_contents("/python/print_env.py", 0o644, &script),
        ];
        let tag = fspf_tag(&mut files);
        times.push(start.elapsed());
        last = Some((
            enclave.mrenclave,
            enclave.size,
            enclave.sgxs.len(),
            sig.verify().is_valid(),
            tag,
        ));
    }
    times.sort();
    let median = times[runs / 2];
    if let Some((mrenclave, size, sgxs_len, valid, tag)) = last {
        println!("sign step, 760 MB heap + 6 MB binary ({runs} runs)");
        println!("  enclave size     {} MiB", size >> 20);
        println!(
            "  enclave.sgxs     {:.1} MiB",
            sgxs_len as f64 / f64::from(1 << 20)
        );
        println!("  mrenclave        {}", hex::encode(mrenclave));
        println!("  fspf_tag         {tag}");
        println!("  sigstruct valid  {valid}");
    }
    println!(
        "  min {:?}  median {:?}  max {:?}",
        times[0],
        median,
        times[runs - 1]
    );
    if median >= Duration::from_secs(1) {
        return Err(format!("median {median:?} is over the 1 s target").into());
    }
    Ok(())
}
