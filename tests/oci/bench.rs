//! The layer benchmark: `write_layer` against `tar | gzip -1` on the same files.

use std::fs;
use std::process::Command;

use scone::oci::tar::{entries_from_dir, write_layer, Compression, ModePolicy};

use super::fixture::run;

/// Benchmark (run by hand, release build):
/// `cargo test --release --test oci -- --ignored --nocapture layer_throughput`.
/// Prints MB/s of `write_layer` (gzip) against `tar | gzip -1` on the same files.
#[test]
#[ignore]
fn layer_throughput() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // ~64 MB of mixed content: text-like (compressible) and pseudo-random files.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut total = 0u64;
    for dir in 0..16 {
        let d = src.join(format!("d{dir:02}"));
        fs::create_dir_all(&d).unwrap();
        for file in 0..16 {
            let mut bytes = Vec::with_capacity(256 * 1024);
            while bytes.len() < 256 * 1024 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if file % 2 == 0 {
                    bytes.extend_from_slice(format!("line {seed:x} of some text\n").as_bytes());
                } else {
                    bytes.extend_from_slice(&seed.to_le_bytes());
                }
            }
            total += bytes.len() as u64;
            fs::write(d.join(format!("f{file:02}")), bytes).unwrap();
        }
    }
    let entries = entries_from_dir(&src, "data", ModePolicy::Normalize).unwrap();
    let mb = total as f64 / 1e6;
    let start = std::time::Instant::now();
    let ours = write_layer(&entries, 0, Compression::Gzip, &tmp.path().join("blobs")).unwrap();
    let ours_s = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let zstd = write_layer(&entries, 0, Compression::Zstd, &tmp.path().join("zblobs")).unwrap();
    let zstd_s = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let out = tmp.path().join("ref.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "tar -C {} -cf - . | gzip -1 > {}",
        src.display(),
        out.display()
    )));
    let ref_s = start.elapsed().as_secs_f64();
    let ref_size = fs::metadata(&out).unwrap().len();
    println!("input            {mb:.1} MB");
    println!(
        "scone gzip-{}    {:.1} MB/s  -> {} bytes",
        scone::oci::tar::GZIP_LEVEL,
        mb / ours_s,
        ours.size
    );
    println!(
        "scone zstd-{}    {:.1} MB/s  -> {} bytes",
        scone::oci::tar::ZSTD_LEVEL,
        mb / zstd_s,
        zstd.size
    );
    println!(
        "tar | gzip -1    {:.1} MB/s  -> {ref_size} bytes",
        mb / ref_s
    );
    assert!(ours.size > 0 && zstd.size > 0 && ref_size > 0);
}
