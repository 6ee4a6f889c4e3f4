//! divan micro-benchmarks of the mesh-wide work of a one-file change in a large
//! mesh (issue 9): rendering the CAS session and the Helm chart of N services, and
//! loading and saving a `scone.lock` that pins N images.
//!
//! `cargo bench --bench mesh` (optimised; add `--profile dev` for a quick run
//! whose numbers mean little).

use divan::counter::ItemsCount;
use divan::Bencher;
use scone::cas::session::{
    content_hash, render, SecretDecl, SecretKind, ServiceInput, SessionInput,
};
use scone::helm::{render_chart, ChartInput, ChartService};
use scone::lockfile::{ImageLock, Lockfile, SessionLock};

fn main() {
    divan::main();
}

fn hex(i: usize, salt: &str) -> String {
    blake3::hash(format!("{salt}{i}").as_bytes())
        .to_hex()
        .to_string()
}

/// A session like the generated monorepo's: one enclave, three variables (one a secret).
fn session(n: usize) -> SessionInput {
    SessionInput {
        name: "mono-0".into(),
        services: (0..n)
            .map(|i| ServiceInput {
                name: format!("svc_{i:04}"),
                image_name: format!("svc_{i:04}"),
                mrenclaves: vec![hex(0, "mrenclave")],
                command: "app main.cfg".into(),
                pwd: "/app".into(),
                environment: vec![
                    ("SERVICE_ID".into(), format!("svc_{i:04}")),
                    ("SERVICE_SECRET".into(), format!("$$SCONE::secret_{i:04}")),
                    ("LOG_LEVEL".into(), "info".into()),
                ],
                fspf_tag: Some(hex(i, "tag")),
            })
            .collect(),
        secrets: (0..n)
            .map(|i| SecretDecl {
                name: format!("secret_{i:04}"),
                kind: SecretKind::Ascii,
                size: Some(32),
                fixed: false,
                export_to: vec![format!("svc_{i:04}")],
            })
            .collect(),
        ..SessionInput::default()
    }
}

fn chart(n: usize) -> ChartInput {
    let mut input = ChartInput::new("mono-0", "e5fcc9871c6b", "127.0.0.1:8081");
    for i in 0..n {
        input.services.push(ChartService::new(
            "mono-0",
            &format!("svc_{i:04}"),
            &format!("127.0.0.1:5000/mono/svc-{i:04}"),
            &format!("sha256:{}", hex(i, "image")),
        ));
    }
    input
}

fn lock(n: usize) -> Lockfile {
    let mut lock = Lockfile::default();
    for i in 0..n {
        lock.image.insert(
            format!("svc_{i:04}"),
            ImageLock {
                reference: format!("127.0.0.1:5000/mono/svc-{i:04}:latest"),
                digest: format!("sha256:{}", hex(i, "image")),
                mrenclave: hex(0, "mrenclave"),
                mrsigner: hex(0, "mrsigner"),
                fspf_tag: hex(i, "tag"),
            },
        );
    }
    lock.session.insert(
        "mono-0".into(),
        SessionLock {
            content: hex(0, "session"),
            cas_hash: None,
        },
    );
    lock
}

/// The policy step's work: render the session and take its content hash.
#[divan::bench(args = [100, 1000])]
fn session_render(bencher: Bencher, n: usize) {
    let input = session(n);
    bencher.counter(ItemsCount::new(n)).bench(|| {
        let yaml = render(&input).expect("render");
        divan::black_box(content_hash(&yaml))
    });
}

/// The chart step's work: render the chart (no plain manifests).
#[divan::bench(args = [100, 1000])]
fn chart_render(bencher: Bencher, n: usize) {
    let input = chart(n);
    bencher
        .counter(ItemsCount::new(n))
        .bench(|| divan::black_box(render_chart(&input, None, false).expect("render")));
}

/// `Lockfile::load` of a lock pinning `n` images.
#[divan::bench(args = [1000])]
fn lock_load(bencher: Bencher, n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scone.lock");
    lock(n).save(&path).expect("save");
    bencher
        .counter(ItemsCount::new(n))
        .bench(|| divan::black_box(Lockfile::load(&path).expect("load")));
}

/// `Lockfile::save` of an unchanged lock (what a one-file change does: the lock
/// is compared and left alone) pinning `n` images.
#[divan::bench(args = [1000])]
fn lock_save_unchanged(bencher: Bencher, n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scone.lock");
    let lock = lock(n);
    lock.save(&path).expect("save");
    bencher
        .counter(ItemsCount::new(n))
        .bench(|| divan::black_box(lock.save(&path).expect("save")));
}

/// The canonical text of a lock pinning `n` images (what every save starts with).
#[divan::bench(args = [1000])]
fn lock_to_text(bencher: Bencher, n: usize) {
    let lock = lock(n);
    bencher
        .counter(ItemsCount::new(n))
        .bench(|| divan::black_box(lock.to_text()));
}
