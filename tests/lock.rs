//! `scone.lock`: written after a build, stable, and enforced by `--locked`.

mod support;

use support::{messages, Sandbox};

fn example(sb: &Sandbox) -> std::path::PathBuf {
    sb.hello_world("hw")
}

#[test]
fn lock_records_images_enclaves_and_sessions_and_locked_refuses_changes() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    sb.scone(&dir)
        .args(["apply", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let lock = std::fs::read_to_string(dir.join("scone.lock")).unwrap();
    let parsed: toml::Value = toml::from_str(&lock).unwrap();
    let image = &parsed["image"]["python_hello_user"];
    let mrenclave =
        std::fs::read_to_string(dir.join("target/enclave/python_hello_user/mrenclave")).unwrap();
    assert_eq!(image["mrenclave"].as_str().unwrap(), mrenclave.trim());
    assert!(image["digest"].as_str().unwrap().starts_with("sha256:"));
    let session = &parsed["session"]["myPythonApp"];
    assert_eq!(session["content"].as_str().unwrap().len(), 64);
    assert_eq!(session["cas_hash"].as_str().unwrap().len(), 64);

    // An unchanged build under --locked succeeds and leaves the lock as it was.
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "--locked", "-q"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dir.join("scone.lock")).unwrap(),
        lock
    );

    // A change under --locked: exit 1, a clear message, the lock untouched, nothing uploaded.
    std::fs::write(dir.join("print_env.py"), b"print('changed')\n").unwrap();
    let out = sb
        .scone(&dir)
        .args([
            "apply",
            "-f",
            "mesh.yml",
            "--locked",
            "--message-format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scone.lock needs to be updated but --locked was given"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fspf_tag"),
        "the diff names what changes: {stderr}"
    );
    let msgs = messages(&out.stdout);
    assert!(
        !msgs.iter().any(|m| m["step"] == "upload"),
        "no effect under a failed --locked"
    );
    // As a diagnostic: the hint in `help`, and each changed line under the
    // table it belongs to.
    let refusal = msgs
        .iter()
        .find(|m| m["reason"] == "diagnostic" && m["level"] == "error")
        .unwrap_or_else(|| panic!("the refusal as a diagnostic: {msgs:?}"));
    assert_eq!(refusal["help"], "run without --locked to update scone.lock");
    let message = refusal["message"].as_str().unwrap();
    assert!(!message.contains("help:"), "{message}");
    let lines: Vec<&str> = message.lines().collect();
    let tag = lines
        .iter()
        .position(|l| l.starts_with("- fspf_tag"))
        .unwrap_or_else(|| panic!("{message}"));
    assert!(
        lines[..tag].iter().rev().find(|l| l.starts_with("  ["))
            == Some(&"  [image.python_hello_user]"),
        "{message}"
    );
    // One closing message, last, failed: the steps ran, the command did not
    // succeed (it said `"success":true` before the lock was checked).
    let closing: Vec<_> = msgs
        .iter()
        .filter(|m| m["reason"] == "build-finished")
        .collect();
    assert_eq!(closing.len(), 1, "{msgs:?}");
    let last = msgs.last().expect("messages");
    assert_eq!(last["reason"], "build-finished", "{last}");
    assert_eq!(last["success"], false, "{last}");
    assert!(last["built"].as_u64().is_some_and(|n| n > 0), "{last}");
    assert_eq!(
        std::fs::read_to_string(dir.join("scone.lock")).unwrap(),
        lock
    );

    // Without --locked the lock follows; the new session names the old as predecessor.
    let out = sb
        .scone(&dir)
        .args(["apply", "-f", "mesh.yml", "--message-format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let upload = messages(&out.stdout)
        .into_iter()
        .find(|m| m["step"] == "upload")
        .unwrap();
    assert_eq!(
        upload["outputs"]["predecessor"],
        session["cas_hash"].as_str().unwrap()
    );
    assert_ne!(
        std::fs::read_to_string(dir.join("scone.lock")).unwrap(),
        lock
    );
}

#[test]
fn a_lock_that_does_not_read_is_refused_at_its_line_and_remade_when_deleted() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let lock = std::fs::read_to_string(dir.join("scone.lock")).unwrap();
    // A merge left both sides of a line.
    let mut lines: Vec<&str> = lock.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("digest")).unwrap();
    lines.splice(
        at..at + 1,
        [
            "<<<<<<< HEAD",
            lines[at],
            "=======",
            "digest = \"sha256:00\"",
            ">>>>>>> theirs",
        ],
    );
    std::fs::write(dir.join("scone.lock"), lines.join("\n")).unwrap();
    // A build of the lock as it is: its exit code and what it said.
    let build = || {
        let out = sb
            .scone(&dir)
            .args(["build", "-f", "mesh.yml", "-q"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (code, stderr) = build();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: scone.lock:{}:1: scone.lock holds a merge's conflict markers [lockfile]",
            at + 1
        )),
        "{stderr}"
    );
    assert!(stderr.contains("delete it and build again"), "{stderr}");
    // Broken otherwise: toml's message, at its place.
    std::fs::write(dir.join("scone.lock"), format!("{lock}broken = [\n")).unwrap();
    let (code, stderr) = build();
    assert_eq!(code, Some(2), "{stderr}");
    let line = lock.lines().count() + 1;
    assert!(
        stderr.contains(&format!("scone.lock:{line}:11: ")),
        "{stderr}"
    );
    assert!(stderr.contains("[lockfile]"), "{stderr}");
    // Deleted, as the hint says: the build makes it again, as it was.
    std::fs::remove_file(dir.join("scone.lock")).unwrap();
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dir.join("scone.lock")).unwrap(),
        lock
    );
}

#[test]
fn another_version_or_unknown_content_is_refused_and_locked_compares_the_text() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let path = dir.join("scone.lock");
    let lock = std::fs::read_to_string(&path).unwrap();
    let build = |extra: &[&str]| {
        let out = sb
            .scone(&dir)
            .args(["build", "-f", "mesh.yml", "-q"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    // A newer scone's lock is neither read as this one's nor rewritten.
    let newer = lock.replace("version = 1", "version = 99");
    std::fs::write(&path, &newer).unwrap();
    for extra in [&[][..], &["--locked"][..]] {
        let (code, stderr) = build(extra);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("scone.lock:2:11: scone.lock has `version = 99`"),
            "{stderr}"
        );
        assert!(stderr.contains("written by a newer scone?"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
    }
    // A table or key scone does not write: refused at its line.
    let evil = format!("{lock}\n[evil]\nx = 1\n");
    std::fs::write(&path, &evil).unwrap();
    let (code, stderr) = build(&["--locked"]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = lock.lines().count() + 2;
    assert!(stderr.contains(&format!("scone.lock:{line}:")), "{stderr}");
    assert!(
        stderr.contains("evil") && stderr.contains("[lockfile]"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), evil);
    // The same pins in another text: --locked fails with the diff, the file
    // stays; so does a lock that is not there.
    let edited = lock.replace("version = 1", "version=1");
    std::fs::write(&path, &edited).unwrap();
    let (code, stderr) = build(&["--locked"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--locked was given:\n- version=1\n+ version = 1\n"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    std::fs::remove_file(&path).unwrap();
    let (code, stderr) = build(&["--locked"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("+ version = 1"), "{stderr}");
    assert!(!path.exists());
    // Without --locked the build writes it as it was.
    let (code, stderr) = build(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lock);
}

#[test]
fn a_huge_locked_diff_is_cut_with_the_count_of_the_rest() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let path = dir.join("scone.lock");
    let mut lock = std::fs::read_to_string(&path).unwrap();
    // 5,000 images nobody builds: 30,000 lines the build would drop.
    for i in 0..5000 {
        lock.push_str(&format!(
            "[image.s{i:07}]\nreference = \"r{i}\"\ndigest = \"d{i}\"\nmrenclave = \"m{i}\"\nmrsigner = \"s\"\nfspf_tag = \"f{i}\"\n"
        ));
    }
    std::fs::write(&path, &lock).unwrap();
    let out = sb
        .scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q", "--locked"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("- [image.s0000000]"), "{stderr}");
    assert!(
        stderr.contains(&format!("… and {} more lines\n", 30_000 - 40)),
        "{stderr}"
    );
    assert!(stderr.lines().count() < 60, "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lock);
}

/// `scone check` reads `scone.lock` as a build does (probe 53b #6): a lock
/// every build would refuse (a merge's conflict markers, another `version`)
/// fails `check` too, with the build's own `lockfile` error, text and place,
/// exit 2; and `check` writes nothing (the lock stays, no `target/`).
#[test]
fn check_refuses_a_lock_the_build_refuses_with_the_same_error() {
    let sb = Sandbox::new();
    let dir = example(&sb);
    let path = dir.join("scone.lock");
    let run = |cmd: &str| {
        let out = sb
            .scone(&dir)
            .args([cmd, "-f", "mesh.yml", "-q"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    // The `error:` line of the lock and the lines after it (source, help).
    let lock_error = |stderr: &str| -> String {
        let from = stderr
            .find("error: scone.lock:")
            .unwrap_or_else(|| panic!("no lock error in:\n{stderr}"));
        stderr[from..]
            .lines()
            .take_while(|l| !l.starts_with("error: build failed"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (lock, want) in [
        (
            "version = 1\n<<<<<<< HEAD\n=======\n>>>>>>> theirs\n",
            "error: scone.lock:2:1: scone.lock holds a merge's conflict markers [lockfile]",
        ),
        (
            "version = 2\n",
            "error: scone.lock:1:11: scone.lock has `version = 2`",
        ),
    ] {
        std::fs::write(&path, lock).unwrap();
        let before = listing(&dir.join("target"));
        let (code, check) = run("check");
        assert_eq!(code, Some(2), "{check}");
        assert!(check.contains(want), "{want}: {check}");
        assert!(check.contains("[lockfile]"), "{check}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lock);
        assert_eq!(listing(&dir.join("target")), before, "check writes nothing");
        let (code, build) = run("build");
        assert_eq!(code, Some(2), "{build}");
        assert_eq!(lock_error(&check), lock_error(&build));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lock);
    }
}

/// Every path under `dir` (none when it does not exist), sorted.
fn listing(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
            all.push(e.path());
        }
    }
    all.sort();
    all
}

/// `-f` naming one of a workspace's `members` builds a part of it, as `-p`
/// does: the other meshes' outputs and `scone.lock` entries stay, so a CI job
/// per mesh can run `--locked` on the lock a whole build wrote (cargo keeps
/// the workspace's lock whole under `--manifest-path member/Cargo.toml`).
#[test]
fn f_naming_one_member_keeps_the_other_members_outputs_and_lock_entries() {
    use support::monorepo::{generate, Link, MonorepoOptions};
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    let opts = MonorepoOptions {
        services: 4,
        meshes: 2,
        link: Link::Members,
        ..MonorepoOptions::default()
    };
    let repo = generate(&root, opts);
    sb.scone(&root).args(["build", "-q"]).assert().success();
    let lock = std::fs::read_to_string(root.join("scone.lock")).unwrap();
    let outputs = || {
        // (Not helm/: a build of one Meshfile writes its chart to
        // target/helm itself, the one-mesh layout: docs/helm.md.)
        ["images", "enclave", "policy"]
            .iter()
            .flat_map(|d| listing(&root.join("target").join(d)))
            .collect::<Vec<_>>()
    };
    let before = outputs();
    assert!(
        before.iter().filter(|p| p.ends_with("mrenclave")).count() == 4
            && before
                .iter()
                .filter(|p| p.extension() == Some("yaml".as_ref()))
                .count()
                == 2,
        "{before:?}"
    );
    for meshfile in &repo.meshfiles {
        let name = meshfile.file_name().unwrap().to_str().unwrap();
        let out = sb
            .scone(&root)
            .args(["build", "--locked", "-q", "-f", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(root.join("scone.lock")).unwrap(),
            lock,
            "{name}"
        );
        assert_eq!(outputs(), before, "{name}");
    }
    // A whole build after them is a no-op with the same outputs.
    sb.scone(&root).args(["build", "-q"]).assert().success();
    assert_eq!(outputs(), before);
    assert_eq!(
        std::fs::read_to_string(root.join("scone.lock")).unwrap(),
        lock
    );
}
