//! `scone apply` with effects through the real binary: the policy upload comes
//! strictly before any push; pushes go to a real registry; a failed upload
//! pushes nothing; `scone run` gives the service the local CAS's secrets, in a
//! real dockerd and natively; the chart passes helm and Kubernetes schemas.

mod support;

use std::path::{Path, PathBuf};
use support::registry::Registry;
use support::{messages, tools, Sandbox};

const SEED_IMAGE: &str = "registry.scontain.com:5050/cicd/python_hello_user:latest";

/// The example, its image moved to `image`, its program also printing the
/// password it received (so the test can compare it with the CAS's).
fn example(sb: &Sandbox, image: &str) -> PathBuf {
    let dir = sb.path().join("hw");
    std::fs::create_dir_all(&dir).unwrap();
    let src = support::fixtures().join("hello-world");
    for f in ["service.yml", "mesh.yml"] {
        let text = std::fs::read_to_string(src.join(f))
            .unwrap()
            .replace(SEED_IMAGE, image);
        std::fs::write(dir.join(f), text).unwrap();
    }
    let program = std::fs::read_to_string(src.join("print_env.py")).unwrap()
        + "print('PW=' + API_PASSWORD)\n";
    std::fs::write(dir.join("print_env.py"), program).unwrap();
    dir
}

fn apply(sb: &Sandbox, dir: &Path, extra: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let out = sb
        .scone(dir)
        .args(["apply", "-f", "mesh.yml", "--message-format", "json"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        messages(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The manifest digest the image step reported.
fn image_digest(msgs: &[serde_json::Value]) -> String {
    let image = msgs
        .iter()
        .find(|m| m["step"] == "image")
        .expect("an image step");
    image["outputs"]["manifest_digest"]
        .as_str()
        .expect("a manifest digest")
        .to_string()
}

fn stored_password(sb: &Sandbox) -> String {
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let secrets = cas.secret_values("myPythonApp").unwrap();
    secrets["password"].expose_str().unwrap().to_string()
}

#[test]
fn apply_push_uploads_the_policy_first_then_pushes_to_a_real_registry() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let image = format!("{}/cicd/python_hello_user:latest", registry.addr());
    let dir = example(&sb, &image);
    let (ok, msgs, err) = apply(&sb, &dir, &["--push"]);
    assert!(ok, "{err}");
    let position = |kind: &str| msgs.iter().position(|m| m["step"] == kind);
    let upload = position("upload").expect("an upload step");
    let push = position("push").expect("a push step");
    assert!(upload < push, "upload must come strictly before any push");
    let pushed = &msgs[push]["outputs"];
    assert!(!pushed["uploaded"].as_array().unwrap().is_empty());

    let info = tools::skopeo_inspect(&format!("docker://{image}")).expect("the pushed image");
    assert_eq!(info["Digest"], image_digest(&msgs).as_str());

    // Again: the registry has every blob; nothing is uploaded.
    let (ok, msgs, err) = apply(&sb, &dir, &["--push"]);
    assert!(ok, "{err}");
    let push = msgs.iter().find(|m| m["step"] == "push").unwrap();
    assert_eq!(push["status"], "fresh");
    assert_eq!(push["outputs"]["uploaded"], serde_json::json!([]));
}

#[test]
fn a_failed_upload_pushes_nothing() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let image = format!("{}/cicd/python_hello_user:latest", registry.addr());
    let dir = example(&sb, &image);
    // A remote CAS that is not there.
    let mesh = std::fs::read_to_string(dir.join("mesh.yml"))
        .unwrap()
        .replace("edge.scone-cas.cf", "127.0.0.1:9");
    std::fs::write(dir.join("mesh.yml"), mesh).unwrap();
    let (ok, msgs, err) = apply(&sb, &dir, &["--push", "--cas", "remote"]);
    assert!(!ok);
    assert!(
        msgs.iter()
            .any(|m| m["step"] == "upload" && m["status"] == "failed"),
        "{err}"
    );
    assert!(
        !msgs.iter().any(|m| m["step"] == "push"),
        "nothing may be pushed"
    );
    assert!(
        tools::skopeo_inspect(&format!("docker://{image}")).is_err(),
        "the registry must not have the image"
    );
}

#[test]
fn run_native_gets_the_stored_secret() {
    let sb = Sandbox::new();
    let dir = example(&sb, SEED_IMAGE);
    let out = sb
        .scone(&dir)
        .args(["run", "-p", "python_app", "-f", "mesh.yml", "--native"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Hello 'myself' - thanks for passing along the API_PASSWORD"),
        "{stdout}"
    );
    let password = stored_password(&sb);
    assert_eq!(password.len(), 10);
    assert!(stdout.contains(&format!("PW={password}")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulation mode"));
    // Without -p: the mesh's only service, as `cargo run` runs the only binary.
    let out = sb
        .scone(&dir)
        .args(["run", "-f", "mesh.yml", "--native"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("running python_app in simulation mode"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("PW={password}")),
        "{stderr}"
    );
    // The manifest name works too.
    let out = sb
        .scone(&dir)
        .args([
            "run",
            "-p",
            "python_hello_user",
            "-f",
            "mesh.yml",
            "--native",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello 'myself'"));
}

/// Whether process `pid` runs (not gone, not a zombie).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

/// The processes whose working folder is under `dir`.
fn working_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// SIGTERM to `scone run --native` while its service runs: the service
/// (the CAS's secrets in its environment) does not outlive it, and its
/// rootfs folder is removed.
#[test]
fn run_native_stops_its_service_and_removes_its_rootfs_on_sigterm() {
    let sb = Sandbox::new();
    let dir = example(&sb, SEED_IMAGE);
    let program = std::fs::read_to_string(dir.join("print_env.py")).unwrap()
        + "import time\nprint('STARTED', flush=True)\ntime.sleep(600)\n";
    std::fs::write(dir.join("print_env.py"), program).unwrap();
    let tmp = sb.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let tmp = tmp.canonicalize().unwrap();
    let out = sb.path().join("run.out");
    let mut scone = sb
        .std_command(&dir)
        .env("TMPDIR", &tmp)
        .args(["run", "-f", "mesh.yml", "--native"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(sb.path().join("run.err")).unwrap())
        .spawn()
        .unwrap();
    // A bound on the build and start, not a speed assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let service = loop {
        let started = std::fs::read_to_string(&out).unwrap().contains("STARTED");
        if let (true, [pid]) = (started, working_in(&tmp).as_slice()) {
            break *pid;
        }
        if let Ok(Some(status)) = scone.try_wait() {
            panic!(
                "scone run ended ({status}) before its service started:\n{}",
                std::fs::read_to_string(sb.path().join("run.err")).unwrap()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &scone.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = scone.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while runs(service) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let outlived = runs(service);
    if outlived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &service.to_string()])
            .status();
    }
    assert!(!outlived, "the service outlived scone run ({status})");
    assert_eq!(status.code(), Some(128 + 15), "exit 128 + SIGTERM");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("scone-run-"))
        .collect();
    assert!(left.is_empty(), "rootfs folders left: {left:?}");
}

#[test]
fn run_in_docker_gets_the_stored_secret() {
    let dockerd = support::dockerd::Dockerd::start();
    let sb = Sandbox::new();
    let dir = example(&sb, SEED_IMAGE);
    let out = sb
        .scone(&dir)
        .env("DOCKER_HOST", dockerd.host())
        .args(["run", "-p", "python_app", "-f", "mesh.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        dockerd.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Hello 'myself' - thanks for passing along the API_PASSWORD"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("PW={}", stored_password(&sb))));
}

#[test]
fn applied_chart_passes_helm_lint_and_kubernetes_schemas_with_the_built_digest() {
    let sb = Sandbox::new();
    let dir = example(&sb, SEED_IMAGE);
    let (ok, msgs, err) = apply(&sb, &dir, &[]);
    assert!(ok, "{err}");
    let chart = dir.join("target/helm");
    let out = tools::helm()
        .args(["lint", "--strict"])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rendered = tools::helm()
        .args(["template", "python-app"])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let yaml = String::from_utf8_lossy(&rendered.stdout).into_owned();
    let digest = image_digest(&msgs);
    assert!(
        yaml.contains(&format!(
            "registry.scontain.com:5050/cicd/python_hello_user@{digest}"
        )),
        "{yaml}"
    );
    assert!(yaml.contains("myPythonApp/python_app"), "SCONE_CONFIG_ID");
    let mut validate = tools::kubernetes_validate()
        .args(["--strict", "-k", "1.32.0", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut validate.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
    let out = validate.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_service_manifest_alone_builds_and_pushes_without_a_mesh() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let image = format!("{}/cicd/alone:latest", registry.addr());
    let dir = example(&sb, &image);
    let out = sb
        .scone(&dir)
        .args([
            "apply",
            "-f",
            "service.yml",
            "--push",
            "--message-format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = messages(&out.stdout);
    let steps: Vec<&str> = msgs.iter().filter_map(|m| m["step"].as_str()).collect();
    for kind in ["copy", "layer", "image", "sign", "push"] {
        assert!(steps.contains(&kind), "{kind} missing: {steps:?}");
    }
    assert!(
        !steps.contains(&"policy") && !steps.contains(&"upload"),
        "no mesh, no policy: {steps:?}"
    );
    assert!(dir
        .join("target/enclave/python_hello_user/sigstruct.bin")
        .exists());
    tools::skopeo_inspect(&format!("docker://{image}")).expect("the pushed image");
}

#[test]
fn the_dns_1123_rename_is_a_warning_and_the_install_line_a_note() {
    let sb = Sandbox::new();
    let dir = example(&sb, SEED_IMAGE);
    let out = sb
        .scone(&dir)
        .args(["build", "-f", "mesh.yml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("warning: ")
            && l.contains("`python_app`")
            && l.contains("`python-app`")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == "note: install the chart with: helm install python-app target/helm"),
        "{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("helm install")),
        "the install line is no warning:\n{stderr}"
    );
}

fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An apply stores secrets in a folder of their own: a folder that is
/// neither empty nor a local CAS is refused by name, with what to do, and
/// left as it was (it was made 0700 and given `.lock` and `sessions/`).
#[test]
fn apply_refuses_a_cas_dir_that_is_another_folder() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let shared = sb.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("file"), "keep").unwrap();
    set_mode(&shared, 0o755);
    let out = sb
        .scone(&dir)
        .env("SCONE_CAS_DIR", &shared)
        .args(["apply", "-f", "mesh.yml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("the local CAS dir {}", shared.display()))
            && err.contains("not a local CAS")
            && err.contains("SCONE_CAS_DIR"),
        "{err}"
    );
    // apply takes no --cas-dir: the refusal names only what it does take.
    assert!(!err.contains("--cas-dir"), "{err}");
    assert_eq!(support::looks(&shared), (0o755, vec!["file".to_string()]));
}

/// A missing CAS dir is made by apply, 0700 with its parents; an existing
/// CAS keeps the mode its user gave it, apply after apply (with a warning
/// that others may list it); readers (`verify`, `apply --plan`) make no
/// CAS folder.
#[test]
fn apply_makes_a_missing_cas_dir_and_leaves_an_existing_one_s_mode() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let cas = sb.path().join("new/deep/cas");
    let apply = || {
        let out = sb
            .scone(&dir)
            .env("SCONE_CAS_DIR", &cas)
            .args(["apply", "-f", "mesh.yml"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    apply();
    for made in ["new", "new/deep", "new/deep/cas", "new/deep/cas/sessions"] {
        assert_eq!(support::looks(&sb.path().join(made)).0, 0o700, "{made}");
    }
    let stored = scone::cas::local::LocalCas::open(&cas).unwrap();
    let first = stored.secret_values("myPythonApp").unwrap();

    set_mode(&cas, 0o750);
    for _ in 0..2 {
        let err = apply();
        assert_eq!(support::looks(&cas).0, 0o750, "the CAS dir's mode is left");
        assert!(err.contains("is mode 750"), "{err}");
    }
    let again = stored.secret_values("myPythonApp").unwrap();
    assert_eq!(
        first["password"].expose_bytes(),
        again["password"].expose_bytes(),
        "the same CAS, its secret kept"
    );

    let absent = sb.path().join("absent");
    for args in [
        &["verify", "-f", "mesh.yml"][..],
        &["apply", "--plan", "-f", "mesh.yml"],
    ] {
        sb.scone(&dir)
            .env("SCONE_CAS_DIR", absent.join("cas"))
            .args(args)
            .output()
            .unwrap();
        assert!(!absent.exists(), "{args:?} made a CAS folder");
    }
}

/// A local CAS in the target dir would go with `scone clean` (and the next
/// apply would make new secrets): apply, build and clean refuse it, naming
/// both folders, and clean removes nothing.
#[test]
fn a_cas_dir_in_the_target_dir_is_refused_and_not_cleaned() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let in_target = dir.join("target/cas");
    let refused = |args: &[&str], cas: &Path| {
        let out = sb
            .scone(&dir)
            .env("SCONE_CAS_DIR", cas)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&cas.display().to_string())
                && err.contains(&dir.join("target").display().to_string())
                && err.contains("scone clean"),
            "{args:?}: {err}"
        );
    };
    refused(&["apply", "-f", "mesh.yml"], &in_target);
    assert!(!in_target.exists(), "no CAS made in the target dir");
    refused(&["build", "-f", "mesh.yml"], &in_target);
    refused(&["apply", "-f", "mesh.yml"], &dir.join("target"));
    refused(&["apply", "-f", "mesh.yml"], &dir);

    // A CAS that is there already (made by an older scone) is not cleaned.
    let ok = sb
        .scone(&dir)
        .args(["build", "-f", "mesh.yml"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let session = in_target.join("sessions/myPythonApp.json");
    std::fs::create_dir_all(session.parent().unwrap()).unwrap();
    std::fs::write(&session, "{}").unwrap();
    refused(&["clean", "-f", "mesh.yml"], &in_target);
    assert!(session.exists(), "clean removed the CAS");
    assert!(dir.join("target/helm").exists(), "clean removed nothing");
}
