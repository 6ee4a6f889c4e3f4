//! divan benchmarks of what a build does before the engine starts, in a generated
//! 1,000-service monorepo (the `gen-monorepo` generator): `workspace::load` with a
//! warm parse cache (no manifest changed since the last load) and `plan::plan` of
//! the loaded workspace (4,000 step nodes and one mesh).
//!
//! `cargo bench --bench workspace` (optimised; add `--profile dev` for a quick run
//! whose numbers mean little).

#[allow(dead_code)]
#[path = "../tests/support/monorepo.rs"]
mod monorepo;

use std::path::{Path, PathBuf};

use divan::Bencher;
use monorepo::MonorepoOptions;
use scone::plan::{self, Settings};
use scone::workspace::{self, LoadOptions, Workspace};

const SERVICES: usize = 1000;

fn main() {
    // The parse cache is sealed with the user's key (`engine::seal_key`): a
    // key of this run's own, so the benchmark never touches the user's cache.
    // Set before divan starts any thread.
    let cache = tempfile::tempdir().expect("temp dir");
    std::env::set_var("SCONE_CACHE_DIR", cache.path());
    divan::main();
}

/// A generated monorepo with `target/.scone` made (so the parse cache is on)
/// and loaded once (so the cache is warm).
fn repo() -> (tempfile::TempDir, LoadOptions, Workspace) {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = MonorepoOptions {
        services: SERVICES,
        ..MonorepoOptions::default()
    };
    let repo = monorepo::generate(dir.path(), opts);
    std::fs::create_dir_all(repo.root.join("target/.scone")).expect("mkdir target/.scone");
    let load = LoadOptions {
        files: repo.meshfiles.clone(),
        cwd: repo.root.clone(),
        target_dir: None,
    };
    let ws = workspace::load(&load).expect("the generated repo loads");
    assert_eq!(ws.services.len(), SERVICES);
    assert!(
        repo.root.join("target/.scone/parse-cache.bin").is_file(),
        "the first load filled the parse cache"
    );
    (dir, load, ws)
}

fn settings(root: &Path) -> Settings {
    Settings {
        target_dir: root.join("target"),
        source_date_epoch: 0,
        compression: scone::oci::tar::Compression::Gzip,
        debug: true,
        signing_key: PathBuf::from("signing-key.pem"),
        provenance_key: PathBuf::from("provenance-key.pem"),
        cache_dir: root.join("cache"),
        offline: true,
        insecure_registries: Vec::new(),
        docker_host: None,
        pinned_bases: Default::default(),
        known_sessions: Default::default(),
        only: Vec::new(),
        helm_templates: None,
        output_yaml: false,
        apply: None,
    }
}

/// `workspace::load` of the whole repo, nothing changed since the last load.
#[divan::bench(sample_count = 30)]
fn load_warm(bencher: Bencher) {
    let (_dir, load, first) = repo();
    bencher.bench(|| {
        let ws = workspace::load(&load).expect("loads");
        assert_eq!(ws.services.len(), first.services.len());
        divan::black_box(ws)
    });
}

/// `plan::plan` of the loaded repo.
#[divan::bench(sample_count = 30)]
fn plan_all(bencher: Bencher) {
    let (_dir, _load, ws) = repo();
    let settings = settings(&ws.root);
    bencher.bench(|| {
        let planned = plan::plan(&ws, &settings).expect("plans");
        // copy, layer, image, sign, sbom, provenance per service; base,
        // packages, policy, chart.
        assert_eq!(planned.nodes.len(), 6 * SERVICES + 4);
        divan::black_box(planned)
    });
}
