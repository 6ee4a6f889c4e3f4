//! `scone apply --plan` through the real binary (issue 24): after a one-file
//! edit it shows exactly that service's lines in the session diff against the
//! local CAS and its image as the only push to a real registry, changes
//! nothing, and after `apply` it is empty; `--detailed-exitcode` exits as
//! `terraform plan -detailed-exitcode` does. A fixed secret value changed
//! alone (the policy under `target/` is the same) is a change to apply, for
//! the plan and for verify, on the local CAS and on `scone cas serve`, and
//! neither value is shown or written.

mod support;

use std::path::Path;

use scone::cas::Cas as _;
use support::registry::Registry;
use support::{messages, Sandbox};

/// `scone apply --plan --push ARGS --message-format json`: exit code and
/// messages.
fn plan(sb: &Sandbox, dir: &Path, extra: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let out = sb
        .scone(dir)
        .args(["apply", "--plan", "--push", "--message-format", "json"])
        .args(extra)
        .output()
        .expect("running scone");
    (
        out.status.code().unwrap_or(-1),
        messages(&out.stdout)
            .into_iter()
            .filter(|m| m["reason"].as_str().is_some_and(|r| r.starts_with("plan-")))
            .collect(),
    )
}

fn apply_push(sb: &Sandbox, dir: &Path) {
    let out = sb
        .scone(dir)
        .args(["apply", "--push", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn of<'a>(msgs: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    msgs.iter().filter(|m| m["reason"] == reason).collect()
}

/// The `-`/`+` lines of a unified diff (not its `---`/`+++` header).
fn changed_lines(diff: &str) -> Vec<String> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('-') && !l.starts_with("---"))
                || (l.starts_with('+') && !l.starts_with("+++"))
        })
        .map(str::to_string)
        .collect()
}

fn enclave(dir: &Path, name: &str, file: &str) -> String {
    std::fs::read_to_string(dir.join("target/enclave").join(name).join(file))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_one_file_edit_plans_that_service_only_and_apply_empties_the_plan() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let dir = sb.multi(registry.addr());
    apply_push(&sb, &dir);
    let (code, msgs) = plan(&sb, &dir, &["--detailed-exitcode"]);
    assert_eq!(code, 0, "{msgs:?}");
    assert_eq!(of(&msgs, "plan-finished")[0]["changes"], 0);

    // One file of service b changes.
    let old_fspf = enclave(&dir, "multi_b", "fspf_tag");
    let old_mrenclave = enclave(&dir, "multi_b", "mrenclave");
    let main = dir.join("b/main.py");
    std::fs::write(
        &main,
        std::fs::read_to_string(&main).unwrap() + "print('more')\n",
    )
    .unwrap();
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let session_before = cas.session("multi").unwrap().unwrap();
    let lock_before = std::fs::read(dir.join("scone.lock")).unwrap();

    let (code, msgs) = plan(&sb, &dir, &["--detailed-exitcode"]);
    assert_eq!(code, 2, "changes to apply: {msgs:?}");
    let new_fspf = enclave(&dir, "multi_b", "fspf_tag");
    assert_ne!(new_fspf, old_fspf);
    // A python service: the script is protected by the fspf tag, the enclave
    // (the interpreter) is the same.
    assert_eq!(enclave(&dir, "multi_b", "mrenclave"), old_mrenclave);
    let sessions = of(&msgs, "plan-session");
    assert_eq!(sessions.len(), 1, "{msgs:?}");
    assert_eq!(sessions[0]["action"], "update");
    let diff = sessions[0]["diff"].as_str().unwrap();
    assert_eq!(
        changed_lines(diff),
        [
            format!("-    fspf_tag: \"{old_fspf}\""),
            format!("+    fspf_tag: \"{new_fspf}\""),
        ],
        "{diff}"
    );
    // That line is service b's in the session the build made.
    let policy = std::fs::read_to_string(dir.join("target/policy/multi.yaml")).unwrap();
    let lines: Vec<&str> = policy.lines().collect();
    let at = lines.iter().position(|l| l.contains(&new_fspf)).unwrap();
    let owner = lines[..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("  - name: "))
        .unwrap();
    assert_eq!(*owner, "  - name: \"b\"");
    // Secret values are never shown (the token is generated, so CAS holds one).
    let token = cas.secret_values("multi").unwrap();
    for value in token.values() {
        let text = value.expose_str().unwrap_or_default();
        assert!(!text.is_empty() && !diff.contains(text));
    }
    // Its image is the only push.
    let pushes = of(&msgs, "plan-push");
    assert_eq!(pushes.len(), 1, "{msgs:?}");
    assert_eq!(pushes[0]["service"], "multi_b");
    assert_eq!(
        pushes[0]["reference"],
        format!("{}/multi/b:1", registry.addr())
    );
    assert!(pushes[0]["missing_blobs"].as_u64().unwrap() >= 1);
    assert_eq!(
        pushes[0]["attach"],
        serde_json::json!(["SBOM", "provenance"])
    );
    // The chart values: b's digest line.
    let charts = of(&msgs, "plan-chart");
    assert_eq!(charts.len(), 1);
    let chart_lines = changed_lines(charts[0]["diff"].as_str().unwrap());
    assert_eq!(chart_lines.len(), 2, "{chart_lines:?}");
    assert!(chart_lines.iter().all(|l| l.contains("digest: \"sha256:")));

    // Nothing was done: CAS, the registry and scone.lock are as they were.
    let session_after = cas.session("multi").unwrap().unwrap();
    assert_eq!(session_after.hash, session_before.hash);
    assert_eq!(std::fs::read(dir.join("scone.lock")).unwrap(), lock_before);
    let pushed =
        support::tools::skopeo_inspect(&format!("docker://{}/multi/b:1", registry.addr())).unwrap();
    let locked_b = String::from_utf8(lock_before.clone())
        .unwrap()
        .split("[image.multi_b]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("digest = \"")))
        .map(|d| d.trim_end_matches('"').to_string())
        .unwrap();
    assert_eq!(pushed["Digest"], locked_b.as_str());
    // Planned again: the same plan (nothing it saw has changed).
    let (code, again) = plan(&sb, &dir, &["--detailed-exitcode"]);
    assert_eq!(code, 2);
    assert_eq!(again, msgs);

    // Applied: the plan is empty.
    apply_push(&sb, &dir);
    let (code, msgs) = plan(&sb, &dir, &["--detailed-exitcode"]);
    assert_eq!(code, 0, "{msgs:?}");
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    // Without --detailed-exitcode a plan with changes exits 0, and the text
    // form says what it would do.
    std::fs::write(
        &main,
        std::fs::read_to_string(&main).unwrap() + "print('again')\n",
    )
    .unwrap();
    let out = sb
        .scone(&dir)
        .args(["apply", "--plan", "--push"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Session multi (local CAS): update"), "{text}");
    assert!(
        text.contains("Push ") && text.contains("/multi/b:1"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 1 session(s) to upload, 1 image(s) to push"),
        "{text}"
    );
}

#[test]
fn detailed_exitcode_keeps_2_for_changes_and_1_for_errors() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    // Never applied: the session would be created.
    let out = sb
        .scone(&dir)
        .args([
            "apply",
            "--plan",
            "--detailed-exitcode",
            "--message-format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let msgs = messages(&out.stdout);
    let session = msgs.iter().find(|m| m["reason"] == "plan-session").unwrap();
    assert_eq!(session["action"], "create");
    assert!(sb
        .scone(&dir)
        .args(["cas", "session", "myPythonApp"])
        .output()
        .is_ok_and(|o| !o.status.success()));
    // A bad manifest: 2 without the flag, 1 with it.
    std::fs::write(dir.join("mesh.yml"), "kind: mesh\nservices: [\n").unwrap();
    let code = |extra: &[&str]| {
        sb.scone(&dir)
            .args(["apply", "--plan"])
            .args(extra)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code(&[]), Some(2));
    assert_eq!(code(&["--detailed-exitcode"]), Some(1));
    // A usage error too.
    assert_eq!(code(&["--detailed-exitcode", "--no-such-flag"]), Some(1));
}

/// What `scone.lock` holds for service `name`'s enclave.
fn locked_mrenclave(dir: &Path, name: &str) -> String {
    scone::lockfile::Lockfile::load(&dir.join("scone.lock"))
        .unwrap()
        .image
        .get(name)
        .unwrap_or_else(|| panic!("scone.lock has no image {name}"))
        .mrenclave
        .clone()
}

#[test]
fn an_enclave_edit_plans_that_service_s_mrenclave_line_old_to_new() {
    let sb = Sandbox::new();
    // No push: the plan is the session diff against the local CAS.
    let dir = sb.multi("registry.example.com");
    let apply = |dir: &Path| {
        let out = sb.scone(dir).args(["apply", "-q"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let plan = |dir: &Path| {
        let out = sb
            .scone(dir)
            .args(["apply", "--plan", "--detailed-exitcode"])
            .args(["--message-format", "json"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            messages(&out.stdout)
                .into_iter()
                .filter(|m| m["reason"].as_str().is_some_and(|r| r.starts_with("plan-")))
                .collect::<Vec<_>>(),
        )
    };
    apply(&dir);
    let old = locked_mrenclave(&dir, "multi_b");
    assert_eq!(old, enclave(&dir, "multi_b", "mrenclave"));
    let old_fspf = enclave(&dir, "multi_b", "fspf_tag");

    // An enclave setting of b changes: its heap.
    let path = dir.join("b/service.yml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let edited = manifest.replace(
        "  local:\n",
        "  local:\n    - name: SCONE_HEAP\n      value: 256M\n",
    );
    assert_ne!(edited, manifest);
    std::fs::write(&path, edited).unwrap();
    let (code, msgs) = plan(&dir);
    assert_eq!(code, 2, "changes to apply: {msgs:?}");
    // The build made a new enclave; scone.lock still says the applied one.
    let new = enclave(&dir, "multi_b", "mrenclave");
    assert_ne!(new, old);
    assert_eq!(locked_mrenclave(&dir, "multi_b"), old);
    assert_eq!(enclave(&dir, "multi_b", "fspf_tag"), old_fspf);
    let sessions = of(&msgs, "plan-session");
    assert_eq!(sessions.len(), 1, "{msgs:?}");
    assert_eq!(sessions[0]["action"], "update");
    let diff = sessions[0]["diff"].as_str().unwrap();
    // The MRENCLAVE line, old → new, and the heap's own env line: nothing else.
    assert_eq!(
        changed_lines(diff),
        [
            format!("-      - \"{old}\""),
            format!("+      - \"{new}\""),
            "+      \"SCONE_HEAP\": \"256M\"".to_string(),
        ],
        "{diff}"
    );
    // The MRENCLAVE line is under b's `mrenclaves` in the session the build made.
    let policy = std::fs::read_to_string(dir.join("target/policy/multi.yaml")).unwrap();
    let lines: Vec<&str> = policy.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("      - \"{new}\""))
        .unwrap_or_else(|| panic!("{new} not in the session: {policy}"));
    assert!(lines[at - 1].trim_start() == "mrenclaves:", "{policy}");
    let owner = lines[..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("  - name: "))
        .unwrap();
    assert_eq!(*owner, "  - name: \"b\"");
    // The text form shows the same lines.
    let out = sb.scone(&dir).args(["apply", "--plan"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("-      - \"{old}\"")), "{text}");
    assert!(text.contains(&format!("+      - \"{new}\"")), "{text}");

    // Applied: scone.lock takes the new MRENCLAVE, and the plan is empty.
    apply(&dir);
    assert_eq!(locked_mrenclave(&dir, "multi_b"), new);
    let (code, msgs) = plan(&dir);
    assert_eq!(code, 0, "{msgs:?}");
    assert!(of(&msgs, "plan-session").is_empty(), "{msgs:?}");
}

/// The fixed values the service manifest gives secret `dbpw`: applied, then
/// the only edit.
const FIXED_OLD: &str = "alphaFixed-9317-KqZ";
const FIXED_NEW: &str = "betaFixed-9318-WzM";

/// `dir`'s hello-world service with secret `dbpw` fixed to `value` (used by
/// its environment).
fn set_fixed(dir: &Path, value: &str) {
    let original =
        std::fs::read_to_string(support::fixtures().join("hello-world/service.yml")).unwrap();
    let edited = original
        .replace(
            "    size: 10\n",
            &format!("    size: 10\n  - name: dbpw\n    kind: ascii\n    value: \"{value}\"\n"),
        )
        .replace(
            "value: \"$$SCONE::password\"  # my password",
            "value: \"$$SCONE::password$$ $$SCONE::dbpw$$\"",
        );
    assert!(edited.contains(value) && edited.contains("$$SCONE::dbpw$$"));
    std::fs::write(dir.join("service.yml"), edited).unwrap();
}

/// Changing only a fixed value in a service manifest: the policy under
/// `target/` stays the same, but the session apply sends does not. The plan
/// says so (exit 2 with --detailed-exitcode, the secret named, no value
/// shown) and verify reports the mismatch, until `apply`; and neither value
/// is ever in an output or under `target/`. `cas`: the extra arguments that
/// choose the CAS (none: the local one).
fn a_fixed_value_edit_is_planned_and_verified(sb: &Sandbox, dir: &Path, cas: &[&str]) {
    let mut outputs: Vec<(String, std::process::Output)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = sb.scone(dir).args(args).args(cas).output().unwrap();
        outputs.push((args.join(" "), out.clone()));
        out
    };
    let json = ["--message-format", "json"];
    let plan = ["apply", "--plan", "--detailed-exitcode"];
    let verify = ["verify"];
    set_fixed(dir, FIXED_OLD);
    let out = run(&["apply", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&[&plan[..], &json[..]].concat()).status.code(), Some(0));
    let policy = std::fs::read(dir.join("target/policy/myPythonApp.yaml")).unwrap();

    set_fixed(dir, FIXED_NEW);
    let out = run(&[&plan[..], &json[..]].concat());
    let msgs: Vec<_> = messages(&out.stdout)
        .into_iter()
        .filter(|m| m["reason"].as_str().is_some_and(|r| r.starts_with("plan-")))
        .collect();
    assert_eq!(out.status.code(), Some(2), "a change to apply: {msgs:?}");
    let sessions = of(&msgs, "plan-session");
    assert_eq!(sessions.len(), 1, "{msgs:?}");
    assert_eq!(sessions[0]["action"], "update");
    // The policy is the same: nothing in the diff, the fixed value named.
    assert_eq!(sessions[0]["diff"], "", "{msgs:?}");
    let note = sessions[0]["fixed_values"].as_str().unwrap_or_default();
    assert!(note.contains("`dbpw`"), "{note}");
    assert_eq!(of(&msgs, "plan-finished")[0]["sessions"], 1);
    assert_eq!(
        std::fs::read(dir.join("target/policy/myPythonApp.yaml")).unwrap(),
        policy
    );
    let out = run(&plan);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fixed values: ") && text.contains("`dbpw`"),
        "{text}"
    );
    assert!(text.contains("Plan: 1 session(s) to upload"), "{text}");

    let out = run(&[&verify[..], &json[..]].concat());
    assert_eq!(out.status.code(), Some(1), "a mismatch");
    let msgs = messages(&out.stdout);
    let checks = of(&msgs, "verify-check");
    let failed: Vec<_> = checks.iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["field"], "fixed values");
    assert_eq!(failed[0]["subject"], "myPythonApp");
    let cause = failed[0]["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("fixed values differ from what CAS holds") && cause.contains("scone apply"),
        "{cause}"
    );
    let out = run(&verify);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mismatch: myPythonApp fixed values"),
        "{text}"
    );

    // Applied: the plan is empty, verify matches.
    let out = run(&["apply", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[&plan[..], &json[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{:?}", messages(&out.stdout));
    let out = run(&verify);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("fixed values") && text.contains("all match"),
        "{text}"
    );

    // Neither value in any output, under target/ or in scone.lock.
    let mut needles = support::secrets::Needles::new();
    needles.value("old fixed value", FIXED_OLD.as_bytes());
    needles.value("new fixed value", FIXED_NEW.as_bytes());
    let (files, mut leaks) =
        needles.leaks_under(&[dir.join("target"), dir.join("scone.lock")], &[]);
    assert!(files > 20, "{files} files searched");
    for (args, out) in &outputs {
        leaks.extend(needles.leaks_in(&format!("stdout of scone {args}"), &out.stdout));
        leaks.extend(needles.leaks_in(&format!("stderr of scone {args}"), &out.stderr));
    }
    assert!(leaks.is_empty(), "{}", support::secrets::report(&leaks));
}

#[test]
fn a_fixed_value_edit_is_a_change_to_apply_on_the_local_cas() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    a_fixed_value_edit_is_planned_and_verified(&sb, &dir, &[]);
    // The local CAS holds the new value.
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let values = cas.secret_values("myPythonApp").unwrap();
    assert_eq!(values["dbpw"].expose_str(), Some(FIXED_NEW));
}

#[test]
fn a_fixed_value_edit_is_a_change_to_apply_on_a_served_cas() {
    let server = support::cas_server::Server::start();
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let mesh = std::fs::read_to_string(dir.join("mesh.yml")).unwrap();
    let url = server.url.trim_start_matches("https://");
    std::fs::write(dir.join("mesh.yml"), mesh.replace("edge.scone-cas.cf", url)).unwrap();
    let ca = server.ca_path.display().to_string();
    a_fixed_value_edit_is_planned_and_verified(&sb, &dir, &["--cas", "remote", "--cas-ca", &ca]);
    let served = scone::cas::local::LocalCas::open(&server.cas_dir).unwrap();
    let values = served.secret_values("myPythonApp").unwrap();
    assert_eq!(values["dbpw"].expose_str(), Some(FIXED_NEW));
}
