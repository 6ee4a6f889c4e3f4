//! divan micro-benchmarks of the hot paths of a no-op and of a one-file change in
//! a large repo (see docs/performance.md): the path table's per-file cost, file
//! hashing, the build state's check (load + one stat per path), and parsing a
//! service manifest from YAML against reading it back from the parse cache's
//! binary form.
//!
//! `cargo bench --bench engine` (optimised; add `--profile dev` for a quick run
//! whose numbers mean little).

use std::fs;
use std::path::{Path, PathBuf};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use scone::engine::stat::hash_file;
use scone::engine::state::{BuildState, LastLoad, NextState, Own, PathTable, Verdict};
use scone::engine::{ActionRecord, StepId};
use scone::manifest::codec::{decode_service, encode_service};
use scone::manifest::{parse, ServiceManifest};
use std::sync::Arc;

fn main() {
    // The build state is sealed with the user's key (`engine::seal_key`): a
    // key of this run's own, so the benchmark never touches the user's cache.
    // Set before divan starts any thread.
    let cache = tempfile::tempdir().expect("temp dir");
    std::env::set_var("SCONE_CACHE_DIR", cache.path());
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

/// A path table hit: one stat and one map lookup per file, nothing hashed.
#[divan::bench(args = [1000, 10000])]
fn path_table_hit(bencher: Bencher, n: usize) {
    let (dir, paths) = files(n, 512);
    let cache = PathTable::new(Arc::default(), &dir.path().join("store"));
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

/// The no-op check: load the state and stat every path it records (in
/// parallel), as a build does before it knows whether anything changed.
#[divan::bench(args = [1000, 10000])]
fn state_check(bencher: Bencher, n: usize) {
    let (dir, paths) = files(n, 16);
    let target = dir.path().join("target");
    let table = PathTable::new(Arc::default(), &target.join(".scone"));
    let consulted: Vec<Own> = paths
        .iter()
        .map(|p| {
            let digest = table.digest(p).expect("digest").digest;
            let mut raw = [0u8; 32];
            hex::decode_to_slice(&digest, &mut raw).expect("hex");
            Own::Read(p.clone(), Some(raw))
        })
        .collect();
    let record = ActionRecord {
        step: "copy:a".into(),
        fingerprint: "ab".repeat(32),
        record: serde_json::json!({}),
        files: Default::default(),
        publish: Vec::new(),
        info: serde_json::Value::Null,
        inputs: Vec::new(),
    };
    let id = StepId::new("copy", "a");
    NextState {
        ran: vec![(id.clone(), Arc::new(record), consulted)],
        planned: vec![id],
        whole: true,
        last: Some(LastLoad {
            key: [1; 32],
            started_ns: 0,
            watched: Vec::new(),
            own_names: Vec::new(),
            lock: dir.path().join("scone.lock"),
            outputs: Vec::new(),
            warnings: Vec::new(),
            plan: Default::default(),
        }),
        ..NextState::default()
    }
    .write(&target, table)
    .expect("write the state");
    bencher.counter(ItemsCount::new(n)).bench(|| {
        let state = BuildState::load(&target);
        assert!(matches!(state.check(&[1; 32], &[]), Verdict::Fresh));
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
