//! The incremental engine through the real binary (issue 3): no-op builds hash
//! nothing, one change rebuilds exactly its chain, concurrent builds agree,
//! damaged cache blobs are detected. (Builds killed with SIGKILL at random
//! moments are tested in `tests/differential.rs`.)

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use support::monorepo::{age_tree, generate, MonorepoOptions};
use support::{finished, messages, step_statuses, tree, Sandbox};

fn build_json(sb: &Sandbox, root: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    sb.build_json(root, extra)
}

fn built(msgs: &[serde_json::Value]) -> BTreeSet<String> {
    step_statuses(msgs)
        .into_iter()
        .filter(|(_, _, s)| s == "built")
        .map(|(k, u, _)| format!("{k}:{u}"))
        .collect()
}

fn repo(services: usize) -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services,
            ..MonorepoOptions::default()
        },
    );
    age_tree(&root);
    (sb, root)
}

#[test]
fn second_build_is_all_fresh_and_hashes_nothing() {
    let (sb, root) = repo(5);
    let first = build_json(&sb, &root, &[]);
    assert!(finished(&first)["built"].as_u64().unwrap() > 0);
    let second = build_json(&sb, &root, &[]);
    let done = finished(&second);
    assert_eq!(done["built"], 0, "{second:?}");
    assert_eq!(done["success"], true);
    assert_eq!(
        done["hashed_files"], 0,
        "a no-op build must not hash file content"
    );
    assert!(step_statuses(&second).iter().all(|(_, _, s)| s == "fresh"));
    // 5 services × 6 steps (copy, layer, image, sign, sbom, provenance) +
    // base, packages, policy, chart.
    assert_eq!(step_statuses(&second).len(), 5 * 6 + 4);
}

#[test]
fn a_build_whose_log_nobody_reads_finishes() {
    // `scone build 2>&1 | head -3`: the reader goes away after a few lines,
    // and every line after that meets a closed pipe. The build still ends,
    // with its outputs written and its state kept (a step that printed into
    // the closed pipe panicked, and the build waited for it for ever, holding
    // the target lock).
    let (sb, root) = repo(3);
    let mut child = sb
        .std_command(&root)
        .args(["build", "-v"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting scone");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for scone") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("scone build hung with its log's reader gone");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        !tree(&root.join("target/images")).is_empty(),
        "the images are published"
    );
    let again = build_json(&sb, &root, &[]);
    assert_eq!(finished(&again)["built"], 0, "{again:?}");
}

#[test]
fn identical_rewrite_is_fresh_and_one_byte_rebuilds_exactly_one_chain() {
    let (sb, root) = repo(50);
    build_json(&sb, &root, &[]);
    let file = root.join("services/svc-0007/lib/file-1.txt");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let again = build_json(&sb, &root, &[]);
    assert_eq!(
        finished(&again)["built"],
        0,
        "same bytes, new mtime: {:?}",
        built(&again)
    );

    let mut changed = bytes.clone();
    changed[0] ^= 1;
    std::fs::write(&file, &changed).unwrap();
    let msgs = build_json(&sb, &root, &[]);
    let expected: BTreeSet<String> = [
        "copy:svc_0007",
        "layer:svc_0007",
        "image:svc_0007",
        "sign:svc_0007",
        "sbom:svc_0007",
        "provenance:svc_0007",
        "policy:mono-0",
        "chart:mono-0",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(built(&msgs), expected);
    let why = msgs
        .iter()
        .find(|m| m["step"] == "copy" && m["unit"] == "svc_0007")
        .unwrap()["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(why, "file:lib/file-1.txt changed");
}

#[test]
fn explain_names_the_changed_input_in_human_output() {
    let (sb, root) = repo(2);
    build_json(&sb, &root, &[]);
    std::fs::write(root.join("services/svc-0001/main.cfg"), b"new content").unwrap();
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "--explain"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Built copy:svc_0001"), "{stderr}");
    assert!(stderr.contains("file:main.cfg changed"), "{stderr}");
    assert!(stderr.contains("dep:copy:svc_0001 changed"), "{stderr}");
    assert!(stderr.contains("Finished"), "{stderr}");
    // Why the build is not a no-op, with the path as the user would type it.
    let dirty = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Dirty "))
        .unwrap_or_else(|| panic!("a Dirty line: {stderr}"));
    assert_eq!(
        dirty.trim_start(),
        "Dirty services/svc-0001/main.cfg changed (copy:svc_0001)",
        "{stderr}"
    );
}

#[test]
fn a_flipped_byte_in_a_cached_blob_is_detected_and_rebuilt() {
    let (sb, root) = repo(2);
    let first = build_json(&sb, &root, &[]);
    let reference = tree(&root.join("target"));
    let layer = first
        .iter()
        .find(|m| m["step"] == "layer" && m["unit"] == "svc_0000")
        .unwrap()["outputs"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    // The published layer is a hard link to its store blob: damage it in place.
    let published = root
        .join("target/images/svc_0000/blobs/sha256")
        .join(&layer);
    let mut bytes = std::fs::read(&published).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let mut perms = std::fs::metadata(&published).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&published, perms).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&published)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    let msgs = build_json(&sb, &root, &[]);
    assert!(
        built(&msgs).contains("layer:svc_0000"),
        "{:?}",
        built(&msgs)
    );
    assert_eq!(
        tree(&root.join("target")),
        reference,
        "outputs restored exactly"
    );
}

/// Issue 22, item 8: a byte flipped in a published blob with its size and its
/// (pinned) mtime restored, as a careful tamperer or a bad disk leaves it,
/// still moves ctime: the next build sees it, makes the blob again, and the
/// outputs are those of a clean build.
#[test]
fn a_flipped_byte_with_size_and_mtime_restored_is_not_reported_fresh() {
    let (sb, root) = repo(2);
    let first = build_json(&sb, &root, &[]);
    let reference = tree(&root.join("target"));
    let layer = first
        .iter()
        .find(|m| m["step"] == "layer" && m["unit"] == "svc_0001")
        .unwrap()["outputs"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let published = root
        .join("target/images/svc_0001/blobs/sha256")
        .join(&layer);
    let before = std::fs::metadata(&published).unwrap();
    let mut bytes = std::fs::read(&published).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&published)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    let mtime = filetime::FileTime::from_last_modification_time(&before);
    filetime::set_file_mtime(&published, mtime).unwrap();
    let after = std::fs::metadata(&published).unwrap();
    assert_eq!(after.len(), before.len(), "same size");
    assert_eq!(
        filetime::FileTime::from_last_modification_time(&after),
        mtime,
        "same mtime"
    );
    let msgs = build_json(&sb, &root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], false, "not replayed as fresh");
    assert!(
        built(&msgs).contains("layer:svc_0001"),
        "{:?}",
        built(&msgs)
    );
    assert_eq!(tree(&root.join("target")), reference, "outputs restored");
}

#[test]
fn deleted_outputs_are_published_again_without_rebuilding() {
    let (sb, root) = repo(2);
    build_json(&sb, &root, &[]);
    let reference = tree(&root.join("target"));
    std::fs::remove_dir_all(root.join("target/images/svc_0001")).unwrap();
    std::fs::remove_file(root.join("target/policy/mono-0.yaml")).unwrap();
    let msgs = build_json(&sb, &root, &[]);
    assert_eq!(finished(&msgs)["built"], 0);
    assert_eq!(tree(&root.join("target")), reference);
}

#[test]
fn concurrent_builds_both_succeed_with_identical_outputs() {
    let (sb, root) = repo(6);
    let spawn = || {
        sb.scone(&root)
            .args(["build", "-f", "mesh.yml", "--message-format", "json"])
            .timeout(Duration::from_secs(300))
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(
        a.status.success() && b.status.success(),
        "a: {}\nb: {}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let (ma, mb) = (messages(&a.stdout), messages(&b.stdout));
    let digests = |m: &[serde_json::Value]| -> Vec<String> {
        m.iter()
            .filter(|x| x["step"] == "image")
            .map(|x| x["outputs"]["manifest_digest"].to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(digests(&ma), digests(&mb));
    // One waited for the other and found everything fresh.
    let total_built =
        finished(&ma)["built"].as_u64().unwrap() + finished(&mb)["built"].as_u64().unwrap();
    // 6 services × 6 steps + base, packages, policy, chart.
    assert_eq!(total_built, 6 * 6 + 4);
}

/// The `clean-finished` message of a `scone clean --message-format json`.
fn cleaned(msgs: &[serde_json::Value]) -> serde_json::Value {
    let done: Vec<_> = msgs
        .iter()
        .filter(|m| m["reason"] == "clean-finished")
        .collect();
    assert_eq!(done.len(), 1, "one clean-finished message: {msgs:?}");
    assert_eq!(done[0]["success"], true);
    done[0].clone()
}

#[test]
fn clean_p_removes_one_service_only() {
    let (sb, root) = repo(3);
    build_json(&sb, &root, &[]);
    let msgs = sb.json_ok(&root, &["clean", "-f", "mesh.yml", "-p", "svc_0001"]);
    let done = cleaned(&msgs);
    assert_eq!(done["scope"], "services", "{done}");
    assert_eq!(done["removed"], false, "{done}");
    assert_eq!(done["services"][0]["name"], "svc_0001", "{done}");
    // Its image, enclave, SBOM and provenance folders at least.
    assert!(done["services"][0]["outputs"].as_u64() >= Some(2), "{done}");
    assert_eq!(done["services"].as_array().map(Vec::len), Some(1), "{done}");
    assert!(!root.join("target/images/svc_0001").exists());
    assert!(!root.join("target/enclave/svc_0001").exists());
    assert!(root.join("target/images/svc_0000").exists());
    let msgs = build_json(&sb, &root, &[]);
    let rebuilt = built(&msgs);
    assert!(
        rebuilt.contains("image:svc_0001") && rebuilt.contains("sign:svc_0001"),
        "{rebuilt:?}"
    );
    assert!(
        !rebuilt
            .iter()
            .any(|s| s.ends_with("svc_0000") || s.ends_with("svc_0002")),
        "{rebuilt:?}"
    );

    let msgs = sb.json_ok(&root, &["clean", "-f", "mesh.yml"]);
    let done = cleaned(&msgs);
    assert_eq!(
        (&done["scope"], &done["removed"]),
        (&"all".into(), &true.into()),
        "{done}"
    );
    assert!(
        done["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("target")),
        "{done}"
    );
    assert!(!root.join("target/images").exists());
    // Nothing left to clean: still one closing message, nothing removed.
    let msgs = sb.json_ok(
        &root,
        &["clean", "-f", "mesh.yml", "--target-dir", "nowhere"],
    );
    assert_eq!(cleaned(&msgs)["removed"], false);
    let msgs = build_json(&sb, &root, &[]);
    assert_eq!(finished(&msgs)["fresh"], 0);
}

/// A clean with nothing to remove says so (probe 53b: `removed: true` and
/// "Removed …/target" for a target holding only scone's lock and tag, or for
/// an empty folder), and writes nothing into an empty folder.
#[test]
fn clean_of_nothing_removes_nothing_and_says_so() {
    let (sb, root) = repo(1);
    build_json(&sb, &root, &[]);
    let msgs = sb.json_ok(&root, &["clean", "-f", "mesh.yml"]);
    assert_eq!(cleaned(&msgs)["removed"], true);
    let msgs = sb.json_ok(&root, &["clean", "-f", "mesh.yml"]);
    assert_eq!(cleaned(&msgs)["removed"], false, "cleaned twice");
    let out = sb
        .scone(&root)
        .args(["clean", "-f", "mesh.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing"), "{stderr}");
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in [&[][..], &["--gc"][..], &["-p", "svc_0000"][..]] {
        let msgs = sb.json_ok(
            &root,
            &[
                &["clean", "-f", "mesh.yml", "--target-dir", "empty"][..],
                args,
            ]
            .concat(),
        );
        assert_eq!(cleaned(&msgs)["removed"], false, "{args:?}");
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "{args:?}: clean wrote into an empty folder"
        );
    }
}

#[test]
fn json_messages_follow_the_contract() {
    let (sb, root) = repo(1);
    let msgs = build_json(&sb, &root, &[]);
    for m in msgs.iter().filter(|m| m["reason"] == "step") {
        for key in ["step", "unit", "status", "fingerprint", "outputs", "ms"] {
            assert!(m.get(key).is_some(), "{key} missing in {m}");
        }
        assert_eq!(m["fingerprint"].as_str().unwrap().len(), 64);
        assert!([
            "copy",
            "layer",
            "image",
            "sign",
            "sbom",
            "provenance",
            "policy",
            "chart",
            "base",
            "packages"
        ]
        .contains(&m["step"].as_str().unwrap()));
        assert_eq!(m["status"], "built");
        assert_eq!(m["why"], "never built");
    }
    let done = finished(&msgs);
    assert_eq!(done["success"], true);
    assert_eq!(done["built"], 6 + 4);
    assert!(done["ms"].is_u64());
}

#[test]
fn a_failing_step_fails_the_build_with_exit_1_and_reports_it() {
    let (sb, root) = repo(2);
    // The entry binary is a link to nothing in the base: `check` trusts links
    // (it cannot always tell where one leads), the sign step finds no binary
    // and fails for every service.
    std::fs::remove_file(root.join("base/usr/bin/app")).unwrap();
    std::os::unix::fs::symlink("app-gone", root.join("base/usr/bin/app")).unwrap();
    let out = sb
        .scone(&root)
        .args([
            "build",
            "-f",
            "mesh.yml",
            "--message-format",
            "json",
            "-j",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msgs = messages(&out.stdout);
    let failed: Vec<_> = step_statuses(&msgs)
        .into_iter()
        .filter(|(_, _, s)| s == "failed")
        .collect();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|(k, _, _)| k == "sign"), "{failed:?}");
    assert_eq!(finished(&msgs)["success"], false);
    assert!(msgs
        .iter()
        .any(|m| m["status"] == "failed" && m["error"].as_str().unwrap().contains("app")));
    // Each failed step's error is a diagnostic too (docs/cli.md: every error is).
    for (kind, unit, _) in &failed {
        let error = msgs
            .iter()
            .find(|m| m["step"] == kind.as_str() && m["unit"] == unit.as_str())
            .unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        let want = format!("{kind}:{unit}: {error}");
        assert!(
            msgs.iter().any(|m| m["reason"] == "diagnostic"
                && m["level"] == "error"
                && m["code"] == "build"
                && m["message"] == want.as_str()),
            "no diagnostic `{want}`"
        );
    }
}

#[test]
fn the_no_op_fast_path_answers_only_when_nothing_changed() {
    let (sb, root) = repo(3);
    let first = build_json(&sb, &root, &[]);
    let fast = build_json(&sb, &root, &[]);
    assert_eq!(finished(&fast)["fast_path"], true);
    // The replayed messages carry the same fingerprints and outputs.
    let by_step = |msgs: &[serde_json::Value]| -> std::collections::BTreeMap<
        String,
        (serde_json::Value, serde_json::Value),
    > {
        msgs.iter()
            .filter(|m| m["reason"] == "step")
            .map(|m| {
                (
                    format!("{}:{}", m["step"], m["unit"]),
                    (m["fingerprint"].clone(), m["outputs"].clone()),
                )
            })
            .collect()
    };
    assert_eq!(by_step(&fast), by_step(&first));
    assert_eq!(
        step_statuses(&fast).len(),
        3 * 6 + 4,
        "every step is still reported"
    );
    assert!(step_statuses(&fast).iter().all(|(_, _, s)| s == "fresh"));

    // Other arguments: the full engine path, which must hash nothing either.
    // (`-j` does not count: it changes how, not what, a build makes.)
    let same = build_json(&sb, &root, &["-j", "1"]);
    assert_eq!(finished(&same)["fast_path"], true);
    let full = build_json(&sb, &root, &["--mode", "debug"]);
    assert_eq!(finished(&full)["fast_path"], false);
    assert_eq!(finished(&full)["built"], 0);
    assert_eq!(finished(&full)["hashed_files"], 0);

    // A new file in a copied folder: the fast path must not answer.
    std::fs::write(root.join("services/svc-0002/lib/new.txt"), b"new").unwrap();
    let msgs = build_json(&sb, &root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], false);
    assert!(built(&msgs).contains("copy:svc_0002"));

    // A different SOURCE_DATE_EPOCH: different outputs, no fast path.
    build_json(&sb, &root, &[]);
    let out = sb
        .scone(&root)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-f", "mesh.yml", "--message-format", "json"])
        .output()
        .unwrap();
    let msgs = messages(&out.stdout);
    assert_eq!(finished(&msgs)["fast_path"], false);
    assert!(built(&msgs).contains("layer:svc_0000"));

    // An edited manifest: no fast path.
    build_json(&sb, &root, &[]);
    let manifest = root.join("services/svc-0001/service.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "command: \"app main.cfg\"",
            "command: \"app main.cfg --v2\"",
        ),
    )
    .unwrap();
    let msgs = build_json(&sb, &root, &[]);
    assert_eq!(finished(&msgs)["fast_path"], false);
    assert!(built(&msgs).contains("image:svc_0001"));
}

#[test]
fn a_source_edited_while_the_build_runs_is_not_recorded_as_fresh() {
    use std::io::BufRead;
    let (sb, root) = repo(20);
    let source = root.join("services/svc-0000/main.cfg");
    let mut child = sb
        .std_command(&root)
        .args([
            "build",
            "-f",
            "mesh.yml",
            "--message-format=json",
            "--jobs=1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut edited = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if !edited && line.contains(r#""step":"copy""#) && line.contains(r#""unit":"svc_0000""#) {
            // The build has read the file: change it (same size) under it.
            let mut bytes = std::fs::read(&source).unwrap();
            bytes[0] ^= 0x20;
            std::fs::write(&source, &bytes).unwrap();
            edited = true;
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(edited, "copy:svc_0000 was reported");
    // The next build (same command line, so the same fast-path key) must see
    // the edit: no fast path, the service rebuilt.
    let out = sb
        .scone(&root)
        .args([
            "build",
            "-f",
            "mesh.yml",
            "--message-format=json",
            "--jobs=1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let msgs = messages(&out.stdout);
    assert_eq!(finished(&msgs)["fast_path"], false);
    assert!(built(&msgs).contains("copy:svc_0000"), "{:?}", built(&msgs));
}
