//! How scone reports problems, through the binary: the source line with a
//! caret under the span; JSON diagnostics for errors and warnings, and the
//! `check` summary as JSON; no `:0:0` for an error without a place; usage
//! errors exit 2; repeated warnings collapse (all of them with `-v`); the
//! chart's install line is a note; tolerances meant for testing warn once
//! per build and a production build refuses them.

mod support;

use std::path::{Path, PathBuf};
use support::monorepo::{generate, MonorepoOptions};
use support::Sandbox;

/// `fixtures/hello-world` in the sandbox, with `edit` applied to its
/// service manifest.
fn hello(sb: &Sandbox, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = sb.hello_world("app");
    let path = dir.join("service.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

fn run(sb: &Sandbox, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = sb.scone(dir).args(args).output().expect("scone runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_diagnostic_shows_its_source_line_with_a_caret_under_the_span() {
    let sb = Sandbox::new();
    let dir = hello(&sb, |t| t.replacen("kind: genImage", "kind: genImag", 1));
    let (code, _, stderr) = run(&sb, &dir, &["check", "-f", "service.yml"]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error: service.yml:2:7: ") && l.ends_with("[kind]"))
        .unwrap_or_else(|| panic!("no error at service.yml:2:7:\n{stderr}"));
    assert_eq!(
        &lines[at + 1..at + 5],
        [
            "  |",
            "2 | kind: genImag",
            "  |       ^^^^^^^",
            "  help: did you mean `genImage`?"
        ],
        "{stderr}"
    );
}

#[test]
fn json_diagnostics_for_an_error_a_warning_and_the_check_summary() {
    let sb = Sandbox::new();
    // A warning (a deprecated kind) and a good check: diagnostics, then the summary.
    let dir = hello(&sb, |t| t.replacen("kind: genImage", "kind: genservice", 1));
    let (code, stdout, stderr) = run(
        &sb,
        &dir,
        &["check", "-f", "service.yml", "--message-format", "json"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let msgs = support::messages(stdout.as_bytes());
    let warning = msgs
        .iter()
        .find(|m| m["reason"] == "diagnostic" && m["code"] == "deprecated")
        .unwrap_or_else(|| panic!("no deprecation diagnostic: {stdout}"));
    assert_eq!(
        *warning,
        serde_json::json!({
            "reason": "diagnostic",
            "level": "warning",
            "code": "deprecated",
            "file": "service.yml",
            "line": 2,
            "column": 7,
            "message": "`kind: genservice` is deprecated, write `kind: genImage`",
            "help": null,
        })
    );
    let checked = msgs
        .iter()
        .find(|m| m["reason"] == "checked")
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert_eq!(checked["kind"], "service");
    assert_eq!(checked["name"], "python_hello_user");
    assert_eq!(checked["file"], "service.yml");
    assert_eq!(checked["secrets"], 1);
    assert_eq!(checked["globals"], 1);
    let last = msgs.last().expect("messages");
    assert_eq!(last["reason"], "check-finished", "{stdout}");
    assert_eq!(last["success"], true);
    assert_eq!(last["errors"], 0);
    assert_eq!(last["warnings"], 1);
    assert!(
        !stderr.contains("deprecated"),
        "JSON goes to stdout only: {stderr}"
    );

    // An error: its diagnostic, and a failed summary; exit 2.
    let dir = hello(&sb, |t| t.replacen("pwd: /python", "pwd: python", 1));
    let (code, stdout, _) = run(&sb, &dir, &["check", "--message-format", "json"]);
    assert_eq!(code, Some(2), "{stdout}");
    let msgs = support::messages(stdout.as_bytes());
    let error = msgs
        .iter()
        .find(|m| m["reason"] == "diagnostic" && m["level"] == "error")
        .unwrap_or_else(|| panic!("no error diagnostic: {stdout}"));
    assert_eq!(error["file"], "service.yml", "{error}");
    assert!(error["line"].as_u64().is_some_and(|l| l > 0), "{error}");
    assert!(error["column"].as_u64().is_some_and(|c| c > 0), "{error}");
    for key in ["code", "message", "help"] {
        assert!(
            error[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {error}"
        );
    }
    let last = msgs.last().expect("messages");
    assert_eq!(last["reason"], "check-finished");
    assert_eq!(last["success"], false);
    assert!(last["errors"].as_u64().is_some_and(|n| n >= 1), "{last}");

    // A build's load warnings are diagnostics too.
    let dir = hello(&sb, |t| {
        t.replacen("kind: genImage", "kind: genAppImage", 1)
    });
    let (code, stdout, stderr) = run(
        &sb,
        &dir,
        &["build", "-f", "service.yml", "--message-format", "json"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        support::messages(stdout.as_bytes())
            .iter()
            .any(|m| m["reason"] == "diagnostic"
                && m["level"] == "warning"
                && m["code"] == "deprecated"),
        "{stdout}"
    );
}

/// A JSON consumer of a build reads exactly one `build-finished`, last, and
/// its `success` is the exit code's: also when the build fails to load.
#[test]
fn a_build_that_fails_to_load_closes_with_a_failed_build_finished() {
    let sb = Sandbox::new();
    let dir = hello(&sb, |t| t.replacen("pwd: /python", "pwd: python", 1));
    for command in ["build", "apply"] {
        let (code, stdout, stderr) = run(
            &sb,
            &dir,
            &[command, "-f", "mesh.yml", "--message-format", "json"],
        );
        assert_eq!(code, Some(2), "{stderr}");
        let msgs = support::messages(stdout.as_bytes());
        assert!(
            msgs.iter()
                .any(|m| m["reason"] == "diagnostic" && m["level"] == "error"),
            "{stdout}"
        );
        let closing: Vec<_> = msgs
            .iter()
            .filter(|m| m["reason"] == "build-finished")
            .collect();
        assert_eq!(closing.len(), 1, "{command}: {stdout}");
        let last = msgs.last().expect("messages");
        assert_eq!(last["reason"], "build-finished", "{command}: {stdout}");
        assert_eq!(last["success"], false, "{command}: {last}");
        assert_eq!(last["built"], 0, "{command}: {last}");
    }
}

#[test]
fn an_error_without_a_place_prints_none() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let (code, _, stderr) = run(&sb, &dir, &["check", "-f", "mesh.yml", "-p", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error: -p nope: no service named `nope`"),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0"), "{stderr}");
    let (_, stdout, _) = run(
        &sb,
        &dir,
        &[
            "check",
            "-f",
            "mesh.yml",
            "-p",
            "nope",
            "--message-format",
            "json",
        ],
    );
    let msgs = support::messages(stdout.as_bytes());
    let error = msgs
        .iter()
        .find(|m| m["reason"] == "diagnostic" && m["level"] == "error")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(error["file"], serde_json::Value::Null, "{error}");
    assert_eq!(error["line"], serde_json::Value::Null, "{error}");
    assert_eq!(error["code"], "unknown-service", "{error}");
}

/// A base `--offline` cannot have says "base image" once (probe 53b,
/// confusing message 4): the step names the base, the error says why, with
/// no `base image REF:` context in between.
#[test]
fn an_offline_base_not_in_the_cache_says_base_image_once() {
    let sb = Sandbox::new();
    let dir = hello(&sb, |t| {
        t.replace(
            "  kind: python\n",
            "  kind: python\n  from: docker.io/library/python:3.11-slim\n",
        )
    });
    let (code, _, stderr) = run(&sb, &dir, &["build", "-f", "mesh.yml", "--offline"]);
    assert_eq!(code, Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("forbids the network"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.starts_with("error: base:docker.io/library/python:3.11-slim: base image `docker.io/library/python:3.11-slim` is not in the local cache ("),
        "{line}"
    );
    assert_eq!(line.matches("base image").count(), 1, "{line}");
}

/// `verify --image` of an image that is not there names it as the image to
/// verify (probe 53b, confusing message 10), not as a "base image".
#[test]
fn verify_of_a_missing_image_names_the_image_to_verify() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let missing = sb.path().join("nonexistent");
    let image = format!("oci:{}", missing.display());
    let (code, _, stderr) = run(&sb, &dir, &["verify", "--image", &image]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: the image to verify `{image}` was not found: not an OCI image layout"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("base image"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    for args in [
        &[
            "run",
            "-f",
            "mesh.yml",
            "-p",
            "python_app",
            "-p",
            "python_hello_user",
        ],
        &["build", "--no-such-option"][..],
    ] {
        let (code, _, stderr) = run(&sb, &dir, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
    }
}

#[test]
fn run_without_p_in_a_workspace_of_several_services_names_them_and_builds_nothing() {
    let sb = Sandbox::new();
    let root = renamed_services(&sb, 3);
    let (code, _, stderr) = run(&sb, &root, &["run", "-f", "mesh.yml", "--native"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: `scone run` could not tell which service to run: the workspace has 3 mesh services"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: give one with -p: `svc_0000`, `svc_0001`, `svc_0002`"),
        "{stderr}"
    );
    assert!(!root.join("target").exists(), "nothing may be built first");
}

/// A monorepo of `n` services whose mesh names are no DNS-1123 names.
fn renamed_services(sb: &Sandbox, n: usize) -> PathBuf {
    let repo = generate(
        &sb.path().join("repo"),
        MonorepoOptions {
            services: n,
            meshes: 1,
            files_per_service: 1,
            file_size: 16,
            ..MonorepoOptions::default()
        },
    );
    let mesh = &repo.meshfiles[0];
    let text = std::fs::read_to_string(mesh).unwrap();
    std::fs::write(mesh, text.replace("  - name: svc-", "  - name: svc_")).unwrap();
    repo.root
}

#[test]
fn repeated_warnings_collapse_into_one_line_with_a_count_and_v_lists_them() {
    let sb = Sandbox::new();
    let root = renamed_services(&sb, 12);
    let (code, _, stderr) = run(&sb, &root, &["build", "-f", "mesh.yml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let renames: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("its Kubernetes name is"))
        .collect();
    assert_eq!(renames.len(), 1, "{stderr}");
    assert!(
        renames[0].contains("(and 11 more like it; -v lists them)"),
        "{stderr}"
    );
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "the install line is one note: {stderr}");
    assert!(notes[0].contains("helm install"), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("helm install")),
        "{stderr}"
    );

    let (code, _, stderr) = run(&sb, &root, &["clean"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(&sb, &root, &["build", "-f", "mesh.yml", "-v"]);
    assert_eq!(code, Some(0), "{stderr}");
    let renames = stderr
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("its Kubernetes name is"))
        .count();
    assert_eq!(renames, 12, "-v lists every one:\n{stderr}");
    assert!(!stderr.contains("more like it"), "{stderr}");
}

#[test]
fn a_steps_warnings_are_json_diagnostics() {
    let sb = Sandbox::new();
    let root = renamed_services(&sb, 3);
    let (code, stdout, stderr) = run(
        &sb,
        &root,
        &["build", "-f", "mesh.yml", "--message-format", "json"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let messages: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let chart = messages
        .iter()
        .find(|m| m["reason"] == "step" && m["step"] == "chart")
        .expect("the chart step's message");
    let warned = chart["outputs"]["warnings"].as_array().unwrap();
    assert_eq!(warned.len(), 3, "{chart}");
    let diagnostics: Vec<&str> = messages
        .iter()
        .filter(|m| m["reason"] == "diagnostic" && m["level"] == "warning" && m["code"] == "build")
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    for w in warned {
        let unit = chart["unit"].as_str().unwrap();
        let want = format!("chart:{unit}: {}", w.as_str().unwrap());
        assert!(
            diagnostics.contains(&want.as_str()),
            "{want} in {diagnostics:?}"
        );
    }
}

#[test]
fn testing_tolerances_warn_once_per_build_and_production_refuses_them() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let loud = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.starts_with("warning: mesh.yml:7:16: FOR TESTING ONLY: "))
            .count()
    };
    for round in ["first build", "no-op build"] {
        let (code, _, stderr) = run(&sb, &dir, &["build", "-f", "mesh.yml"]);
        assert_eq!(code, Some(0), "{round}: {stderr}");
        assert_eq!(loud(&stderr), 1, "{round}: {stderr}");
        assert!(stderr.contains("--only_for_testing-trust-any"), "{stderr}");
    }
    let (code, _, stderr) = run(
        &sb,
        &dir,
        &["build", "-f", "mesh.yml", "--mode", "production"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: mesh.yml:7:16: ")
                && l.contains("production")
                && l.ends_with("[testing-tolerance]")),
        "{stderr}"
    );
    assert!(stderr.contains("help: "), "{stderr}");

    // `debug-mode` in policy.tolerate counts too.
    let mesh = dir.join("mesh.yml");
    let text = std::fs::read_to_string(&mesh).unwrap();
    let text = text.replace(
        "    tolerance: \"--only_for_testing-trust-any --only_for_testing-debug  --only_for_testing-ignore-signer -C -G -S\"\n",
        "",
    );
    let text = text.replacen(
        "policy:\n",
        "policy:\n  tolerate: [hyperthreading, debug-mode]\n",
        1,
    );
    std::fs::write(&mesh, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("debug-mode"))
        .map(|i| i + 1)
        .unwrap();
    let (code, _, stderr) = run(
        &sb,
        &dir,
        &["build", "-f", "mesh.yml", "--mode", "production"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("error: mesh.yml:{line}:")) && stderr.contains("`debug-mode`"),
        "{stderr}"
    );
}

#[test]
fn a_namespace_cas_would_refuse_is_refused_by_check_at_its_place() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let mesh = dir.join("mesh.yml");
    let original = std::fs::read_to_string(&mesh).unwrap();
    let with = |namespace: &str| {
        let text = original.replacen(
            "namespace: myPythonApp",
            &format!("namespace: {namespace}"),
            1,
        );
        std::fs::write(&mesh, text).unwrap();
    };
    // 129 characters: the CAS session-name rule, at check and before a build runs a step.
    with(&"a".repeat(129));
    for command in ["check", "build"] {
        let (code, _, stderr) = run(&sb, &dir, &[command]);
        assert_eq!(code, Some(2), "{command}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error: mesh.yml:10:14: policy.namespace `aaa"))
            .unwrap_or_else(|| panic!("{command}: no error at mesh.yml:10:14:\n{stderr}"));
        assert!(line.contains("(129 characters)"), "{line}");
        assert!(line.contains("must be 1-128 letters"), "{line}");
        assert!(line.ends_with("[invalid-value]"), "{line}");
    }
    assert!(!dir.join("target/images").exists(), "a step ran");
    // 128 characters is a name CAS takes.
    with(&"a".repeat(128));
    let (code, _, stderr) = run(&sb, &dir, &["check"]);
    assert_eq!(code, Some(0), "{stderr}");
}
