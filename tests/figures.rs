//! `scripts/figures.sh` remakes every figure of `docs/` (issue 25): run into
//! a temp folder (a 10-service monorepo instead of 200, to be quick), it
//! makes exactly the files of `docs/figures/`, which are exactly the figures
//! `docs/` and the README show; the README shows a step graph and a timings
//! page. Its SVGs are the same on every run, so the committed ones must be
//! what it makes now (a stale figure fails); its screenshots are PNGs of the
//! window it asks for.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

/// The file names in `dir`.
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The figures (`figures/NAME` in an image link) that `markdown` shows.
fn shown(markdown: &str, prefix: &str) -> Vec<String> {
    let needle = format!("]({prefix}figures/");
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let end = rest.find(')').expect("a closed link");
        out.push(rest[..end].to_string());
    }
    out
}

/// A PNG's width and height (its IHDR chunk).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Whether `cargo test` sets `name` for the tests it runs (and a shell
/// does not have it).
fn set_by_cargo_for_a_test(name: &str) -> bool {
    matches!(
        name,
        "CARGO"
            | "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_CRATE_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_TARGET_TMPDIR"
            | "OUT_DIR"
            | "RUST_RECURSION_COUNT"
            | "SCONE_SOURCE_DIGEST"
    ) || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
}

#[test]
fn figures_sh_remakes_every_figure_the_docs_show() {
    let root = support::project_root();
    let committed_dir = root.join("docs/figures");
    let committed = files(&committed_dir);

    // Every figure shown is committed, and every one committed is shown.
    let mut shown_set = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            shown_set.extend(shown(&std::fs::read_to_string(&path).unwrap(), ""));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let in_readme = shown(&readme, "docs/");
    shown_set.extend(in_readme.iter().cloned());
    assert_eq!(shown_set, committed, "figures shown against docs/figures/");
    assert!(
        in_readme.iter().any(|f| f.starts_with("graph-")),
        "the README shows a step graph: {in_readme:?}"
    );
    assert!(
        in_readme.iter().any(|f| f.starts_with("timings-")),
        "the README shows a timings page: {in_readme:?}"
    );

    let out = tempfile::tempdir().unwrap();
    let mut script = std::process::Command::new("bash");
    // The script's `cargo build` must see the environment of a shell, not
    // the one cargo gives a test: a build script that tracks one of those
    // (ring's, CARGO_MANIFEST_DIR) would be run again, and its crate rebuilt.
    for (key, _) in std::env::vars_os() {
        if set_by_cargo_for_a_test(&key.to_string_lossy()) {
            script.env_remove(&key);
        }
    }
    let run = script
        .arg(root.join("scripts/figures.sh"))
        .arg(out.path())
        .env("SCONE_FIGURES_SERVICES", "10")
        .current_dir(&root)
        .output()
        .expect("running scripts/figures.sh");
    assert!(
        run.status.success(),
        "scripts/figures.sh failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(files(out.path()), committed, "made against committed");
    for name in &committed {
        let (made, kept) = (out.path().join(name), committed_dir.join(name));
        if name.ends_with(".svg") {
            let text = std::fs::read_to_string(&made).unwrap();
            let doc = roxmltree::Document::parse(&text)
                .unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            assert!(
                text == std::fs::read_to_string(&kept).unwrap(),
                "docs/figures/{name} is stale: run scripts/figures.sh"
            );
        } else {
            assert!(name.ends_with(".png"), "{name}: an SVG or a PNG");
            assert_eq!(png_size(&made), (1400, 1050), "{name}");
            assert_eq!(png_size(&kept), (1400, 1050), "docs/figures/{name}");
        }
    }
}
