//! Unit tests of the Meshfile `env` forms, precedence and cross-service rules.

use super::*;
use crate::manifest::parse::{parse_mesh, parse_service};
use crate::manifest::template::Variables;
use std::path::PathBuf;

const MESH: &str = "apiVersion: scone/5.8
kind: mesh
policy:
  namespace: ns
env:
  - key: A
    value: seed
  - service: global
    env:
      - name: B
        value: global
      - name: C
        value: global
  - service: helm
    env:
      - name: C
        value: helm
      - name: D
        value: helm
  - service: svc
    env:
      - name: D
        value: own
services:
  - name: svc
    image: reg/svc:1
";

const SERVICE: &str = "apiVersion: scone/5.8
kind: genImage
environment:
  local:
    - name: L
      value: fixed
  global:
    - name: A
    - name: B
    - name: C
    - name: D
    - name: E
      value: default
build:
  name: svc
  kind: python
  to: reg/svc:1
  pwd: /app
  command: python3 x.py
";

fn service(text: &str) -> ServiceManifest {
    parse_service(text, Path::new("s.yml"), &Variables::new()).unwrap()
}

#[test]
fn both_forms_and_precedence() {
    let (mesh, _) = parse_mesh(MESH, Path::new("mesh.yml")).unwrap();
    let mut out = Vec::new();
    let env = mesh_env(&mesh, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(env.per_service_form);
    let m = service(SERVICE);
    let member = Member {
        name: "svc",
        manifest: &m,
    };
    let got = resolve_environment(&mesh, &env, &member, &mut out);
    assert!(out.is_empty(), "{out:?}");
    let want: Vec<(String, String)> = [
        ("L", "fixed"),
        ("A", "seed"),
        ("B", "global"),
        ("C", "helm"),
        ("D", "own"),
        ("E", "default"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    let mut warnings = Vec::new();
    check_env(&mesh, &env, &[member], &mut out, &mut warnings);
    assert!(
        out.is_empty() && warnings.is_empty(),
        "{out:?} {warnings:?}"
    );
}

#[test]
fn undefined_global_points_at_the_manifest() {
    let mesh_text = MESH.replace("  - key: A\n    value: seed\n", "");
    let (mesh, _) = parse_mesh(&mesh_text, Path::new("mesh.yml")).unwrap();
    let mut out = Vec::new();
    let env = mesh_env(&mesh, &mut out);
    let m = service(SERVICE);
    resolve_environment(
        &mesh,
        &env,
        &Member {
            name: "svc",
            manifest: &m,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind, ErrorKind::UndefinedGlobal);
    assert_eq!(out[0].file, Path::new("s.yml"));
    assert_eq!(
        out[0].pos,
        Pos {
            line: 8,
            column: 13
        }
    );
    let hint = out[0].hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("- service: global") && hint.contains("- name: A"),
        "{hint}"
    );
}

/// The errors and warnings of `mesh_text`'s env, with [`SERVICE`] as `svc`.
fn checked_with_svc(mesh_text: &str) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    checked_with(mesh_text, SERVICE)
}

/// The errors and warnings of `mesh_text`'s env, with `service_text` as `svc`.
fn checked_with(mesh_text: &str, service_text: &str) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mesh, _) = parse_mesh(mesh_text, Path::new("mesh.yml")).unwrap();
    let mut out = Vec::new();
    let env = mesh_env(&mesh, &mut out);
    let m = service(service_text);
    let mut warnings = Vec::new();
    check_env(
        &mesh,
        &env,
        &[Member {
            name: "svc",
            manifest: &m,
        }],
        &mut out,
        &mut warnings,
    );
    (out, warnings)
}

#[test]
fn overrides_unknown_targets_and_stray_values() {
    let mesh_text = MESH
        .replace("  - service: svc\n", "  - service: svx\n")
        .replace(
            "  - key: A\n    value: seed\n",
            "  - key: L\n    value: nope\n  - key: Z\n    value: z\n  - key: A\n    value: seed\n",
        );
    let (out, warnings) = checked_with_svc(&mesh_text);
    let kinds: Vec<ErrorKind> = out.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [ErrorKind::UnknownService, ErrorKind::LocalOverride],
        "{out:?}"
    );
    assert_eq!(out[0].hint.as_deref(), Some("did you mean `svc`?"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("`Z`"), "{warnings:?}");
}

#[test]
fn a_misspelt_mesh_env_is_told_the_global_it_was_meant_to_be() {
    // `BB` for the service's global `B`: set for every service, and for one.
    let mesh_text = MESH
        .replace(
            "  - key: A\n    value: seed\n",
            "  - key: BB\n    value: x\n  - key: SOMETHING_ELSE\n    value: z\n",
        )
        .replace(
            "      - name: D\n        value: own\n",
            "      - name: D\n        value: own\n      - name: EE\n        value: y\n",
        );
    let (out, warnings) = checked_with_svc(&mesh_text);
    assert!(out.is_empty(), "a warning, no error: {out:?}");
    let hints: Vec<(&str, Option<&str>)> = warnings
        .iter()
        .map(|w| (w.message.as_str(), w.hint.as_deref()))
        .collect();
    assert!(
        hints.contains(&(
            "mesh sets `BB`, which no service declares global",
            Some("did you mean `B`? (a service declares it global)")
        )),
        "{hints:?}"
    );
    assert!(
        hints.contains(&(
            "mesh sets `EE` for service `svc`, which does not declare it global",
            Some("did you mean `E`? (a service declares it global)")
        )),
        "{hints:?}"
    );
    assert!(
        hints.contains(&(
            "mesh sets `SOMETHING_ELSE`, which no service declares global",
            Some("nothing reads it: declare `SOMETHING_ELSE` in a service's `environment.global`, or remove this entry")
        )),
        "{hints:?}"
    );
}

/// A `service: helm` value no service declares global is read by nobody:
/// warned of like a `service: global` one (probe 53b #3), not dropped silently.
#[test]
fn an_unused_helm_value_is_warned_like_a_global_one() {
    let mesh_text = MESH.replace(
        "      - name: D\n        value: helm\n",
        "      - name: D\n        value: helm\n      - name: LOG_LEVL\n        value: x\n      - name: L\n        value: y\n",
    );
    let (out, warnings) = checked_with(
        &mesh_text,
        &SERVICE.replace(
            "    - name: E\n",
            "    - name: LOG_LEVEL\n      value: info\n    - name: E\n",
        ),
    );
    assert!(out.is_empty(), "a warning, no error: {out:?}");
    let got: Vec<(ErrorKind, &str, Option<&str>, u32)> = warnings
        .iter()
        .map(|w| (w.kind, w.message.as_str(), w.hint.as_deref(), w.pos.line))
        .collect();
    assert_eq!(
        got,
        [
            (
                ErrorKind::UnusedEnv,
                "mesh sets `L` under `service: helm`, which no service declares global (service `svc` declares it local: the mesh cannot set it)",
                Some("remove this entry, or move `L` to `environment.global` in s.yml"),
                23
            ),
            (
                ErrorKind::UnusedEnv,
                "mesh sets `LOG_LEVL` under `service: helm`, which no service declares global",
                Some("did you mean `LOG_LEVEL`? (a service declares it global)"),
                21
            ),
        ],
        "{warnings:#?}"
    );
}

#[test]
fn malformed_entries() {
    let mesh_text = "apiVersion: scone/5.8
kind: mesh
policy:
  namespace: ns
env:
  - key: A
    name: A
    value: x
  - service: global
  - name: B
  - name: C
    value: 1
  - name: C
    value: 2
";
    let (mesh, _) = parse_mesh(mesh_text, Path::new("mesh.yml")).unwrap();
    let mut out = Vec::new();
    mesh_env(&mesh, &mut out);
    let got: Vec<(ErrorKind, u32)> = out.iter().map(|d| (d.kind, d.pos.line)).collect();
    assert_eq!(
        got,
        [
            (ErrorKind::InvalidValue, 7),
            (ErrorKind::MissingField, 9),
            (ErrorKind::MissingField, 10),
            (ErrorKind::DuplicateEnv, 13)
        ],
        "{out:#?}"
    );
}

#[test]
fn imports_need_an_exporter() {
    let (mesh, _) = parse_mesh(MESH, Path::new("mesh.yml")).unwrap();
    let exporter = service(&SERVICE.replace(
        "build:",
        "secrets:\n  global:\n    - { name: token, kind: ascii, size: 8 }\nbuild:",
    ));
    let mut importer = service(
        &SERVICE
            .replace("build:", "secrets:\n  import: [tokn, other]\nbuild:")
            .replace("name: svc", "name: imp"),
    );
    importer.path = PathBuf::from("i.yml");
    let mut out = Vec::new();
    check_imports(
        &mesh,
        &[
            Member {
                name: "svc",
                manifest: &exporter,
            },
            Member {
                name: "imp",
                manifest: &importer,
            },
        ],
        &mut out,
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|d| d.kind == ErrorKind::UnexportedImport));
    assert_eq!(out[0].hint.as_deref(), Some("did you mean `token`?"));
}
