//! Unit tests of the manifest parser: error mapping and byte-exact values.

use super::*;
use crate::manifest::StringOrList;

fn file() -> &'static Path {
    Path::new("m.yml")
}

const SERVICE: &str = "apiVersion: scone/5.8
kind: genImage
secrets:
  local:
    - name: cert
      kind: ascii
      value: |
        -----BEGIN-----
        abc
        -----END-----
build:
  name: svc
  kind: python
  to: reg/svc:1
  pwd: /app
  command: python3 x.py
";

#[test]
fn block_scalar_values_are_byte_exact() {
    let m = parse_service(SERVICE, file(), &Variables::new()).unwrap();
    let value = m.secrets.local[0].value.as_ref().unwrap();
    assert_eq!(
        value.value.expose(),
        Some("-----BEGIN-----\nabc\n-----END-----\n")
    );
    assert_eq!(
        m.build.name.pos,
        Pos {
            line: 12,
            column: 9
        }
    );
}

#[test]
fn unknown_field_suggests() {
    let text = SERVICE.replace("  pwd: /app", "  pdw: /app");
    let d = parse_service(&text, file(), &Variables::new()).unwrap_err();
    assert_eq!(d.kind, ErrorKind::UnknownField, "{d}");
    assert_eq!(d.pos.line, 15, "{d}");
    assert_eq!(d.hint.as_deref(), Some("did you mean `pwd`?"));
}

#[test]
fn missing_field_is_reported() {
    let text = SERVICE.replace("  pwd: /app\n", "");
    let d = parse_service(&text, file(), &Variables::new()).unwrap_err();
    assert_eq!(d.kind, ErrorKind::MissingField, "{d}");
    assert!(d.message.contains("`pwd`"), "{d}");
    // Pointed at `build:`, the mapping that lacks it.
    assert_eq!(
        d.pos,
        Pos {
            line: 11,
            column: 1
        },
        "{d}"
    );
}

#[test]
fn wrong_type_is_reported() {
    let text = SERVICE.replace("  command: python3 x.py", "  command: [a, b]");
    let d = parse_service(&text, file(), &Variables::new()).unwrap_err();
    assert_eq!(d.kind, ErrorKind::Type, "{d}");
    assert_eq!(d.pos.line, 16, "{d}");
}

#[test]
fn a_number_past_its_bound_is_named_with_the_bound() {
    let service = |size: &str| {
        SERVICE.replace(
            "      value: |\n        -----BEGIN-----\n        abc\n        -----END-----\n",
            &format!("      size: {size}\n"),
        )
    };
    assert!(parse_service(&service("10"), file(), &Variables::new()).is_ok());
    // A secret's size: its real bounds (1 to 65536) and how to write one
    // (probe 53b, confusing message 5), not the bounds of the type it is read as.
    for size in ["99999999999", "-1", "ten"] {
        let d = parse_service(&service(size), file(), &Variables::new()).unwrap_err();
        assert_eq!(d.kind, ErrorKind::Type, "{d}");
        assert_eq!(d.pos.line, 7, "{d}");
        assert_eq!(
            d.message, "this value is not a whole number from 1 to 65536",
            "{size}: {d}"
        );
        assert!(
            d.hint.as_deref().is_some_and(|h| h.contains("`size: 32`")),
            "{size}: {d}"
        );
    }
    let flow = SERVICE.replace(
        "      value: |\n        -----BEGIN-----\n        abc\n        -----END-----\n",
        "      size: 8\n    - { name: t, kind: ascii, size: ten }\n",
    );
    let d = parse_service(&flow, file(), &Variables::new()).unwrap_err();
    assert_eq!(d.pos.line, 8, "{d}");
    assert_eq!(
        d.message, "this value is not a whole number from 1 to 65536",
        "{d}"
    );
}

#[test]
fn bad_yaml_never_panics() {
    for text in [
        "a: [1, 2",
        "a: b: c",
        "\t- x",
        "a:\n  - b\n c: d",
        "{{{{",
        "- - - :",
    ] {
        let d = parse_header(text, file()).unwrap_err();
        assert!(
            matches!(d.kind, ErrorKind::Yaml | ErrorKind::Type),
            "{text}: {d}"
        );
    }
}

#[test]
fn string_or_list_accepts_both() {
    let mesh = "apiVersion: scone/5.8
kind: mesh
policy:
  namespace: ns
  tolerate: debug-mode, hyperthreading
  ignore_advisories: [INTEL-SA-00161, INTEL-SA-00220]
";
    let (m, vars) = parse_mesh(mesh, file()).unwrap();
    let tol = m.policy.tolerate.unwrap().items();
    assert_eq!(tol, ["debug-mode", "hyperthreading"]);
    let adv = m.policy.ignore_advisories.unwrap();
    assert!(matches!(adv, StringOrList::Many(_)));
    assert_eq!(adv.items(), ["INTEL-SA-00161", "INTEL-SA-00220"]);
    assert_eq!(vars.get("namespace").map(String::as_str), Some("ns"));
}

#[test]
fn mesh_renders_comment_variables() {
    let mesh = "apiVersion: scone/5.8
kind: mesh
cas:
  - name: cas
    cas_url: edge.example  # exported as {{cas_cas_cas_url}}
policy:
  namespace: {{cas_cas_name}}x
";
    let d = parse_mesh(mesh, file());
    // `{{cas_cas_name}}x` as a plain scalar is not YAML before rendering.
    assert!(d.is_err());
    let ok = mesh.replace("{{cas_cas_name}}x", "\"{{cas_cas_name}}x\"");
    let (m, _) = parse_mesh(&ok, file()).unwrap();
    assert_eq!(m.policy.namespace.value, "casx");
}

#[test]
fn a_template_is_blamed_only_near_the_yaml_error() {
    // An unquoted template is no YAML, or no JSON value (a flow mapping as a
    // key), on its own line: the hint says so, either way.
    for (value, kind) in [
        ("{{cas_cas_name}}x", ErrorKind::Type),
        ("a {{x}}: b", ErrorKind::Yaml),
    ] {
        let broken = format!("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: {value}\n");
        let d = parse_mesh(&broken, file()).unwrap_err();
        assert_eq!((d.kind, d.pos.line), (kind, 4), "{value}: {d:?}");
        assert!(
            d.hint
                .as_deref()
                .is_some_and(|h| h.contains("quote values")),
            "{value}: {d:?}"
        );
    }
    // A template in a comment far away is no reason: a badly indented
    // service is an indentation error, and gets no word on templates.
    let indented = "apiVersion: scone/5.8
kind: mesh
cas:
  - name: cas
    cas_url: edge.example  # exported as {{cas_cas_cas_url}}
policy:
  namespace: ns
services:
 - name: a
    image: registry.example/a:1
";
    let d = parse_mesh(indented, file()).unwrap_err();
    assert_eq!(d.kind, ErrorKind::Yaml);
    assert_eq!(d.pos.line, 10, "{d:?}");
    assert!(
        !d.hint
            .as_deref()
            .is_some_and(|h| h.contains("quote values")),
        "{d:?}"
    );
}

#[test]
fn a_folder_given_as_a_manifest_is_named_with_the_meshfile_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = read_text(dir.path()).unwrap_err();
    assert_eq!(d.kind, ErrorKind::SpecialFile);
    assert_eq!(d.file, dir.path());
    let hint = d.hint.clone().unwrap_or_default();
    assert!(hint.contains("not a folder"), "{hint}");
    assert!(!hint.contains("FIFO"), "{hint}");
    std::fs::write(dir.path().join("Meshfile"), "kind: mesh\n").unwrap();
    let d = read_text(dir.path()).unwrap_err();
    let hint = d.hint.unwrap_or_default();
    assert!(
        hint.contains("the Meshfile in this folder is `Meshfile`"),
        "{hint}"
    );
}
