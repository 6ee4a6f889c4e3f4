//! The bundled example end to end: `scone build` and `scone apply` on
//! `fixtures/hello-world`, checked with the real tools (skopeo, umoci), the
//! local CAS, and byte-for-byte reproducibility.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{finished, messages, step_statuses, tools, Sandbox};

const TAG: &str = "registry.scontain.com:5050/cicd/python_hello_user:latest";

fn example(sb: &Sandbox, name: &str) -> PathBuf {
    sb.hello_world(name)
}

fn apply(sb: &Sandbox, dir: &Path) -> Vec<serde_json::Value> {
    let out = sb
        .scone(dir)
        .args(["apply", "-f", "mesh.yml", "--message-format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    messages(&out.stdout)
}

fn step<'a>(msgs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    msgs.iter()
        .find(|m| m["step"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step"))
}

#[test]
fn build_gives_an_image_skopeo_and_umoci_accept() {
    let sb = Sandbox::new();
    let dir = example(&sb, "hw");
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml"])
        .assert()
        .success();
    let layout = dir.join("target/images/python_hello_user");
    let info = tools::skopeo_inspect(&format!("oci:{}:{TAG}", layout.display()))
        .expect("skopeo reads the layout");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(
        info["Layers"].as_array().unwrap().len(),
        2,
        "python base + our layer"
    );

    let bundle = sb.path().join("bundle");
    let out = tools::umoci()
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{TAG}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = bundle.join("rootfs/python/print_env.py");
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(support::fixtures().join("hello-world/print_env.py")).unwrap()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copied).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    assert!(bundle.join("rootfs/usr/bin/python3.11").exists());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["cwd"], "/python");
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["python3", "print_env.py"])
    );
}

fn manifest_digest(dir: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("target/images/python_hello_user/index.json")).unwrap(),
    )
    .unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn builds_in_different_folders_times_and_umasks_are_identical() {
    let sb = Sandbox::new();
    let mut digests = Vec::new();
    for (i, umask) in ["022", "077"].iter().enumerate() {
        let dir = sb.path().join(format!("copy-{i}"));
        // Copy the example under this umask too, so the sources' modes differ.
        let script = format!(
            "umask {umask} && mkdir -p {d} && cp {src}/service.yml {src}/mesh.yml {src}/print_env.py {d}/ && exec \"$0\" build -f {d}/mesh.yml -q",
            d = dir.display(),
            src = support::fixtures().join("hello-world").display()
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(assert_cmd::cargo::cargo_bin("scone"));
        for (k, v) in sb.scone(sb.path()).get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        // Separate caches: nothing is shared between the two builds.
        cmd.env("SCONE_CACHE_DIR", sb.path().join(format!("cache-{i}")));
        let status = cmd.status().unwrap();
        assert!(status.success());
        digests.push((
            manifest_digest(&dir),
            std::fs::read(dir.join("target/enclave/python_hello_user/sigstruct.bin")).unwrap(),
        ));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0].0, digests[1].0, "manifest digests differ");
    assert_eq!(digests[0].1, digests[1].1, "SIGSTRUCTs differ");
}

#[test]
fn apply_uploads_the_session_to_the_local_cas_and_keeps_secrets_out() {
    let sb = Sandbox::new();
    let dir = example(&sb, "hw");
    let first = apply(&sb, &dir);
    let upload = step(&first, "upload");
    assert_eq!(upload["status"], "built");
    assert_eq!(upload["outputs"]["uploaded"], true);
    assert_eq!(upload["outputs"]["predecessor"], serde_json::Value::Null);
    let first_hash = upload["outputs"]["hash"].as_str().unwrap().to_string();

    // The session: env, secret declaration, MRENCLAVE = SIGSTRUCT's ENCLAVEHASH, fspf tag.
    let session: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(dir.join("target/policy/myPythonApp.yaml")).unwrap(),
    )
    .unwrap();
    let svc = &session["services"][0];
    assert_eq!(svc["name"], "python_app");
    assert_eq!(svc["environment"]["API_USER"], "myself");
    assert_eq!(svc["environment"]["API_PASSWORD"], "$$SCONE::password$$");
    assert_eq!(svc["command"], "python3 print_env.py");
    assert_eq!(svc["pwd"], "/python");
    let secret = &session["secrets"][0];
    assert_eq!(
        (
            secret["name"].as_str(),
            secret["kind"].as_str(),
            secret["size"].as_u64()
        ),
        (Some("password"), Some("ascii"), Some(10))
    );
    let sigstruct =
        std::fs::read(dir.join("target/enclave/python_hello_user/sigstruct.bin")).unwrap();
    assert_eq!(sigstruct.len(), 1808);
    assert_eq!(
        svc["mrenclaves"][0].as_str().unwrap(),
        hex::encode(&sigstruct[960..992])
    );
    let sign = step(&first, "sign");
    assert_eq!(svc["fspf_tag"], sign["outputs"]["fspf_tag"]);

    // Unchanged: nothing uploaded.
    let again = apply(&sb, &dir);
    assert_eq!(step(&again, "upload")["status"], "fresh");
    assert_eq!(finished(&again)["built"], 0, "{:?}", step_statuses(&again));

    // A change: the update names the first hash as predecessor.
    std::fs::write(dir.join("print_env.py"), b"print('changed')\n").unwrap();
    let third = apply(&sb, &dir);
    let upload = step(&third, "upload");
    assert_eq!(upload["status"], "built");
    assert_eq!(
        upload["outputs"]["predecessor"].as_str(),
        Some(first_hash.as_str())
    );

    // The password CAS generated is the same across updates, and appears nowhere.
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let secrets = cas.secret_values("myPythonApp").unwrap();
    let password = secrets["password"].expose_str().unwrap().to_string();
    assert_eq!(password.len(), 10);
    let mut everything = Vec::new();
    for run in [&first, &again, &third] {
        everything.push(serde_json::to_string(run).unwrap());
    }
    for (path, bytes) in support::tree(&dir.join("target")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&password),
            "the secret leaked into target/{path}"
        );
    }
    for entry in walkdir::WalkDir::new(dir.join("target/.scone")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{}",
                entry.path().display()
            );
        }
    }
    let lock = std::fs::read_to_string(dir.join("scone.lock")).unwrap();
    assert!(!lock.contains(&password));
    assert!(lock.contains(&upload["outputs"]["hash"].as_str().unwrap().to_string()));
    assert!(!everything.concat().contains(&password));
}

#[test]
fn changing_the_heap_changes_mrenclave_but_a_source_edit_changes_only_fspf() {
    let sb = Sandbox::new();
    let dir = example(&sb, "hw");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join("target/enclave/python_hello_user").join(name)).unwrap()
    };
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let (mr1, tag1) = (read("mrenclave"), read("fspf_tag"));
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    assert_eq!(
        (read("mrenclave"), read("fspf_tag")),
        (mr1.clone(), tag1.clone()),
        "rebuild of the same inputs"
    );

    std::fs::write(dir.join("print_env.py"), b"print('edited')\n").unwrap();
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    let (mr2, tag2) = (read("mrenclave"), read("fspf_tag"));
    assert_eq!(mr2, mr1, "a source edit must not change MRENCLAVE");
    assert_ne!(tag2, tag1, "a source edit must change the fspf tag");

    let manifest = std::fs::read_to_string(dir.join("service.yml")).unwrap();
    let with_heap = manifest.replace(
        "  local:\n",
        "  local:\n    - name: SCONE_HEAP\n      value: 512M\n",
    );
    assert_ne!(with_heap, manifest);
    std::fs::write(dir.join("service.yml"), with_heap).unwrap();
    sb.scone(&dir)
        .args(["build", "-f", "mesh.yml", "-q"])
        .assert()
        .success();
    assert_ne!(read("mrenclave"), mr2, "SCONE_HEAP must change MRENCLAVE");
}
