//! `scone clean --gc` (issue 21): after many edited builds the store holds the
//! results of every edit; garbage collection brings it (and the user cache of
//! base layers) back to the size of one clean build, and the next build is
//! still a no-op.

mod support;

use std::path::{Path, PathBuf};
use support::monorepo::{age_tree, generate, MonorepoOptions};
use support::{finished, Sandbox};

const SERVICES: usize = 4;

/// The bytes of every file under `dir` (0 if it is missing).
fn size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Appends to a file, dated in the past (as an edit made a while ago).
fn edit(path: &Path, text: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(path, bytes).unwrap();
    let past = filetime::FileTime::from_unix_time(1_600_000_100, 0);
    filetime::set_file_mtime(path, past).unwrap();
}

fn copy_sources(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        if rel.starts_with("target") || rel == Path::new("scone.lock") {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn gc_after_twenty_edited_builds_leaves_one_clean_build_and_a_no_op() {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: SERVICES,
            ..MonorepoOptions::default()
        },
    );
    age_tree(&root);
    sb.build_json(&root, &[]);
    let store = root.join("target/.scone");
    let cache = sb.path().join("cache");
    // Twenty edits: service sources, and every fifth one the `dir:` base, so
    // the user cache gains base layers too.
    for n in 0..20 {
        if n % 5 == 4 {
            edit(&root.join("base/usr/bin/app"), &format!("\n{n}"));
        } else {
            let svc = n % SERVICES;
            edit(
                &root.join(format!("services/svc-{svc:04}/lib/file-0.txt")),
                &format!("edit {n}\n"),
            );
        }
        let msgs = sb.build_json(&root, &[]);
        assert_eq!(finished(&msgs)["success"], true);
    }
    let (edited_store, edited_cache) = (size(&store), size(&cache));

    // The same tree built once, from scratch, with a cache of its own.
    let clean = Sandbox::new();
    let copy: PathBuf = clean.path().join("repo");
    copy_sources(&root, &copy);
    age_tree(&copy);
    clean.build_json(&copy, &[]);
    let (clean_store, clean_cache) = (
        size(&copy.join("target/.scone")),
        size(&clean.path().join("cache")),
    );
    assert!(
        edited_store > clean_store * 5 / 4,
        "twenty edits grew the store: {edited_store} vs {clean_store}"
    );

    let msgs = sb.json_ok(
        &root,
        &["clean", "--gc", "--keep-days", "0", "-f", "mesh.yml"],
    );
    let (store_now, cache_now) = (size(&store), size(&cache));
    // What it says it removed is what went.
    let done = msgs
        .iter()
        .find(|m| m["reason"] == "clean-finished")
        .expect("a clean-finished message");
    assert_eq!(
        (&done["scope"], &done["removed"]),
        (&"gc".into(), &false.into())
    );
    let said = |key: &str| {
        done[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {done}"))
    };
    assert!(said("blobs") > 0 && said("actions") > 0, "{done}");
    assert!(
        said("bytes") > 0 && said("bytes") <= edited_store - store_now,
        "{done}"
    );
    assert!(said("cache_files") > 0, "{done}");
    assert_eq!(said("cache_bytes"), edited_cache - cache_now, "{done}");
    eprintln!(
        "store: {edited_store} B after 20 edits, {store_now} B after gc, {clean_store} B clean; \
         user cache: {edited_cache} B, {cache_now} B, {clean_cache} B"
    );
    let near = |now: u64, clean: u64| now.abs_diff(clean) * 10 <= clean;
    assert!(
        near(store_now, clean_store),
        "store after gc {store_now}, clean {clean_store} (before gc {edited_store})"
    );
    assert!(
        near(cache_now, clean_cache),
        "user cache after gc {cache_now}, clean {clean_cache} (before gc {edited_cache})"
    );
    // Nothing a build needs went: the next build is a no-op.
    let msgs = sb.build_json(&root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], true, "{msgs:?}");
    assert_eq!(finished(&msgs)["built"], 0);
}
