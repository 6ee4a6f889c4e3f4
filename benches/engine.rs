//! divan micro-benchmarks of the hot paths of a no-op and of a one-file change in
//! a large repo (see docs/performance.md): the stat cache's per-file cost, file
//! hashing, the no-op fast-path check, and parsing a service manifest from YAML
//! against reading it back from the parse cache's binary form.
//!
//! `cargo bench --bench engine` (optimised; add `--profile dev` for a quick run
//! whose numbers mean little).

use std::fs;
use std::path::{Path, PathBuf};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use scone::engine::noop::{Consulted, NoopRecord, Seen, Verdict};
use scone::engine::statcache::{hash_file, StatCache};
use scone::manifest::codec::{decode_service, encode_service};
use scone::manifest::{parse, ServiceManifest};

fn main() {
    divan::main();
}

/// `n` small files in a fresh folder, with an mtime in the past so that the
/// stat cache trusts them.
fn files(n: usize, size: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 7);
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            let sub = dir.path().join(format!("svc-{:04}", i / 8));
            fs::create_dir_all(&sub).expect("mkdir");
            let p = sub.join(format!("file-{i}.txt"));
            let body: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
            fs::write(&p, body).expect("write");
            filetime::set_file_mtime(&p, old).expect("mtime");
            p
        })
        .collect();
    (dir, paths)
}

/// A stat cache hit: one stat and one map lookup per file, nothing hashed.
#[divan::bench(args = [1000, 10000])]
fn statcache_hit(bencher: Bencher, n: usize) {
    let (dir, paths) = files(n, 512);
    let cache = StatCache::load(&dir.path().join("cache"));
    for p in &paths {
        cache.digest(p).expect("digest");
    }
    bencher.counter(ItemsCount::new(n)).bench(|| {
        for p in &paths {
            divan::black_box(cache.digest(p).expect("digest"));
        }
    });
    assert_eq!(
        cache.hashed_files(),
        n as u64,
        "every later digest was a hit"
    );
}

/// blake3 of one file, streamed (what a stat cache miss costs).
#[divan::bench(args = [1 << 20, 16 << 20])]
fn hash_one_file(bencher: Bencher, size: usize) {
    let (_dir, paths) = files(1, size);
    bencher
        .counter(BytesCount::new(size))
        .bench(|| hash_file(&paths[0]).expect("hash"));
}

/// The no-op fast path's check: stat every recorded path (in parallel).
#[divan::bench(args = [1000, 10000])]
fn noop_check(bencher: Bencher, n: usize) {
    let (dir, paths) = files(n, 16);
    let target = dir.path().join("target");
    // Written long ago, as sources are: no path is racy.
    let past = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    let paths = paths
        .into_iter()
        .map(|path| {
            filetime::set_file_mtime(&path, past).expect("mtime");
            Consulted {
                path,
                seen: Seen::Own,
                owner: None,
            }
        })
        .collect();
    NoopRecord::capture("key".into(), target.clone(), paths, Vec::new(), 0)
        .expect("a record")
        .save(&target)
        .expect("save");
    bencher.counter(ItemsCount::new(n)).bench(|| {
        assert!(matches!(
            NoopRecord::check(&target, "key", false),
            Verdict::Unchanged { count: 0, .. }
        ));
    });
}

const SERVICE: &str = r#"apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: SERVICE_ID
      value: "svc_0500"
    - name: SERVICE_SECRET
      value: "$$SCONE::secret_0500$$"
  global:
    - name: LOG_LEVEL
secrets:
  local:
    - name: secret_0500
      kind: ascii
      size: 16
build:
  name: svc_0500
  kind: binary
  from: "dir:../../base"
  to: "127.0.0.1:5000/mono/svc-0500:latest"
  pwd: /app
  command: "app main.cfg"
  copy:
    - main.cfg
    - lib
"#;

/// Parsing a generated service manifest from YAML (a parse cache miss).
#[divan::bench]
fn manifest_from_yaml() -> ServiceManifest {
    parse::from_yaml(divan::black_box(SERVICE), Path::new("service.yml")).expect("parse")
}

/// The same manifest read back from the parse cache's binary form (a hit).
#[divan::bench]
fn manifest_from_cache(bencher: Bencher) {
    let m: ServiceManifest = parse::from_yaml(SERVICE, Path::new("service.yml")).expect("parse");
    let bytes = encode_service(&m);
    bencher.bench(|| decode_service(divan::black_box(&bytes)).expect("decode"));
}
