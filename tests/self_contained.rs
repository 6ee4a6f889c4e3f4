//! The repository is self-contained: a clone from the project's home has no
//! `shared` folder beside it, so no test, benchmark or source may read from there, and
//! no test path may lead out of the repository (its temp folders are the sandbox's
//! `tempfile` folders and cargo's `CARGO_TARGET_TMPDIR`).

mod support;

use std::path::Path;

/// Every `.rs`, `.sh` and `.py` file under the folders that hold code.
fn code_files() -> Vec<std::path::PathBuf> {
    let root = support::project_root();
    let mut out = Vec::new();
    for dir in [
        "src", "tests", "benches", "bench", "scripts", "examples", ".ci",
    ] {
        for entry in walkdir::WalkDir::new(root.join(dir)) {
            let entry = entry.expect("walk the repository");
            let path = entry.path();
            let code = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("rs" | "sh" | "py")
            ) || path.ends_with(".ci/run");
            if entry.file_type().is_file() && code {
                out.push(path.to_path_buf());
            }
        }
    }
    out
}

#[test]
fn no_code_reads_outside_the_repository() {
    // Built at run time, so this file does not match itself.
    let needles = [
        format!("../{}", "shared"),
        format!("SCONE_{}", "SHARED"),
        format!("join(\"{}\")", ".."),
        format!("{}/work/", "\""),
    ];
    let files = code_files();
    assert!(files.len() > 50, "found only {} code files", files.len());
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a code file is UTF-8");
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") || trimmed.starts_with('#') {
                continue;
            }
            for needle in &needles {
                if line.contains(needle.as_str()) {
                    hits.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "code that reaches outside the repository:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_test_vectors_are_in_the_repository_with_their_source() {
    let vectors = support::vectors();
    assert!(vectors.starts_with(support::project_root()));
    for file in [
        "test_enclave.sgxs",
        "test_enclave.sig",
        "report.sgxs",
        "sig1.key.pem",
        "sig1.sigstruct.bin",
    ] {
        let path = vectors.join(file);
        assert!(path.is_file(), "{} is missing", path.display());
    }
    let readme =
        std::fs::read_to_string(vectors.join("README.md")).expect("fixtures/sgx/README.md");
    assert!(readme.contains("fortanix/rust-sgx") && readme.contains("MPL-2.0"));
}

#[test]
fn the_sandbox_signing_key_is_a_repository_file() {
    let key = support::sig1_key();
    assert!(key.starts_with(support::project_root()) && key.is_file());
    assert!(Path::new(&key).metadata().expect("stat the key").len() > 2000);
}
