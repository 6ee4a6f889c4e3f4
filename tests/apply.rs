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
