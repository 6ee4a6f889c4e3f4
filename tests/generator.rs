//! The test tooling itself. The monorepo generator (tests/support/monorepo.rs), which
//! scale tests and the no-op benchmark rely on: the tree it writes, its determinism, its
//! hand-assembled ELF (run for real, and parsed by scone's own ELF reader), and its
//! `build.ninja` (built for real with ninja, then checked to be a no-op and to rebuild
//! exactly one service's chain when one input changes). And the tool lookup of
//! tests/support/tools.rs, with helm's state kept private to the test process.

mod support;

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::monorepo::{self, Monorepo, MonorepoOptions};
use support::tools;

#[derive(Debug, Deserialize)]
struct ServiceManifest {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    environment: Environment,
    secrets: Secrets,
    build: Build,
}

#[derive(Debug, Deserialize)]
struct Environment {
    local: Vec<EnvVar>,
    global: Vec<EnvVar>,
}

#[derive(Debug, Deserialize)]
struct EnvVar {
    name: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Secrets {
    local: Vec<Secret>,
}

#[derive(Debug, Deserialize)]
struct Secret {
    name: String,
    kind: String,
    size: usize,
}

#[derive(Debug, Deserialize)]
struct Build {
    name: String,
    kind: String,
    from: String,
    to: String,
    pwd: String,
    command: String,
    copy: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Meshfile {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    cas: Vec<Cas>,
    policy: Policy,
    env: Vec<EnvVar>,
    services: Vec<MeshService>,
}

#[derive(Debug, Deserialize)]
struct Cas {
    name: String,
    cas_url: String,
}

#[derive(Debug, Deserialize)]
struct Policy {
    namespace: String,
}

#[derive(Debug, Deserialize)]
struct MeshService {
    name: String,
    image: String,
    manifest: String,
}

fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_saphyr::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not the expected YAML: {err}", path.display()))
}

/// Every file under `root` (relative path → (mode, bytes)), skipping ninja's outputs.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.expect("the generated tree is readable"))
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            let meta = entry.metadata().expect("metadata of a generated file");
            let bytes = std::fs::read(entry.path()).expect("a generated file is readable");
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("inside the root")
                .to_path_buf();
            (rel, (meta.permissions().mode() & 0o7777, bytes))
        })
        .collect()
}

fn options(services: usize, meshes: usize) -> MonorepoOptions {
    MonorepoOptions {
        services,
        meshes,
        files_per_service: 2,
        file_size: 100,
        ..MonorepoOptions::default()
    }
}

#[test]
fn tree_has_the_requested_services_meshes_and_files() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let opts = options(12, 3);
    let repo: Monorepo = monorepo::generate(dir.path(), opts);

    assert_eq!(repo.root, dir.path());
    assert_eq!(repo.services.len(), 12);
    assert_eq!(
        repo.meshfiles,
        ["mesh-0.yml", "mesh-1.yml", "mesh-2.yml"]
            .iter()
            .map(|name| dir.path().join(name))
            .collect::<Vec<_>>()
    );
    assert!(!dir.path().join("mesh.yml").exists());

    let files = snapshot(dir.path());
    // base app + per service (manifest, main.cfg, 2 lib files) + 3 Meshfiles + build.ninja
    assert_eq!(files.len(), 1 + 12 * 4 + 3 + 1, "files: {:?}", files.keys());
    assert!(files
        .keys()
        .all(|path| !path.to_string_lossy().contains(".tmp")));

    let mut images = BTreeMap::new();
    for (index, (mesh_name, build_name, folder)) in repo.services.iter().enumerate() {
        assert_eq!(mesh_name, &format!("svc_{index:04}"));
        assert_eq!(build_name, &format!("svc_{index:04}"));
        assert_eq!(folder, &dir.path().join(format!("services/svc-{index:04}")));

        let manifest: ServiceManifest = read_yaml(&folder.join("service.yml"));
        assert_eq!(manifest.api_version, "scone/5.8");
        assert_eq!(manifest.kind, "genImage");
        assert_eq!(&manifest.build.name, build_name);
        assert_eq!(manifest.build.kind, "binary");
        assert_eq!(manifest.build.from, "dir:../../base");
        assert_eq!(
            manifest.build.to,
            format!("127.0.0.1:5000/mono/svc-{index:04}:latest")
        );
        assert_eq!(manifest.build.pwd, "/app");
        assert_eq!(manifest.build.command, "app main.cfg");
        assert_eq!(manifest.build.copy, ["main.cfg", "lib"]);
        let secret = format!("secret_{index:04}");
        assert_eq!(manifest.secrets.local.len(), 1);
        assert_eq!(manifest.secrets.local[0].name, secret);
        assert_eq!(manifest.secrets.local[0].kind, "ascii");
        assert_eq!(manifest.secrets.local[0].size, 16);
        let secret_ref = format!("$$SCONE::{secret}$$");
        assert_eq!(manifest.environment.local.len(), 2);
        assert!(manifest
            .environment
            .local
            .iter()
            .any(|var| var.value.as_deref() == Some(&secret_ref)));
        assert!(manifest
            .environment
            .local
            .iter()
            .any(|var| var.value.as_deref().is_some_and(|v| !v.contains("$$SCONE"))));
        assert_eq!(manifest.environment.global.len(), 1);
        assert_eq!(manifest.environment.global[0].name, "LOG_LEVEL");
        assert_eq!(manifest.environment.global[0].value, None);

        // `from` and `copy` resolve relative to the manifest's folder.
        let base = folder.join("../../base");
        assert!(base.join(monorepo::APP_PATH).is_file());
        let copied = ["main.cfg", "lib/file-0.txt", "lib/file-1.txt"];
        for input in copied {
            let len = std::fs::metadata(folder.join(input))
                .expect("a copied input exists")
                .len();
            assert_eq!(len, 100, "{input} of {build_name}");
        }
        images.insert(manifest.build.to, mesh_name.clone());
    }

    let mut listed = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for (mesh, path) in repo.meshfiles.iter().enumerate() {
        let meshfile: Meshfile = read_yaml(path);
        assert_eq!(meshfile.api_version, "scone/5.8");
        assert_eq!(meshfile.kind, "mesh");
        assert_eq!(meshfile.cas.len(), 1);
        assert_eq!(meshfile.cas[0].name, "cas");
        assert_eq!(meshfile.cas[0].cas_url, "127.0.0.1:8081");
        assert_eq!(meshfile.policy.namespace, format!("mono-{mesh}"));
        assert_eq!(meshfile.env.len(), 1);
        assert_eq!(meshfile.env[0].name, "LOG_LEVEL");
        assert_eq!(meshfile.env[0].value.as_deref(), Some("info"));
        assert_eq!(meshfile.services.len(), 4, "12 services in 3 meshes");
        for service in &meshfile.services {
            assert_eq!(images.get(&service.image), Some(&service.name));
            let manifest: ServiceManifest = read_yaml(&dir.path().join(&service.manifest));
            assert_eq!(manifest.build.to, service.image);
            assert!(
                listed.insert(service.name.clone()),
                "{} twice",
                service.name
            );
        }
        namespaces.insert(meshfile.policy.namespace);
    }
    assert_eq!(listed.len(), 12, "every service is in exactly one mesh");
    assert_eq!(namespaces.len(), 3);
}

#[test]
fn single_mesh_is_named_mesh_yml() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let repo = monorepo::generate(dir.path(), options(3, 1));
    assert_eq!(repo.meshfiles, [dir.path().join("mesh.yml")]);
    let meshfile: Meshfile = read_yaml(&repo.meshfiles[0]);
    assert_eq!(meshfile.policy.namespace, "mono-0");
    let names: Vec<_> = meshfile.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["svc_0000", "svc_0001", "svc_0002"]);
}

#[test]
fn same_options_give_the_same_bytes_in_any_folder() {
    let first = tempfile::tempdir().expect("a temp dir");
    let second = tempfile::tempdir().expect("a temp dir");
    monorepo::generate(first.path(), options(7, 2));
    monorepo::generate(&second.path().join("nested/deeper"), options(7, 2));
    let a = snapshot(first.path());
    let b = snapshot(&second.path().join("nested/deeper"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the two trees differ in content or modes");
    assert_eq!(a[Path::new("base/usr/bin/app")].0, 0o755);
    assert_eq!(a[Path::new("mesh-0.yml")].0, 0o644);

    // Content is pseudo-random per file, not a repeated pattern.
    let cfg = |i: usize| &a[&PathBuf::from(format!("services/svc-{i:04}/main.cfg"))].1;
    let lib0 = &a[Path::new("services/svc-0000/lib/file-0.txt")].1;
    assert_ne!(cfg(0), cfg(1));
    assert_ne!(cfg(0), lib0);
    let distinct: BTreeSet<u8> = cfg(0).iter().copied().collect();
    assert!(
        distinct.len() > 20,
        "only {} distinct bytes",
        distinct.len()
    );

    // Other options, other bytes.
    let third = tempfile::tempdir().expect("a temp dir");
    let bigger = MonorepoOptions {
        file_size: 300,
        ..options(7, 2)
    };
    monorepo::generate(third.path(), bigger);
    let c = snapshot(third.path());
    assert_eq!(c[Path::new("services/svc-0000/main.cfg")].1.len(), 300);
}

#[test]
fn base_app_is_a_static_elf_that_runs_and_exits_zero() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let repo = monorepo::generate(dir.path(), options(1, 1));
    let app = repo.base.join(monorepo::APP_PATH);
    let bytes = std::fs::read(&app).expect("the app is readable");
    assert_eq!(bytes, monorepo::minimal_elf());
    assert_eq!(&bytes[..4], b"\x7fELF");

    let status = std::process::Command::new(&app)
        .status()
        .expect("the kernel loads the synthesized ELF");
    assert_eq!(status.code(), Some(0));

    // scone's own ELF reader (used by the SGX measurement) accepts it.
    let elf = scone::sgx::elf::parse(&bytes).expect("scone parses the ELF");
    assert_eq!(elf.kind, scone::sgx::elf::ElfKind::Executable);
    assert_eq!(elf.segments.len(), 1);
    let segment = &elf.segments[0];
    assert!(segment.flags.read && segment.flags.execute && !segment.flags.write);
    assert_eq!(segment.data.len(), bytes.len());
    assert!(elf.entry > segment.vaddr && elf.entry < segment.vaddr + segment.memsz);
}

#[test]
fn build_ninja_builds_then_is_a_no_op_then_rebuilds_one_chain() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let repo = monorepo::generate(dir.path(), options(6, 2));
    assert_eq!(repo.build_ninja, dir.path().join("build.ninja"));

    let build = tools::ninja()
        .arg("-C")
        .arg(dir.path())
        .output()
        .expect("ninja runs");
    assert!(
        build.status.success(),
        "ninja failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let log = String::from_utf8_lossy(&build.stdout);
    // 6 service stamps + 2 mesh stamps.
    assert!(log.contains("[8/8]"), "ninja output: {log}");
    for mesh in ["mono-0", "mono-1"] {
        assert!(dir.path().join(format!("ninja-out/{mesh}.stamp")).is_file());
    }

    let noop = tools::ninja()
        .arg("-C")
        .arg(dir.path())
        .arg("-n")
        .output()
        .expect("ninja runs");
    assert!(noop.status.success());
    assert!(
        String::from_utf8_lossy(&noop.stdout).contains("ninja: no work to do."),
        "second build is not a no-op: {}",
        String::from_utf8_lossy(&noop.stdout)
    );

    // Touch one copied input of svc_0004 (mesh 1): its stamp and mono-1's re-run.
    let input = dir.path().join("services/svc-0004/lib/file-1.txt");
    let later = SystemTime::now() + Duration::from_secs(10);
    filetime::set_file_mtime(&input, filetime::FileTime::from_system_time(later))
        .expect("mtime can be set");
    let dry = tools::ninja()
        .arg("-C")
        .arg(dir.path())
        .arg("-n")
        .output()
        .expect("ninja runs");
    let plan = String::from_utf8_lossy(&dry.stdout);
    let edges: Vec<&str> = plan.lines().filter(|line| line.starts_with('[')).collect();
    assert_eq!(edges.len(), 2, "plan: {plan}");
    assert!(edges
        .iter()
        .any(|e| e.ends_with("stamp ninja-out/svc-0004.stamp")));
    assert!(edges
        .iter()
        .any(|e| e.ends_with("stamp ninja-out/mono-1.stamp")));
}

#[test]
fn refuses_bad_options_and_non_empty_folders() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for bad in [
        options(0, 1),
        options(3, 0),
        options(3, 4),
        options(10_001, 1),
    ] {
        let err = monorepo::try_generate(&dir.path().join("x"), bad)
            .expect_err("bad options are refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    std::fs::write(dir.path().join("existing"), b"keep me").expect("write a file");
    let err = monorepo::try_generate(dir.path(), options(1, 1))
        .expect_err("a non-empty folder is refused");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("existing")).expect("still there"),
        b"keep me"
    );
}

#[test]
fn tools_are_found_on_path_and_helm_state_is_private() {
    let ninja = tools::require("ninja");
    assert!(ninja.is_absolute(), "{}", ninja.display());
    assert_eq!(tools::find("ninja"), Some(ninja));
    assert_eq!(tools::find("scone-no-such-tool"), None);
    let missing = std::panic::catch_unwind(|| tools::require("scone-no-such-tool"))
        .expect_err("a missing tool panics");
    let message = missing
        .downcast_ref::<String>()
        .expect("the panic message is a String");
    assert_eq!(
        message,
        "`scone-no-such-tool` is not installed: run scripts/ci-deps.sh"
    );

    let env = tools::helm().arg("env").output().expect("helm runs");
    assert!(
        env.status.success(),
        "{}",
        String::from_utf8_lossy(&env.stderr)
    );
    let env = String::from_utf8_lossy(&env.stdout);
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for var in ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"] {
        let value = env
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("helm env has no {var}: {env}"))
            .trim_matches('"');
        let path = Path::new(value);
        assert!(path.starts_with(tmp), "{var}={value}");
        assert!(path.is_dir(), "{var}={value} exists");
        assert!(
            value.contains(&format!("/{}/", std::process::id())),
            "{var}={value} is private to this process"
        );
    }
}
