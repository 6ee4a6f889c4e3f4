//! Computes a digest of scone's own sources, so that a changed scone never
//! reuses cache entries made by another build of it (see fingerprint.rs).

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// FNV-1a, 64-bit, twice with different offsets: a stable digest without deps.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.push(PathBuf::from("Cargo.lock"));
    files.sort();
    let (mut a, mut b) = (0xcbf29ce484222325u64, 0x84222325cbf29ce4u64);
    for file in &files {
        let name = file.to_string_lossy();
        let content = fs::read(file).unwrap_or_default();
        a = fnv(name.as_bytes(), a);
        a = fnv(&content, a);
        b = fnv(&content, b);
        b = fnv(name.as_bytes(), b);
    }
    println!("cargo:rustc-env=SCONE_SOURCE_DIGEST={a:016x}{b:016x}");
}
