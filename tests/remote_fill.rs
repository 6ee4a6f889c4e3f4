//! Filling a checkout from the remote cache the fast way (`src/remote/tier.rs`):
//! the build index, results that come after their step stopped waiting, and a
//! damaged index. Against nginx WebDAV (the Bazel HTTP cache protocol).

mod support;

use std::path::{Path, PathBuf};

use support::monorepo::{generate, MonorepoOptions};
use support::webdav::Webdav;
use support::{finished, step_statuses, Sandbox};

const SERVICES: usize = 5;

fn checkout() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: SERVICES,
            ..MonorepoOptions::default()
        },
    );
    (sb, root)
}

/// `scone build -v` in `root`; its stderr (the build must succeed).
fn build_verbose(sb: &Sandbox, root: &Path, extra: &[&str]) -> String {
    let out = sb
        .scone(root)
        .args(["build", "-f", "mesh.yml", "-v"])
        .args(extra)
        .output()
        .expect("run scone");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The number before `what` in the remote's summary line of `-v`.
fn summary_count(stderr: &str, what: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("Remote") && l.contains(what))
        .unwrap_or_else(|| panic!("no remote summary with {what:?}:\n{stderr}"));
    let before = &line[..line.find(what).unwrap_or(0)];
    before
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {what:?}: {line}"))
}

/// Every blob of the store under `root` holds what its name says.
fn assert_store_sound(root: &Path) {
    for entry in walkdir::WalkDir::new(root.join("target/.scone/blobs")) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).expect("a blob");
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), name, "a wrong blob");
    }
}

#[test]
fn a_result_that_comes_after_its_step_stopped_waiting_is_still_stored() {
    let server = Webdav::start();
    let url = server.url("cache");
    let (sa, a) = checkout();
    let built = sa.build_json(&a, &["--remote-cache", &url, "--remote-cache-write"]);
    let steps = step_statuses(&built).len() as u64;

    // B waits for nothing: a step whose result is not already there builds
    // locally, and the result, when it comes, is stored all the same.
    let (sb, b) = checkout();
    std::fs::write(
        b.join("scone.toml"),
        format!("[cache]\nremote = \"{url}\"\nwait-ms = 0\n"),
    )
    .expect("scone.toml");
    let stderr = build_verbose(&sb, &b, &[]);
    let remote = summary_count(&stderr, "hits,");
    let late = summary_count(&stderr, "late,");
    assert!(late >= 1, "some results came late:\n{stderr}");
    assert_eq!(
        remote + late,
        steps,
        "every result was used or stored:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} built", steps - remote)),
        "the late ones were built locally:\n{stderr}"
    );
    assert_store_sound(&b);
    let again = sb.build_json(&b, &["--no-remote-cache"]);
    assert_eq!(finished(&again)["fresh"].as_u64(), Some(steps));
}

#[test]
fn a_damaged_build_index_is_ignored_and_every_step_asks_for_its_own_entry() {
    let server = Webdav::start();
    let url = server.url("cache");
    let (sa, a) = checkout();
    let built = sa.build_json(&a, &["--remote-cache", &url, "--remote-cache-write"]);
    let steps = step_statuses(&built).len() as u64;

    // The index is the one `ac` value that is not an entry's JSON.
    let ac = server.data().join("cache/ac");
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(&ac).expect("ac/") {
        let path = entry.expect("an ac file").path();
        let bytes = std::fs::read(&path).expect("read");
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            indexes.push((path, bytes));
        }
    }
    assert_eq!(indexes.len(), 1, "one build index");
    let (path, mut bytes) = indexes.remove(0);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage the index");

    let (sb, b) = checkout();
    let stderr = build_verbose(&sb, &b, &["--remote-cache", &url]);
    assert!(stderr.contains("the build index is not usable"), "{stderr}");
    assert!(
        stderr.contains(&format!("0 built, {steps} remote hits")),
        "{stderr}"
    );
    assert_eq!(summary_count(&stderr, "found in the build index"), 0);
    assert_eq!(summary_count(&stderr, "hits,"), steps);
    assert_store_sound(&b);
    assert!(support::tree(&a.join("target")) == support::tree(&b.join("target")));
}
