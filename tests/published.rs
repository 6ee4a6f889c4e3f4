//! The manifest forms SCONE publishes (its tutorial repositories; one fixture per
//! form under `fixtures/published/`, each naming its source) pass `scone check`,
//! through the Meshfile and given alone, with one warning naming
//! `file:line:col` and the field for every field scone does not implement; the
//! buildable ones build. The CAS a mesh uploads to follows `alias`, with the
//! default alias when none is given.

mod support;

use scone::workspace::{load, LoadOptions};
use std::path::{Path, PathBuf};
use support::Sandbox;

/// `scone check -v -f FILE…` from the project root: exit code and stderr
/// (`-v`: every warning, none collapsed into a count).
fn check(files: &[&str]) -> (Option<i32>, String) {
    let mut cmd = support::scone();
    cmd.current_dir(support::project_root())
        .args(["check", "-v"]);
    for f in files {
        cmd.args(["-f", &format!("fixtures/published/{f}")]);
    }
    let out = cmd.output().expect("scone runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Passes, and warns once for each `(at, field)`: `at` is `dir/file:line:col`
/// under `fixtures/published/`.
fn passes_with(files: &[&str], unimplemented: &[(&str, &str)]) -> String {
    let (code, stderr) = check(files);
    assert_eq!(code, Some(0), "{files:?}:\n{stderr}");
    for (at, field) in unimplemented {
        let line = format!(
            "warning: fixtures/published/{at}: `{field}` is not implemented by scone and is ignored: "
        );
        assert_eq!(
            stderr.matches(&line).count(),
            1,
            "no single `{line}` in:\n{stderr}"
        );
    }
    let warned = stderr.matches("is not implemented by scone").count();
    assert_eq!(
        warned,
        unimplemented.len(),
        "other fields warned:\n{stderr}"
    );
    stderr
}

#[test]
fn the_first_tutorial_appfile_and_meshfile_pass() {
    let stderr = passes_with(
        &["appfile/meshfile.yml"],
        &[("appfile/meshfile.yml:12:16", "cas[cas].tolerance")],
    );
    assert!(stderr.contains("Checked greeterApp"), "{stderr}");
    assert!(
        stderr.contains("Appfile.yml:6:7: `kind: genAppImage` is deprecated"),
        "{stderr}"
    );
    passes_with(&["appfile/Appfile.yml"], &[]);
}

#[test]
fn the_mesh_tutorial_passes() {
    let service = [
        ("mesh-tutorial/service.yaml:47:17", "build.requirements"),
        ("mesh-tutorial/service.yaml:53:5", "build.run"),
    ];
    let mut all = vec![
        ("mesh-tutorial/mesh.yaml:15:14", "cas[cas].cas_key"),
        ("mesh-tutorial/mesh.yaml:16:16", "cas[cas].tolerance"),
        ("mesh-tutorial/mesh.yaml:17:11", "cas[cas].mode"),
        (
            "mesh-tutorial/mesh.yaml:18:25",
            "cas[cas].cas_encryption_key",
        ),
        (
            "mesh-tutorial/mesh.yaml:40:20",
            "services[tutorialservice].image_secrets",
        ),
    ];
    all.extend(service);
    let stderr = passes_with(&["mesh-tutorial/mesh.yaml"], &all);
    assert!(
        stderr.contains("Checked tutorial-1234-5678 (fixtures/published/mesh-tutorial/mesh.yaml): 1 service, 3 secrets, 1 global env"),
        "{stderr}"
    );
    passes_with(&["mesh-tutorial/service.yaml"], &service);
}

#[test]
fn the_software_update_example_passes() {
    let service = [
        ("software-update/service.yaml:33:11", "build.stable"),
        ("software-update/service.yaml:38:17", "build.requirements"),
        ("software-update/service.yaml:42:5", "build.run"),
    ];
    let mut all = vec![("software-update/mesh.yaml:13:16", "cas[cas].tolerance")];
    all.extend(service);
    passes_with(&["software-update/mesh.yaml"], &all);
    passes_with(&["software-update/service.yaml"], &service);
}

#[test]
fn the_flask_redis_tutorial_passes() {
    let stderr = passes_with(
        &["flask-redis/mesh.yaml"],
        &[
            ("flask-redis/mesh.yaml:16:14", "cas[cas].cas_key"),
            ("flask-redis/mesh.yaml:17:16", "cas[cas].tolerance"),
            ("flask-redis/mesh.yaml:18:11", "cas[cas].mode"),
            ("flask-redis/mesh.yaml:19:25", "cas[cas].cas_encryption_key"),
            ("flask-redis/service.yaml:32:3", "injection_files"),
            (
                "flask-redis/service.yaml:55:20",
                "secrets[api_ca_cert].private_key",
            ),
            ("flask-redis/service.yaml:60:20", "secrets[api].private_key"),
            ("flask-redis/service.yaml:61:15", "secrets[api].issuer"),
            ("flask-redis/service.yaml:63:9", "secrets[api].dns"),
            ("flask-redis/service.yaml:70:17", "build.requirements"),
            (
                "flask-redis/redis/service.yaml:12:20",
                "secrets[cache_ca_cert].private_key",
            ),
            (
                "flask-redis/redis/service.yaml:17:20",
                "secrets[cache_client_cert].private_key",
            ),
            (
                "flask-redis/redis/service.yaml:18:15",
                "secrets[cache_client_cert].issuer",
            ),
        ],
    );
    assert!(
        stderr.contains("2 services, 8 secrets, 5 global envs"),
        "{stderr}"
    );
}

#[test]
fn the_java_tutorial_passes_with_its_java17_kind() {
    let service = [
        ("java/service.yaml:44:5", "build.host_paths"),
        ("java/service.yaml:48:5", "build.run"),
    ];
    let cas = [
        ("java/mesh.yaml:12:14", "cas[cas].cas_key"),
        ("java/mesh.yaml:13:16", "cas[cas].tolerance"),
        ("java/mesh.yaml:14:11", "cas[cas].mode"),
        ("java/mesh.yaml:15:25", "cas[cas].cas_encryption_key"),
    ];
    let all: Vec<_> = cas.iter().chain(&service).copied().collect();
    passes_with(&["java/mesh.yaml"], &all);
    let mut resources = vec![
        ("java/mesh-resources.yaml:12:16", "cas[cas].tolerance"),
        ("java/mesh-resources.yaml:13:11", "cas[cas].mode"),
        (
            "java/mesh-resources.yaml:29:7",
            "services[javaapp].helm_extra_values",
        ),
    ];
    resources.extend(service);
    passes_with(&["java/mesh-resources.yaml"], &resources);
    passes_with(&["java/service.yaml"], &service);
}

#[test]
fn a_java_kind_without_a_base_is_refused_at_check() {
    let sb = Sandbox::new();
    let dir = sb.path().join("java");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["service.yaml", "PrintEnv.java"] {
        std::fs::copy(
            support::fixtures().join("published/java").join(f),
            dir.join(f),
        )
        .unwrap();
    }
    let out = sb
        .scone(&dir)
        .args(["check", "-f", "service.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: service.yaml:37:9: no base image for build.kind `java17` [build-kind]"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`[base] java17 = \"…\"` in scone.toml"),
        "{stderr}"
    );
}

#[test]
fn the_secure_document_app_meshfiles_pass() {
    let api = [
        ("secure-doc/service.yaml:43:3", "injection_files"),
        ("secure-doc/service.yaml:62:20", "secrets[docs].private_key"),
        ("secure-doc/service.yaml:63:15", "secrets[docs].issuer"),
        ("secure-doc/service.yaml:66:9", "secrets[docs].dns"),
        (
            "secure-doc/service.yaml:70:20",
            "secrets[DOCS_CLIENT_CERT].private_key",
        ),
        (
            "secure-doc/service.yaml:71:15",
            "secrets[DOCS_CLIENT_CERT].issuer",
        ),
        (
            "secure-doc/service.yaml:72:20",
            "secrets[DOCS_CLIENT_CERT].common_name",
        ),
        (
            "secure-doc/service.yaml:78:20",
            "secrets[DOCS_CA_CERT].common_name",
        ),
        (
            "secure-doc/service.yaml:79:20",
            "secrets[DOCS_CA_CERT].private_key",
        ),
        ("secure-doc/service.yaml:87:17", "build.requirements"),
        ("secure-doc/client.yaml:21:3", "injection_files"),
        ("secure-doc/client.yaml:34:17", "build.requirements"),
        (
            "secure-doc/stand-in/service.yaml:10:58",
            "secrets[CACHE_CA_CERT].private_key",
        ),
        (
            "secure-doc/stand-in/service.yaml:11:55",
            "secrets[DB_CA_CERT].private_key",
        ),
        (
            "secure-doc/stand-in/service.yaml:12:58",
            "secrets[PROXY_CA_CERT].private_key",
        ),
        (
            "secure-doc/stand-in/service.yaml:14:56",
            "secrets[DB_CLIENT_CERT].private_key",
        ),
        (
            "secure-doc/stand-in/service.yaml:14:76",
            "secrets[DB_CLIENT_CERT].issuer",
        ),
    ];
    let mut head = vec![
        ("secure-doc/mesh.yaml:15:14", "cas[cas].cas_key"),
        ("secure-doc/mesh.yaml:16:16", "cas[cas].tolerance"),
        ("secure-doc/mesh.yaml:17:11", "cas[cas].mode"),
        ("secure-doc/mesh.yaml:18:25", "cas[cas].cas_encryption_key"),
        ("secure-doc/mesh.yaml:66:3", "helm_extra_values"),
    ];
    head.extend(api);
    let stderr = passes_with(&["secure-doc/mesh.yaml"], &head);
    assert!(
        stderr.contains("3 services, 12 secrets, 10 global envs"),
        "{stderr}"
    );
    let mut policies = vec![
        ("secure-doc/Meshfile-policies.yml:15:14", "cas[cas].cas_key"),
        (
            "secure-doc/Meshfile-policies.yml:16:16",
            "cas[cas].tolerance",
        ),
        (
            "secure-doc/Meshfile-policies.yml:20:28",
            "policy.attestation_policy_name",
        ),
        (
            "secure-doc/Meshfile-policies.yml:21:23",
            "policy.access_policy_name",
        ),
        (
            "secure-doc/Meshfile-policies.yml:22:25",
            "policy.security_policy_name",
        ),
        ("secure-doc/Meshfile-policies.yml:56:17", "extra_policies"),
    ];
    policies.extend(api);
    passes_with(&["secure-doc/Meshfile-policies.yml"], &policies);
    let mut helm = vec![
        ("secure-doc/Meshfile-helm.yml:14:14", "cas[cas].cas_key"),
        ("secure-doc/Meshfile-helm.yml:15:16", "cas[cas].tolerance"),
        ("secure-doc/Meshfile-helm.yml:53:2", "helm"),
    ];
    helm.extend(api);
    passes_with(&["secure-doc/Meshfile-helm.yml"], &helm);
}

fn mesh_of(file: &str) -> scone::manifest::Mesh {
    let ws = load(&LoadOptions {
        files: vec![support::fixtures().join("published").join(file)],
        cwd: support::project_root(),
        target_dir: None,
    })
    .unwrap_or_else(|d| panic!("{file}: {d}"));
    ws.meshes.into_iter().next().expect("a mesh").mesh
}

#[test]
fn alias_lists_and_the_default_alias_give_the_roles() {
    let all = ["image", "security", "access", "attestation"];
    let published = mesh_of("mesh-tutorial/mesh.yaml");
    assert_eq!(published.cas_roles(), vec![all.to_vec()]);
    let seed = load(&LoadOptions {
        files: vec![support::fixtures().join("hello-world/mesh.yml")],
        cwd: support::project_root(),
        target_dir: None,
    })
    .unwrap();
    let seed = &seed.meshes[0].mesh;
    assert!(seed.cas[0].alias.is_none(), "the seed's CAS has no alias");
    assert_eq!(
        seed.cas_roles(),
        vec![all.to_vec()],
        "the default alias: every role"
    );
    assert_eq!(
        seed.policy_cas().map(|c| c.name.value.as_str()),
        Some("cas")
    );
}

/// A mesh with two CAS: `images` (alias `image`) first, `policies` without alias.
fn two_cas(dir: &Path, second_alias: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["service.yml", "print_env.py"] {
        std::fs::copy(support::fixtures().join("hello-world").join(f), dir.join(f)).unwrap();
    }
    let mesh = format!(
        "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: images\n    alias: [image]\n    cas_url: images.example.com\n  - name: policies\n{second_alias}    cas_url: policies.example.com\npolicy:\n  namespace: roles\nenv:\n  - name: API_USER\n    value: me\nservices:\n  - name: app\n    image: registry.scontain.com:5050/cicd/python_hello_user:latest\n"
    );
    std::fs::write(dir.join("mesh.yml"), mesh).unwrap();
    dir.join("mesh.yml")
}

#[test]
fn the_policy_goes_to_the_cas_playing_security() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_cas(&tmp.path().join("default"), "");
    let ws = load(&LoadOptions {
        files: vec![file],
        cwd: tmp.path().to_path_buf(),
        target_dir: None,
    })
    .unwrap();
    let mesh = &ws.meshes[0].mesh;
    assert_eq!(
        mesh.cas_roles(),
        vec![vec!["image"], vec!["security", "access", "attestation"]],
        "the default alias takes the roles no other CAS names"
    );
    assert_eq!(
        mesh.policy_cas().map(|c| c.cas_url.value.as_str()),
        Some("policies.example.com")
    );

    let sb = Sandbox::new();
    let file = two_cas(&sb.path().join("clash"), "    alias: [image, security]\n");
    let out = sb
        .scone(file.parent().unwrap())
        .args(["check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: mesh.yml:7:11: cas `policies` and cas `images` both have alias `image` [invalid-value]"),
        "{stderr}"
    );
}

/// A copy of `fixtures/published/NAME` in the sandbox.
fn copy_fixture(sb: &Sandbox, name: &str) -> PathBuf {
    let from = support::fixtures().join("published").join(name);
    let to = sb.path().join(name);
    for entry in walk(&from) {
        let rel = entry.strip_prefix(&from).unwrap();
        std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, to.join(rel)).unwrap();
    }
    to
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn the_buildable_published_fixtures_build() {
    for (name, mesh, services) in [
        ("mesh-tutorial", "mesh.yaml", 1),
        ("flask-redis", "mesh.yaml", 2),
        ("appfile", "meshfile.yml", 1),
        ("software-update", "mesh.yaml", 1),
    ] {
        let sb = Sandbox::new();
        let dir = copy_fixture(&sb, name);
        let out = sb
            .scone(&dir)
            .args(["build", "-f", mesh, "--message-format", "json"])
            .output()
            .expect("scone runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let msgs = support::messages(&out.stdout);
        let finished = support::finished(&msgs);
        assert_eq!(finished["success"], true, "{name}: {msgs:?}");
        let images = std::fs::read_dir(dir.join("target/images"))
            .unwrap()
            .count();
        assert_eq!(images, services, "{name}: one image per service");
    }
}
