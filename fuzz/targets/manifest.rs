//! Target (a): the manifest parser, validator and planner. The input is either a
//! Meshfile and a service manifest as text (byte-level: AFL++ mutates the
//! fixtures in `fixtures/fuzz/manifest/`, mesh and service separated by a NUL),
//! or manifest-shaped YAML trees drawn with `arbitrary` (first byte odd). Both
//! are written to a scratch folder, loaded as `scone check` loads them, and a
//! workspace that loads is planned as `scone build --offline` plans it.

use arbitrary::{Arbitrary, Result, Unstructured};
use std::path::PathBuf;

use super::yaml::{document, node, Node, Style, SCALARS};
use scone::oci::tar::Compression;
use scone::plan::{plan, Settings};
use scone::workspace::{load, LoadOptions};

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mesh, service) = if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        match text.split_once('\0') {
            Some((mesh, service)) => (mesh.to_string(), service.to_string()),
            None => (text.to_string(), String::new()),
        }
    } else {
        let mut u = Unstructured::new(rest);
        let (Ok(mesh), Ok(service)) = (mesh_tree(&mut u), service_tree(&mut u)) else {
            return;
        };
        (document(&mesh), document(&service))
    };
    check_and_plan(&mesh, &service);
}

/// Loads the two files as `scone check -f` does (the Meshfile, then the service
/// manifest alone) and plans what loads.
pub fn check_and_plan(mesh: &str, service: &str) {
    let dir = super::scratch();
    let root = dir.path();
    for (name, text) in [
        ("mesh.yml", mesh),
        ("service.yml", service),
        ("print_env.py", "print(1)\n"),
        ("app.py", "print(2)\n"),
    ] {
        std::fs::write(root.join(name), text).expect("scratch file");
    }
    for file in ["mesh.yml", "service.yml"] {
        let options = LoadOptions {
            files: vec![PathBuf::from(file)],
            cwd: root.to_path_buf(),
            target_dir: None,
        };
        let Ok(workspace) = load(&options) else {
            continue;
        };
        let settings = Settings {
            target_dir: root.join("target"),
            source_date_epoch: 0,
            compression: Compression::Gzip,
            debug: true,
            signing_key: root.join("no-key.pem"),
            provenance_key: root.join("no-provenance-key.pem"),
            cache_dir: root.join("cache"),
            offline: true,
            insecure_registries: Vec::new(),
            docker_host: None,
            pinned_bases: Default::default(),
            known_sessions: Default::default(),
            only: Vec::new(),
            helm_templates: None,
            output_yaml: false,
            apply: None,
        };
        let _ = plan(&workspace, &settings);
    }
}

fn s(text: &str) -> Node {
    Node::Scalar(text.to_string(), Style::Plain)
}

/// A scalar from the pools, or (rarely) any node.
fn value(u: &mut Unstructured<'_>, likely: &[&str]) -> Result<Node> {
    Ok(match u.int_in_range(0..=15)? {
        0..=9 if !likely.is_empty() => s(u.choose(likely)?),
        10..=13 => Node::Scalar((*u.choose(SCALARS)?).to_string(), Style::arbitrary(u)?),
        _ => node(u, 2)?,
    })
}

/// A mapping whose fields are each present with probability 7/8, plus (rarely)
/// an unknown one.
fn fields(u: &mut Unstructured<'_>, fields: Vec<(&str, Node)>) -> Result<Node> {
    let mut out = Vec::new();
    for (key, value) in fields {
        if u.ratio(7, 8)? {
            out.push((key.to_string(), value));
        }
    }
    if u.ratio(1, 16)? {
        out.push(("unexpected".to_string(), node(u, 1)?));
    }
    Ok(Node::Map(out, u.ratio(1, 16)?))
}

fn list(
    u: &mut Unstructured<'_>,
    item: impl Fn(&mut Unstructured<'_>) -> Result<Node>,
) -> Result<Node> {
    let n = u.int_in_range(0..=4)?;
    let items = (0..n).map(|_| item(u)).collect::<Result<_>>()?;
    Ok(Node::Seq(items, u.ratio(1, 8)?))
}

const NAMES: &[&str] = &[
    "API_USER",
    "API_PASSWORD",
    "password",
    "token",
    "python_app",
    "svc",
    "1BAD",
    "a.b",
    "",
];
const VALUES: &[&str] = &[
    "myself",
    "$$SCONE::password",
    "$$SCONE::token$$",
    "{{ API_USER }}",
    "x",
    "",
];

fn env_var(u: &mut Unstructured<'_>) -> Result<Node> {
    let (name, value) = (value(u, NAMES)?, value(u, VALUES)?);
    fields(u, vec![("name", name), ("value", value)])
}

fn secret(u: &mut Unstructured<'_>) -> Result<Node> {
    let fields_of = vec![
        ("name", value(u, NAMES)?),
        ("kind", value(u, &["ascii", "binary", "x509", ""])?),
        (
            "size",
            value(u, &["10", "0", "65536", "65537", "4294967295", "-1", "1e3"])?,
        ),
        ("value", value(u, &["fixed", "line one\nline two\n", ""])?),
    ];
    fields(u, fields_of)
}

/// A service manifest shaped like `fixtures/hello-world/service.yml`.
pub fn service_tree(u: &mut Unstructured<'_>) -> Result<Node> {
    let environment = {
        let (local, global) = (list(u, env_var)?, list(u, env_var)?);
        fields(u, vec![("local", local), ("global", global)])?
    };
    let secrets = {
        let (global, local, import) = (
            list(u, secret)?,
            list(u, secret)?,
            list(u, |u| value(u, NAMES))?,
        );
        fields(
            u,
            vec![("global", global), ("local", local), ("import", import)],
        )?
    };
    let build = {
        let items = vec![
            ("name", value(u, &["python_hello_user", "svc", "", "a/b"])?),
            ("kind", value(u, &["python", "binary", "java", "pyton"])?),
            (
                "to",
                value(
                    u,
                    &[
                        "registry.example.com/a/python_hello_user:latest",
                        "127.0.0.1:5000/x",
                        "UPPER/x",
                        "",
                    ],
                )?,
            ),
            ("pwd", value(u, &["/python", "app", "/"])?),
            (
                "command",
                value(u, &["python3 print_env.py", "", "sh -c 'a b'"])?,
            ),
            (
                "copy",
                list(u, |u| {
                    value(
                        u,
                        &["print_env.py", "app.py", "/etc/passwd", "../x", "missing"],
                    )
                })?,
            ),
            (
                "from",
                value(u, &["scratch", "dir:.", "oci:base:latest", "dir:"])?,
            ),
        ];
        fields(u, items)?
    };
    let top = vec![
        (
            "apiVersion",
            value(u, &["scone/5.8", "scone/5.10", "scone/4.2"])?,
        ),
        ("kind", value(u, &["genImage", "genservice", "mesh"])?),
        ("environment", environment),
        ("secrets", secrets),
        ("build", build),
    ];
    fields(u, top)
}

/// A Meshfile shaped like `fixtures/hello-world/mesh.yml`.
pub fn mesh_tree(u: &mut Unstructured<'_>) -> Result<Node> {
    let cas = list(u, |u| {
        let items = vec![
            ("name", value(u, &["cas", ""])?),
            (
                "cas_url",
                value(u, &["edge.scone-cas.cf", "127.0.0.1:8081", "http://x", ""])?,
            ),
            ("tolerance", value(u, &["--only_for_testing-debug"])?),
        ];
        fields(u, items)
    })?;
    let policy = {
        let items = vec![
            (
                "namespace",
                value(u, &["myPythonApp", "", ".hidden", "a/b"])?,
            ),
            (
                "tolerate",
                value(u, &["debug-mode, hyperthreading", "[debug-mode]"])?,
            ),
            ("ignore_advisories", value(u, &["INTEL-SA-00219", "*"])?),
        ];
        fields(u, items)?
    };
    let env = list(u, |u| {
        let items = vec![
            ("key", value(u, NAMES)?),
            ("name", value(u, NAMES)?),
            ("value", value(u, VALUES)?),
            ("service", value(u, &["python_app", "nope"])?),
        ];
        fields(u, items)
    })?;
    let services = list(u, |u| {
        let items = vec![
            ("name", value(u, &["python_app", "other", ""])?),
            (
                "image",
                value(
                    u,
                    &[
                        "registry.example.com/a/python_hello_user:latest",
                        "127.0.0.1:5000/x",
                    ],
                )?,
            ),
            (
                "manifest",
                value(u, &["service.yml", "missing.yml", "../x.yml", "mesh.yml"])?,
            ),
        ];
        fields(u, items)
    })?;
    let top = vec![
        ("apiVersion", value(u, &["scone/5.8", "scone/5.10"])?),
        ("kind", value(u, &["mesh", "genImage"])?),
        ("cas", cas),
        ("policy", policy),
        ("env", env),
        ("services", services),
    ];
    fields(u, top)
}
