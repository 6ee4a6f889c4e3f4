//! Manifest-aware help, through the binary: `scone apply -f FILE --help`
//! shows the options and `scone.toml` keys FILE's kind takes (a service
//! manifest alone has no CAS or chart options; a Meshfile's help lists its
//! services and their global variables with defaults), and `scone build
//! --print-defaults -f FILE` prints the manifests with every default filled in.

mod support;

use std::path::Path;
use support::Sandbox;

fn help(sb: &Sandbox, dir: &Path, file: &str) -> String {
    let out = sb
        .scone(dir)
        .args(["apply", "-f", file, "--help"])
        .output()
        .expect("scone runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn apply_help_depends_on_the_manifest_kind() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let service = help(&sb, &dir, "service.yml");
    let mesh = help(&sb, &dir, "mesh.yml");
    assert_ne!(service, mesh);
    for option in [
        "--cas ",
        "--cas-ca",
        "--take-over",
        "--helm-template",
        "--output",
    ] {
        assert!(
            !service.contains(option),
            "a service manifest alone has no {option}:\n{service}"
        );
        assert!(mesh.contains(option), "a Meshfile takes {option}:\n{mesh}");
    }
    for both in ["--push", "--mode", "--remote-cache", "--file"] {
        assert!(service.contains(both), "{both}:\n{service}");
        assert!(mesh.contains(both), "{both}:\n{mesh}");
    }
    assert!(service.contains("a service manifest"), "{service}");
    assert!(
        service.contains("[base] python"),
        "the scone.toml key of its kind:\n{service}"
    );
    // The Meshfile's services and their global variables, with defaults.
    assert!(mesh.contains("python_app"), "{mesh}");
    assert!(
        mesh.lines()
            .any(|l| l.contains("API_USER = \"myself\"") && l.contains("default: none")),
        "{mesh}"
    );
    assert!(mesh.contains("[signing] mode"), "{mesh}");
}

/// The names serde lists after "expected" when `text` has an unknown key in
/// `scone.toml` (`unknown field `x`, expected one of `a`, `b``); empty when
/// `text` is no struct with unknown fields refused.
fn expected_fields(text: &str) -> Vec<String> {
    let Err(err) = toml::from_str::<scone::workspace::Config>(text) else {
        return Vec::new();
    };
    let message = err.to_string();
    let Some((_, list)) = message.split_once("expected") else {
        return Vec::new();
    };
    if !message.contains("unknown field") {
        return Vec::new();
    }
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn apply_help_lists_every_scone_toml_key() {
    let keys = expected_fields("no-such-key = 1\n");
    assert!(keys.len() >= 5, "scone.toml's keys from serde: {keys:?}");
    let mut wanted = Vec::new();
    for key in keys {
        let fields = expected_fields(&format!("[{key}]\nno-such-key = 1\n"));
        if fields.is_empty() {
            // A plain key, or a table of any keys (`[base]`).
            wanted.push(key);
        } else {
            wanted.extend(fields.iter().map(|f| format!("[{key}] {f}")));
        }
    }
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    for file in ["service.yml", "mesh.yml"] {
        let text = help(&sb, &dir, file);
        let section = text
            .split_once("scone.toml keys that apply:")
            .map(|(_, keys)| keys)
            .unwrap_or_else(|| panic!("{file}: no scone.toml keys:\n{text}"));
        for key in &wanted {
            assert!(
                section.contains(key.as_str()),
                "{file}: the help does not list scone.toml's `{key}`:\n{section}"
            );
        }
    }
}

#[test]
fn help_without_a_file_is_clap_s() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let out = sb
        .scone(&dir)
        .args(["apply", "--help"])
        .output()
        .expect("scone runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--cas-ca"), "{text}");
    assert!(!text.contains("scone.toml keys that apply"), "{text}");
}

#[test]
fn print_defaults_fills_in_every_default() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let out = sb
        .scone(&dir)
        .args(["build", "--print-defaults", "-f", "mesh.yml"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).expect("each document is YAML"))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "the mesh, then its service manifest:\n{text}"
    );
    let (mesh, service) = (&docs[0], &docs[1]);
    assert_eq!(mesh["kind"], "mesh");
    assert_eq!(mesh["version"], "0.1.0", "the chart version's default");
    assert_eq!(
        mesh["cas"][0]["alias"],
        serde_json::json!(["image", "security", "access", "attestation"]),
        "the default alias"
    );
    assert_eq!(mesh["services"][0]["manifest"], "service.yml");
    assert_eq!(mesh["env"][0]["service"], "python_app");
    assert_eq!(mesh["env"][0]["env"][0]["name"], "API_USER");
    assert_eq!(mesh["env"][0]["env"][0]["value"], "myself");
    let build = &service["build"];
    assert_eq!(
        build["from"],
        format!("dir:{}", support::python_rootfs().display()),
        "the default python base (SCONE_PYTHON_ROOTFS)"
    );
    assert_eq!(build["binary"], "python3", "the entry binary");
    assert_eq!(
        build["signature"]["key"],
        support::sig1_key().display().to_string()
    );
    assert!(!target_exists(&dir), "nothing is built");
}

fn target_exists(dir: &Path) -> bool {
    dir.join("target/images").exists()
}

/// `-j 0` would run no step: refused as a usage error, as cargo does.
#[test]
fn zero_jobs_is_a_usage_error() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let out = sb
        .scone(&dir)
        .args(["build", "-j", "0"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("0 would run no step"), "{stderr}");
    assert!(!dir.join("target").exists(), "it built: {stderr}");
}

/// `apply --print-defaults` and `verify --print-defaults` print as `build
/// --print-defaults` does and do nothing else: no step runs, nothing is
/// uploaded to CAS (probe 53b: apply built and uploaded, and printed
/// nothing). With `verify --image` there is no manifest to print: a usage
/// error.
#[test]
fn print_defaults_builds_and_applies_nothing_with_apply_and_verify() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("app");
    let expected = sb
        .scone(&dir)
        .args(["build", "--print-defaults", "-f", "mesh.yml"])
        .output()
        .expect("scone runs");
    assert_eq!(expected.status.code(), Some(0));
    for command in ["apply", "verify"] {
        let out = sb
            .scone(&dir)
            .args([command, "--print-defaults", "-f", "mesh.yml"])
            .output()
            .expect("scone runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{command}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&expected.stdout),
            "{command} prints what build does"
        );
        assert!(!stderr.contains("Built"), "{command} built: {stderr}");
        assert!(!dir.join("target").exists(), "{command} wrote target/");
        assert!(
            !dir.join("scone.lock").exists(),
            "{command} wrote scone.lock"
        );
        assert!(
            !sb.path().join("cas").exists(),
            "{command} touched the local CAS"
        );
    }
    let out = sb
        .scone(&dir)
        .args(["verify", "--print-defaults", "--image", "oci:nowhere"])
        .output()
        .expect("scone runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--print-defaults"), "{stderr}");
}
