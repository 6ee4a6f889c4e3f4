//! Unit tests of single-manifest validation.

use super::*;
use crate::manifest::parse::parse_service;
use crate::manifest::template::Variables;

#[test]
fn api_versions() {
    let mut out = Vec::new();
    for ok in ["scone/5.8", "scone/5.10", "scone/5.0"] {
        check_api_version(
            &Located::new(ok.into(), Pos::default()),
            Path::new("m"),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:?}");
    for bad in ["scone/4.2", "scone/5", "scone/5.x", "v1", "scone/5.8.1"] {
        check_api_version(
            &Located::new(bad.into(), Pos::default()),
            Path::new("m"),
            &mut out,
        );
    }
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|d| d.kind == ErrorKind::ApiVersion));
}

const BAD: &str = "apiVersion: scone/5.8
kind: genservice
environment:
  local:
    - name: PASSWORD
      value: \"$$SCONE::passwrd$$\"
    - name: PASSWORD
      value: x
  global:
    - name: 1BAD
secrets:
  global:
    - name: password
      kind: ascii
    - name: key
      kind: binary
      size: 0
  import: [key]
build:
  name: svc
  kind: pyton
  to: reg/svc
  pwd: app
  command: \" \"
";

#[test]
fn collects_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yml");
    let m = parse_service(BAD, &file, &Variables::new()).unwrap();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    check_service(&m, dir.path(), &mut out, &mut warnings);
    let got: Vec<(ErrorKind, u32)> = out.iter().map(|d| (d.kind, d.pos.line)).collect();
    assert_eq!(
        got,
        vec![
            (ErrorKind::BuildKind, 21),
            (ErrorKind::InvalidValue, 23),
            (ErrorKind::InvalidValue, 24),
            (ErrorKind::DuplicateEnv, 7),
            (ErrorKind::InvalidValue, 10),
            (ErrorKind::InvalidValue, 13),
            (ErrorKind::InvalidValue, 17),
            (ErrorKind::DuplicateSecret, 18),
            (ErrorKind::UndeclaredSecret, 6),
        ],
        "{out:#?}"
    );
    assert_eq!(out[0].hint.as_deref(), Some("did you mean `python`?"));
    assert_eq!(out[8].hint.as_deref(), Some("did you mean `password`?"));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .message
            .contains("`kind: genservice` is deprecated"),
        "{warnings:?}"
    );
}

/// A copy path leaving the folder (`../x.py`) is one error, `path-escape`
/// (probe 53b, confusing message 7), not also `invalid-value` for its `..`;
/// a `..` that stays inside (`a/../x.py`) is `invalid-value` alone.
#[test]
fn a_copy_path_leaving_the_folder_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yml");
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("x.py"), "").unwrap();
    for (copy, kind) in [
        ("../x.py", ErrorKind::PathEscape),
        ("a/../../x.py", ErrorKind::PathEscape),
        ("a/../x.py", ErrorKind::InvalidValue),
    ] {
        let text = format!("apiVersion: scone/5.8\nkind: genImage\nbuild:\n  name: a\n  kind: binary\n  from: scratch\n  to: r/a:1\n  pwd: /app\n  command: app\n  copy: [\"{copy}\"]\n");
        let m = parse_service(&text, &file, &Variables::new()).unwrap();
        let mut out = Vec::new();
        check_service(&m, dir.path(), &mut out, &mut Vec::new());
        let at: Vec<_> = out.iter().filter(|d| d.pos.line == 10).collect();
        assert_eq!(at.len(), 1, "{copy}: {out:#?}");
        assert_eq!(at[0].kind, kind, "{copy}: {out:#?}");
    }
}

#[test]
fn the_salt_secret_name_is_taken() {
    let text = "apiVersion: scone/5.8\nkind: genImage\nsecrets:\n  local:\n    - name: scone_session_salt\n      kind: ascii\n      size: 43\nbuild:\n  name: a\n  kind: binary\n  from: scratch\n  to: r/a:1\n  pwd: /app\n  command: app\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yml");
    let m = parse_service(text, &file, &Variables::new()).unwrap();
    let mut out = Vec::new();
    check_service(&m, dir.path(), &mut out, &mut Vec::new());
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].kind, out[0].pos.line, out[0].pos.column),
        (ErrorKind::InvalidValue, 5, 13)
    );
    assert!(
        out[0].message.contains("taken by scone"),
        "{}",
        out[0].message
    );
}

#[test]
fn a_bad_name_is_given_a_hint_made_of_itself() {
    let cases = [
        ("my app!", "my_app_"),
        ("  -ns/prod", "ns_prod"),
        ("café", "caf_"),
        ("...", "name"),
    ];
    for (given, hint) in cases {
        assert!(!is_sane_name(given), "{given}");
        assert_eq!(sane_name_like(given), hint, "{given}");
        assert!(is_sane_name(hint), "{hint}");
    }
    let name = Located {
        value: "my ns".to_string(),
        pos: Pos::default(),
    };
    let mut out = Vec::new();
    check_name("policy.namespace", &name, Path::new("mesh.yml"), &mut out);
    let shown = out[0].to_string();
    assert!(shown.contains("policy.namespace `my ns`"), "{shown}");
    assert_eq!(out[0].hint.as_deref(), Some("e.g. `my_ns`"), "{shown}");
}

#[test]
fn a_name_of_allowed_characters_that_starts_wrong_is_said_to() {
    for (given, hint) in [("..", "name"), (".hidden", "hidden"), ("-rf", "rf")] {
        let name = Located {
            value: given.to_string(),
            pos: Pos::default(),
        };
        let mut out = Vec::new();
        check_name("build.name", &name, Path::new("service.yml"), &mut out);
        assert_eq!(out.len(), 1, "{given}");
        let shown = out[0].to_string();
        assert!(
            shown.contains(&format!(
                "build.name `{given}` does not start with a letter or digit"
            )),
            "{shown}"
        );
        assert_eq!(
            out[0].hint.as_deref(),
            Some(format!("e.g. `{hint}`").as_str())
        );
    }
}
