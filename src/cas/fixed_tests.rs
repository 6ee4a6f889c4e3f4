//! Tests of fixed values: the placeholder in the rendered session, filling it
//! at upload with a salt, refusing what is not filled, redacting for display.

use super::*;
use crate::cas::session::{
    render, session_hash, with_predecessor, SecretDecl, ServiceInput, SessionInput,
};

const VALUE: &str = "hunter2-fixed";
const LINES: &str = "line one: \"quoted\" \\ $$SCONE::x\n  two\n";

fn decl(name: &str, fixed: bool) -> SecretDecl {
    SecretDecl {
        name: name.into(),
        kind: SecretKind::Ascii,
        size: if fixed { None } else { Some(12) },
        fixed,
        export_to: vec!["app".into()],
    }
}

fn template(secrets: Vec<SecretDecl>) -> String {
    render(&SessionInput {
        name: "mesh".into(),
        services: vec![ServiceInput {
            name: "app".into(),
            image_name: "app".into(),
            mrenclaves: vec!["ab".repeat(32)],
            command: "app".into(),
            pwd: "/".into(),
            environment: vec![("DB".into(), "$$SCONE::db".into())],
            fspf_tag: None,
        }],
        secrets,
        ..SessionInput::default()
    })
    .expect("renders")
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value_of(yaml: &str, name: &str) -> Option<String> {
    parse_session(yaml)
        .expect("parses")
        .secrets
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.value)
}

#[test]
fn the_rendered_session_holds_a_placeholder_never_a_value() {
    let yaml = template(vec![decl("db", true), decl("gen", false)]);
    assert_eq!(value_of(&yaml, "db").as_deref(), Some(PLACEHOLDER));
    assert_eq!(value_of(&yaml, "gen"), None);
    let err = check_filled(&parse_session(&yaml).expect("parses")).expect_err("placeholder");
    assert!(err.to_string().contains("scone apply"), "{err}");
}

#[test]
fn fill_puts_values_in_byte_exact_with_a_salt() {
    let yaml = template(vec![
        decl("db", true),
        decl("cert", true),
        decl("gen", false),
    ]);
    let salt = new_salt().expect("rng");
    assert_eq!(salt.len(), 43);
    let filled = fill(&yaml, &values(&[("db", VALUE), ("cert", LINES)]), &salt).expect("fills");
    assert_eq!(value_of(&filled, "db").as_deref(), Some(VALUE));
    assert_eq!(value_of(&filled, "cert").as_deref(), Some(LINES));
    assert_eq!(value_of(&filled, "gen"), None);
    assert_eq!(
        value_of(&filled, SALT_SECRET).as_deref(),
        Some(salt.as_str())
    );
    assert_eq!(salt_of(&filled), Some(salt.clone()));
    assert!(!filled.contains(PLACEHOLDER));
    // The same salt gives the same session: an unchanged one is not uploaded again.
    let again = fill(&yaml, &values(&[("db", VALUE), ("cert", LINES)]), &salt).expect("fills");
    assert_eq!(session_hash(&again), session_hash(&filled));
    // Another salt, another hash: the hash alone does not tell the value.
    let other = fill(
        &yaml,
        &values(&[("db", VALUE), ("cert", LINES)]),
        &new_salt().unwrap(),
    )
    .expect("fills");
    assert_ne!(session_hash(&other), session_hash(&filled));
}

#[test]
fn a_session_without_fixed_values_is_sent_as_rendered() {
    let yaml = template(vec![decl("gen", false)]);
    assert_eq!(
        fill(&yaml, &BTreeMap::new(), "").expect("nothing to fill"),
        yaml
    );
    assert_eq!(salt_of(&yaml), None);
}

#[test]
fn a_placeholder_without_value_or_a_value_without_placeholder_is_refused() {
    let yaml = template(vec![decl("db", true), decl("gen", false)]);
    let salt = new_salt().expect("rng");
    for (given, missing) in [(values(&[]), "db"), (values(&[("gen", VALUE)]), "db")] {
        let err = fill(&yaml, &given, &salt).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains(&format!("`{missing}`")), "{text}");
        assert!(!text.contains(VALUE), "{text}");
    }
    let err = fill(&yaml, &values(&[("db", VALUE), ("other", VALUE)]), &salt)
        .expect_err("a value the policy has no place for");
    assert!(err.to_string().contains("`other`"), "{err}");
    assert!(!err.to_string().contains(VALUE));
    assert!(fill(&yaml, &values(&[("db", VALUE)]), "short").is_err());
}

#[test]
fn the_salt_name_is_taken() {
    let err = render(&SessionInput {
        name: "mesh".into(),
        secrets: vec![decl(SALT_SECRET, false)],
        ..SessionInput::default()
    })
    .expect_err("reserved");
    assert!(err.to_string().contains("taken by scone"), "{err}");
}

#[test]
fn redact_takes_every_value_out() {
    let yaml = template(vec![decl("db", true), decl("gen", false)]);
    let filled = fill(&yaml, &values(&[("db", VALUE)]), &new_salt().unwrap()).expect("fills");
    let filled = with_predecessor(&filled, Some(&"0".repeat(64)));
    let shown = redact(&filled);
    assert!(!shown.contains(VALUE), "{shown}");
    assert!(!shown.contains(&salt_of(&filled).unwrap()), "{shown}");
    assert_eq!(value_of(&shown, "db").as_deref(), Some(PLACEHOLDER));
    assert!(shown.contains("predecessor: "), "the rest is kept");

    // A block scalar, and flow style, as someone may upload through `cas serve`.
    let block = "name: m\nversion: \"0.3\"\nsecrets:\n  - name: a\n    value: |\n      secretLineOne\n      secretLineTwo\n    kind: ascii\n  - kind: ascii\n    value: secretThree\n    name: b\n";
    let shown = redact(block);
    for word in ["secretLine", "secretThree"] {
        assert!(!shown.contains(word), "{shown}");
    }
    assert_eq!(value_of(&shown, "a").as_deref(), Some(PLACEHOLDER));
    assert_eq!(value_of(&shown, "b").as_deref(), Some(PLACEHOLDER));
    let flow = "name: m\nsecrets: [{name: a, kind: ascii, value: secretFour}]\nservices: []\n";
    let shown = redact(flow);
    assert!(!shown.contains("secretFour"), "{shown}");
    assert!(shown.contains("services: []"), "{shown}");
    let broken = "name: m\nsecrets: [{name: a, value: secretFive\n";
    assert!(!redact(broken).contains("secretFive"));
}

#[test]
fn as_rendered_takes_a_filled_session_back_to_the_template() {
    let yaml = template(vec![
        decl("db", true),
        decl("cert", true),
        decl("gen", false),
    ]);
    let salt = new_salt().expect("rng");
    let filled = fill(&yaml, &values(&[("db", VALUE), ("cert", LINES)]), &salt).expect("fills");
    let chained = crate::cas::session::with_predecessor(&filled, Some(&"a".repeat(64)));
    let back = as_rendered(&chained);
    assert_eq!(back, yaml);
    assert!(!back.contains(VALUE) && !back.contains(&salt));
    // A session without fixed values is as it was sent.
    let plain = template(vec![decl("gen", false)]);
    assert_eq!(as_rendered(&plain), plain);
}
