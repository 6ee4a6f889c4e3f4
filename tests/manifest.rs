//! Manifest parsing, validation and workspace loading, through the `scone check`
//! binary and the library: the seed and sconectl fixtures pass, every broken
//! manifest of `fixtures/invalid/` fails with its error kind at its line.

mod support;

use scone::manifest::{ErrorKind, StringOrList};
use scone::workspace::{load, LoadOptions, Workspace};
use std::path::{Path, PathBuf};

fn load_fixture(files: &[&str]) -> Workspace {
    let opts = LoadOptions {
        files: files.iter().map(|f| support::fixtures().join(f)).collect(),
        cwd: support::project_root(),
        target_dir: None,
    };
    match load(&opts) {
        Ok(ws) => ws,
        Err(diags) => panic!("{files:?} must load:\n{diags}"),
    }
}

fn env_of<'a>(ws: &'a Workspace, mesh: &str, service: &str) -> &'a [(String, String)] {
    let m = ws
        .meshes
        .iter()
        .find(|m| m.namespace() == mesh)
        .expect("mesh is loaded");
    &m.services
        .iter()
        .find(|s| s.name == service)
        .expect("service is linked")
        .environment
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn check_accepts_the_seed() {
    let out = support::scone()
        .current_dir(support::project_root())
        .args(["check", "-f", "fixtures/hello-world/mesh.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Checked myPythonApp (fixtures/hello-world/mesh.yml): 1 service, 1 secret, 1 global env"),
        "{stderr}"
    );
}

#[test]
fn check_without_f_finds_the_meshfile() {
    let out = support::scone()
        .current_dir(support::fixtures().join("hello-world"))
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Checked myPythonApp (mesh.yml)"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_service_manifest_alone() {
    let out = support::scone()
        .current_dir(support::project_root())
        .args(["check", "-f", "fixtures/hello-world/service.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Checked python_hello_user (fixtures/hello-world/service.yml)"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_sconectl_formats_with_deprecation_warnings() {
    let out = support::scone()
        .current_dir(support::project_root())
        .args([
            "check",
            "-f",
            "fixtures/sconectl/mesh.yml",
            "-f",
            "fixtures/sconectl/mesh-list.yml",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: fixtures/sconectl/flask/service.yml:5:7: `kind: genservice` is deprecated"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: fixtures/sconectl/worker/service.yml:4:7: `kind: genAppImage` is deprecated"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Checked flask_demo (fixtures/sconectl/mesh.yml): 2 services, 2 secrets, 2 global envs"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Checked flask_list (fixtures/sconectl/mesh-list.yml): 2 services"),
        "{stderr}"
    );
}

/// One case of `fixtures/invalid/`: the file to check and what its first
/// line (`# expect: <kind> <file>:<line>:<col>`) promises.
struct Case {
    file: PathBuf,
    code: String,
    at: String,
}

fn invalid_cases() -> Vec<Case> {
    let dir = support::fixtures().join("invalid");
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.push(path.join("mesh.yml"));
        } else if path.extension().is_some_and(|e| e == "yml") && !path.is_symlink() {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let head = text.lines().next().unwrap_or_default();
            let words: Vec<&str> = head.split_whitespace().collect();
            assert!(
                words.len() == 4 && words[..2] == ["#", "expect:"],
                "{}: first line must be `# expect: <kind> <file>:<line>:<col>`",
                file.display()
            );
            let case_dir = file
                .parent()
                .unwrap()
                .strip_prefix(support::project_root())
                .unwrap();
            Case {
                code: words[2].to_string(),
                at: format!("{}:", case_dir.join(words[3]).display()),
                file,
            }
        })
        .collect()
}

#[test]
fn every_invalid_manifest_fails_with_its_kind_and_position() {
    let cases = invalid_cases();
    assert!(cases.len() >= 30, "only {} invalid fixtures", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let rel = case.file.strip_prefix(support::project_root()).unwrap();
        let out = support::scone()
            .current_dir(support::project_root())
            .arg("check")
            .arg("-f")
            .arg(rel)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        let want = format!("error: {}", case.at);
        let ok = out.status.code() == Some(2)
            && first.starts_with(&want)
            && first.ends_with(&format!("[{}]", case.code));
        if !ok {
            failures.push(format!(
                "{}: want `{want} … [{}]`, exit 2; got exit {:?}:\n{stderr}",
                rel.display(),
                case.code,
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_fixtures_cover_every_rule() {
    let codes: Vec<String> = invalid_cases().into_iter().map(|c| c.code).collect();
    for kind in [
        ErrorKind::Yaml,
        ErrorKind::Template,
        ErrorKind::Type,
        ErrorKind::UnknownField,
        ErrorKind::MissingField,
        ErrorKind::ApiVersion,
        ErrorKind::Kind,
        ErrorKind::BuildKind,
        ErrorKind::InvalidValue,
        ErrorKind::MissingFile,
        ErrorKind::AbsolutePath,
        ErrorKind::PathEscape,
        ErrorKind::UndefinedGlobal,
        ErrorKind::LocalOverride,
        ErrorKind::UndeclaredSecret,
        ErrorKind::UnexportedImport,
        ErrorKind::DuplicateSecret,
        ErrorKind::DuplicateEnv,
        ErrorKind::DuplicateService,
        ErrorKind::UnlinkedService,
        ErrorKind::UnknownService,
        ErrorKind::Config,
    ] {
        assert!(
            codes.iter().any(|c| c == kind.code()),
            "no fixture for {}",
            kind.code()
        );
    }
}

/// The workspace `scone` finds from `cwd` with no `-f`.
fn load_in(cwd: &Path) -> Workspace {
    load(&LoadOptions {
        files: vec![],
        cwd: cwd.to_path_buf(),
        target_dir: None,
    })
    .unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const SERVICE: &str = "apiVersion: scone/5.8
kind: genImage
build:
  name: linked
  kind: python
  to: registry.example.com/t/linked:1
  pwd: /app
  command: python3 app.py
  copy:
    - app.py
";

#[test]
fn symlink_escape_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("outside.txt"), "not yours\n");
    let svc = tmp.path().join("svc");
    write(&svc.join("service.yml"), SERVICE);
    std::os::unix::fs::symlink("../outside.txt", svc.join("app.py")).unwrap();
    let out = support::scone()
        .current_dir(&svc)
        .args(["check", "-f", "service.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: service.yml:10:7: copy path `app.py` is a symlink"),
        "{stderr}"
    );
    assert!(stderr.contains("[path-escape]"), "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&svc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.py", "service.yml"], "check wrote something");
}

const MESH: &str = "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: cas\n    cas_url: cas.example.com\npolicy:\n  namespace: ns\nservices:\n  - name: s\n    image: registry.example.com/t/linked:1\n";

#[test]
fn below_a_scone_toml_without_members_the_roots_meshfile_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    write(&root.join("scone.toml"), "[cache]\n");
    write(&root.join("mesh.yml"), MESH);
    write(&root.join("svc/service.yml"), SERVICE);
    write(&root.join("svc/app.py"), "print(1)\n");
    // As cargo builds the workspace from any folder in it.
    let ws = load_in(&root.join("svc"));
    assert_eq!(ws.root, root);
    let names: Vec<&str> = ws.meshes.iter().map(|m| m.namespace()).collect();
    assert_eq!(names, ["ns"]);
    // A Meshfile of the current folder comes first.
    write(&root.join("svc/mesh.yml"), &MESH.replace("ns\n", "other\n"));
    let ws = load_in(&root.join("svc"));
    assert_eq!(ws.root, root, "the root stays the folder of scone.toml");
    let names: Vec<&str> = ws.meshes.iter().map(|m| m.namespace()).collect();
    assert_eq!(names, ["other"]);
}

#[test]
fn one_folder_too_deep_the_meshfile_above_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    write(&root.join("mesh.yml"), MESH);
    write(&root.join("svc/service.yml"), SERVICE);
    let out = support::scone()
        .current_dir(root.join("svc"))
        .args(["build", "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no manifest to load [no-manifest]"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "help: `../mesh.yml` is a Meshfile above this folder: give it with `-f ../mesh.yml`, or run scone in `..`"
        ),
        "{stderr}"
    );
    assert!(!root.join("svc/target").exists(), "nothing is written");
    // A Meshfile by another name here comes first; a lone service manifest
    // is named when nothing else is.
    write(&root.join("svc/my-mesh.yaml"), MESH);
    let hint = |dir: &Path| {
        let out = support::scone()
            .current_dir(dir)
            .args(["check"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("help: ").map(str::to_string))
            .unwrap_or_else(|| panic!("{stderr}"))
    };
    assert_eq!(
        hint(&root.join("svc")),
        "`my-mesh.yaml` here is a Meshfile: give it with `-f my-mesh.yaml`"
    );
    std::fs::remove_file(root.join("svc/my-mesh.yaml")).unwrap();
    std::fs::remove_file(root.join("mesh.yml")).unwrap();
    assert_eq!(
        hint(&root.join("svc")),
        "`service.yml` here is a service manifest (kind `genImage`): build it alone with `-f service.yml`, or give the Meshfile that names it"
    );
}

#[test]
fn scone_toml_members_are_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(&root.join("scone.toml"), "members = [\"meshes/*.yml\"]\n");
    // A repository: scone.toml is looked for up to its root, never above.
    std::fs::create_dir(root.join(".git")).unwrap();
    write(&root.join("svc/service.yml"), SERVICE);
    write(&root.join("svc/app.py"), "print(1)\n");
    let mesh = "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: cas\n    cas_url: cas.example.com\npolicy:\n  namespace: ns{}\nservices:\n  - name: s\n    image: registry.example.com/t/linked:1\n";
    write(&root.join("meshes/one.yml"), &mesh.replace("{}", "1"));
    write(&root.join("meshes/two.yml"), &mesh.replace("{}", "2"));
    let ws = load_in(&root.join("svc"));
    assert_eq!(ws.root, root);
    let names: Vec<&str> = ws.meshes.iter().map(|m| m.namespace()).collect();
    assert_eq!(names, ["ns1", "ns2"]);
    assert_eq!(ws.services.len(), 1, "one manifest shared by both meshes");
    assert_eq!(ws.meshes[1].services[0].unit, 0);
}

#[test]
fn scone_toml_errors_have_a_position() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("scone.toml"),
        "members = [\"a\"]\ntarget-dir = 3\n",
    );
    let err = load(&LoadOptions {
        files: vec![],
        cwd: tmp.path().to_path_buf(),
        target_dir: None,
    })
    .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].kind, ErrorKind::Config);
    assert_eq!((err.0[0].pos.line, err.0[0].pos.column), (2, 14), "{err}");
}

#[test]
fn no_manifest_is_a_diagnostic() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load(&LoadOptions {
        files: vec![],
        cwd: tmp.path().to_path_buf(),
        target_dir: None,
    })
    .unwrap_err();
    assert_eq!(err.0[0].kind, ErrorKind::NoManifest, "{err}");
    // Run in a subfolder of a workspace that is no repository: its
    // scone.toml above is not read, and the hint says so.
    std::fs::write(
        tmp.path().join("scone.toml"),
        "members = [\"a/mesh.yml\"]\n",
    )
    .unwrap();
    let sub = tmp.path().join("services/a");
    std::fs::create_dir_all(&sub).unwrap();
    let err = load(&LoadOptions {
        files: vec![],
        cwd: sub,
        target_dir: None,
    })
    .unwrap_err();
    let hint = err.0[0].hint.clone().unwrap_or_default();
    assert_eq!(err.0[0].kind, ErrorKind::NoManifest, "{err}");
    assert!(
        hint.contains("`../../scone.toml` is above this folder") && hint.contains("git init"),
        "{hint}"
    );
}

#[test]
fn env_precedence_service_beats_helm_beats_global_beats_default() {
    let ws = load_fixture(&["sconectl/mesh.yml"]);
    let api = env_of(&ws, "flask_demo", "api");
    let names: Vec<&str> = api.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "SCONE_HEAP",
            "SCONE_STACK",
            "SCONE_ALLOW_DLOPEN",
            "DB_PASSWORD",
            "TLS_CERT",
            "LOG_LEVEL",
            "CAS_ADDR"
        ]
    );
    assert_eq!(
        lookup(api, "LOG_LEVEL"),
        Some("debug"),
        "the service's own entry wins"
    );
    assert_eq!(
        lookup(api, "CAS_ADDR"),
        Some("edge.scone-cas.cf"),
        "rendered from {{{{cas_cas_cas_url}}}}"
    );
    assert_eq!(
        lookup(api, "DB_PASSWORD"),
        Some("$$SCONE::db_password$$"),
        "references are kept"
    );
    let worker = env_of(&ws, "flask_demo", "worker");
    assert_eq!(
        lookup(worker, "LOG_LEVEL"),
        Some("warning"),
        "helm beats global"
    );
    assert_eq!(lookup(worker, "DB_PASSWORD"), Some("$$SCONE::db_password"));
    let ws = load_fixture(&["sconectl/mesh-list.yml"]);
    assert_eq!(
        lookup(env_of(&ws, "flask_list", "api"), "LOG_LEVEL"),
        Some("error"),
        "seed form `key:`"
    );
    let ws = load_fixture(&["multi/mesh.yml"]);
    assert_eq!(
        lookup(env_of(&ws, "multi", "b"), "GREETING"),
        Some("hello"),
        "mesh beats default"
    );
    assert_eq!(
        lookup(env_of(&ws, "multi", "c"), "COLOR"),
        Some("blue"),
        "default when the mesh is silent"
    );
}

#[test]
fn multi_line_secret_values_are_byte_exact() {
    let ws = load_fixture(&["sconectl/mesh.yml"]);
    let flask = &ws.services[ws.find_service("flask_api").unwrap()].manifest;
    let cert = flask.secrets.local[0].value.as_ref().unwrap();
    let want = "-----BEGIN CERTIFICATE-----\n\
                MIIBszCCAVmgAwIBAgIUXq0fake0certificate0for0tests0AwCgYIKoZIzj0E\n\
                AwIwDzENMAsGA1UEAwwEdGVzdDAeFw0yNDAxMDEwMDAwMDBaFw0zNDAxMDEwMDAw\n\
                -----END CERTIFICATE-----\n";
    assert_eq!(cert.value.expose(), Some(want));
}

#[test]
fn policy_lists_in_both_forms() {
    let ws = load_fixture(&["sconectl/mesh.yml", "sconectl/mesh-list.yml"]);
    let p0 = &ws.meshes[0].mesh.policy;
    assert!(matches!(p0.tolerate, Some(StringOrList::One(_))));
    assert_eq!(
        p0.tolerate.as_ref().unwrap().items(),
        ["debug-mode", "hyperthreading", "outdated-tcb"]
    );
    assert_eq!(
        p0.ignore_advisories.as_ref().unwrap().items(),
        ["INTEL-SA-00161", "INTEL-SA-00220"]
    );
    let p1 = &ws.meshes[1].mesh.policy;
    assert!(matches!(p1.tolerate, Some(StringOrList::Many(_))));
    assert_eq!(
        p1.ignore_advisories.as_ref().unwrap().items(),
        ["INTEL-SA-00161", "INTEL-SA-00220"]
    );
    assert_eq!(ws.services.len(), 2, "shared manifests are loaded once");
    let count = |what: &str| {
        ws.warnings
            .iter()
            .filter(|w| w.message.contains(what))
            .count()
    };
    assert_eq!(count("is deprecated"), 2, "{:?}", ws.warnings);
    assert_eq!(
        count("is not implemented by scone"),
        3,
        "cas_key, mode, tolerance: {:?}",
        ws.warnings
    );
    let testing: Vec<String> = ws
        .warnings
        .iter()
        .filter(|w| w.message.contains("FOR TESTING ONLY"))
        .map(|w| format!("{}:{}", w.file.display(), w.pos))
        .collect();
    assert_eq!(
        testing,
        [
            "fixtures/sconectl/mesh.yml:13:16",
            "fixtures/sconectl/mesh-list.yml:12:14"
        ],
        "one per mesh, at its --only_for_testing-* tolerance or its debug-mode: {:?}",
        ws.warnings
    );
    assert_eq!(ws.warnings.len(), 7, "{:?}", ws.warnings);
}

#[test]
fn multi_links_by_manifest_and_by_image_sorted_by_build_name() {
    let ws = load_fixture(&["multi/mesh.yml"]);
    let names: Vec<&str> = ws.services.iter().map(|u| u.name()).collect();
    assert_eq!(names, ["multi_a", "multi_b", "multi_c"]);
    let mesh = &ws.meshes[0];
    for (i, s) in mesh.services.iter().enumerate() {
        assert_eq!(s.unit, i);
        assert_eq!(
            ws.services[s.unit].manifest.build.to.value,
            format!("registry.example.com/multi/{}:1", s.name)
        );
    }
    assert_eq!(ws.services[1].dir, support::fixtures().join("multi/b"));
    assert_eq!(ws.root, support::fixtures().join("multi"));
    assert_eq!(ws.find_service("b"), Ok(1));
    assert_eq!(ws.find_service("multi_c"), Ok(2));
    let err = ws.find_service("multi_d").unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownService);
    assert!(
        err.hint.as_deref().unwrap_or_default().contains("multi_a"),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let text = SERVICE
        .replace("kind: python", "kind: pyhton")
        .replace("pwd: /app", "pwd: app")
        .replace("    - app.py", "    - /etc/passwd");
    write(&tmp.path().join("service.yml"), &text);
    let err = load(&LoadOptions {
        files: vec!["service.yml".into()],
        cwd: tmp.path().to_path_buf(),
        target_dir: None,
    })
    .unwrap_err();
    let kinds: Vec<ErrorKind> = err.0.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::BuildKind,
            ErrorKind::InvalidValue,
            ErrorKind::AbsolutePath
        ],
        "{err}"
    );
    assert!(
        err.0.iter().all(|d| d.file == Path::new("service.yml")),
        "{err}"
    );
}

#[test]
fn a_shared_manifest_must_render_the_same_for_every_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let templated = SERVICE.replace("  pwd: /app", "  pwd: /{{APP_DIR}}");
    write(&root.join("svc/service.yml"), &templated);
    write(&root.join("svc/app.py"), "print(1)\n");
    let mesh = "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: cas\n    cas_url: cas.example.com\npolicy:\n  namespace: NS\nenv:\n  - name: APP_DIR\n    value: VALUE\nservices:\n  - name: s\n    image: registry.example.com/t/linked:1\n    manifest: svc/service.yml\n";
    let mesh = |ns: &str, dir: &str| mesh.replace("NS", ns).replace("VALUE", dir);
    write(&root.join("one.yml"), &mesh("one", "one"));
    write(&root.join("two.yml"), &mesh("two", "two"));
    write(
        &root.join("again.yml"),
        &mesh("again", "one").replace("kind: mesh", "kind: mesh\nversion: \"2.0.0\""),
    );
    let opts = |files: &[&str]| LoadOptions {
        files: files.iter().map(PathBuf::from).collect(),
        cwd: root.to_path_buf(),
        target_dir: None,
    };
    let ws = load(&opts(&["one.yml", "again.yml"])).unwrap();
    assert_eq!(
        ws.services[0].manifest.build.pwd.value, "/one",
        "rendered with the mesh's variables"
    );
    let err = load(&opts(&["one.yml", "two.yml"])).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].kind, ErrorKind::Template);
    assert_eq!(err.0[0].file, Path::new("svc/service.yml"));
    assert!(err.0[0].message.contains("one.yml and two.yml"), "{err}");
}
