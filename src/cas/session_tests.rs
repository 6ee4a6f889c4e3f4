//! Tests of session rendering, hashing and parsing.

use super::*;
use serde_json::Value;

const MRENCLAVE: &str = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";

fn hello_world() -> SessionInput {
    SessionInput {
        name: "myPythonApp".into(),
        services: vec![ServiceInput {
            name: "python_app".into(),
            image_name: "python_hello_user".into(),
            mrenclaves: vec![MRENCLAVE.into()],
            command: "python3 print_env.py".into(),
            pwd: "/python".into(),
            environment: vec![
                ("API_PASSWORD".into(), "$$SCONE::password".into()),
                ("API_USER".into(), "myself".into()),
            ],
            fspf_tag: Some("a1b2c3".into()),
        }],
        secrets: vec![SecretDecl {
            name: "password".into(),
            kind: SecretKind::Ascii,
            size: Some(10),
            fixed: false,
            export_to: vec!["python_app".into()],
        }],
        tolerate: split_list("outdated-tcb, debug-mode"),
        ignore_advisories: vec!["*".into()],
        predecessor: None,
    }
}

fn parse(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).expect("rendered session parses")
}

#[test]
fn hello_world_session_has_the_expected_fields() {
    let yaml = render(&hello_world()).expect("renders");
    let doc = parse(&yaml);
    assert_eq!(doc["name"], "myPythonApp");
    assert_eq!(doc["version"], "0.3.10");
    assert!(doc.get("predecessor").is_none());
    let service = &doc["services"][0];
    assert_eq!(service["name"], "python_app");
    assert_eq!(service["image_name"], "python_hello_user");
    assert_eq!(service["mrenclaves"][0], MRENCLAVE);
    assert_eq!(service["command"], "python3 print_env.py");
    assert_eq!(service["pwd"], "/python");
    assert_eq!(service["environment"]["API_USER"], "myself");
    assert_eq!(
        service["environment"]["API_PASSWORD"],
        "$$SCONE::password$$"
    );
    assert_eq!(service["fspf_tag"], "a1b2c3");
    let secret = &doc["secrets"][0];
    assert_eq!(secret["name"], "password");
    assert_eq!(secret["kind"], "ascii");
    assert_eq!(secret["size"], 10);
    assert!(secret.get("value").is_none());
    assert!(secret.get("export").is_none());
    let attestation = &doc["security"]["attestation"];
    assert_eq!(
        attestation["tolerate"],
        serde_json::json!(["debug-mode", "outdated-tcb"])
    );
    assert_eq!(attestation["ignore_advisories"], serde_json::json!(["*"]));
    assert_eq!(doc["images"][0]["name"], "python_hello_user");
    assert_eq!(
        doc["access_policy"]["update"],
        serde_json::json!(["CREATOR"])
    );
}

#[test]
fn environment_keeps_given_order_and_key_order_is_fixed() {
    let yaml = render(&hello_world()).expect("renders");
    let pw = yaml.find("API_PASSWORD").expect("has API_PASSWORD");
    let user = yaml.find("API_USER").expect("has API_USER");
    assert!(pw < user, "locals first, as given");
    let order = [
        "name:",
        "version:",
        "access_policy:",
        "security:",
        "services:",
        "images:",
        "secrets:",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| yaml.find(&format!("\n{k}")).map_or(0, |p| p + 1))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{positions:?}\n{yaml}"
    );
}

#[test]
fn rendering_is_deterministic_whatever_the_input_order() {
    let mut a = hello_world();
    a.services.push(ServiceInput {
        name: "a_first".into(),
        image_name: "img".into(),
        ..ServiceInput::default()
    });
    a.secrets.push(SecretDecl {
        name: "aaa".into(),
        kind: SecretKind::Binary,
        size: Some(32),
        fixed: false,
        export_to: vec![],
    });
    let mut b = a.clone();
    b.services.reverse();
    b.secrets.reverse();
    b.tolerate.reverse();
    assert_eq!(render(&a).expect("a"), render(&b).expect("b"));
    let doc = parse(&render(&a).expect("a"));
    assert_eq!(doc["services"][0]["name"], "a_first");
    assert_eq!(doc["secrets"][0]["name"], "aaa");
}

#[test]
fn tricky_strings_round_trip_exactly() {
    let tricky = [
        "  leading spaces",
        "key: value # not a comment",
        "multi\nline\n  indented\n",
        "quotes \" and \\ backslash",
        "$$SCONE::x$$ and $$ alone",
        "tab\there, cr\r, nul-ish \u{1}",
        "- dash",
        "yes",
        "0123",
        "ünïcödé ✓",
        "",
    ];
    let mut input = hello_world();
    input.services[0].environment = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i}"), v.to_string()))
        .collect();
    input.services[0].command = tricky[1].into();
    input.secrets[0].fixed = true;
    let doc = parse(&render(&input).expect("renders"));
    for (i, v) in tricky.iter().enumerate() {
        assert_eq!(
            doc["services"][0]["environment"][format!("V{i}")],
            *v,
            "value {i}"
        );
    }
    assert_eq!(doc["services"][0]["command"], tricky[1]);
    // A fixed value is put in at upload (`cas::fixed::fill`, tested there).
    assert_eq!(doc["secrets"][0]["value"], crate::cas::fixed::PLACEHOLDER);
}

#[test]
fn invalid_inputs_are_refused() {
    let mut dup = hello_world();
    dup.services.push(dup.services[0].clone());
    assert!(matches!(render(&dup), Err(CasError::InvalidSession(_))));
    let mut bad_export = hello_world();
    bad_export.secrets[0].export_to = vec!["elsewhere".into()];
    let err = render(&bad_export).expect_err("unknown service");
    assert!(err.to_string().contains("elsewhere"));
    let mut bad_name = hello_world();
    bad_name.name = "a/b".into();
    assert!(render(&bad_name).is_err());
    let mut bad_pred = hello_world();
    bad_pred.predecessor = Some("nothex".into());
    assert!(render(&bad_pred).is_err());
}

#[test]
fn hashes_and_predecessor_rewrites() {
    let yaml = render(&hello_world()).expect("renders");
    let hash = session_hash(&yaml);
    assert_eq!(hash.len(), 64);
    assert_eq!(hash, hex::encode(Sha256::digest(yaml.as_bytes())));

    let mut next = hello_world();
    next.predecessor = Some(hash.clone());
    let chained = render(&next).expect("renders");
    assert_eq!(with_predecessor(&yaml, Some(&hash)), chained);
    assert_eq!(with_predecessor(&chained, None), yaml);
    assert_ne!(session_hash(&chained), hash);
    assert_eq!(content_hash(&chained), content_hash(&yaml));
    assert_eq!(content_hash(&yaml), hash);
    assert_eq!(
        parse_session(&chained).expect("parses").predecessor,
        Some(hash)
    );

    let mut changed = hello_world();
    changed.services[0].environment[1].1 = "someone else".into();
    assert_ne!(
        content_hash(&render(&changed).expect("renders")),
        content_hash(&yaml)
    );
}

#[test]
fn uploaded_sessions_are_parsed_and_checked() {
    let parsed = parse_session(&render(&hello_world()).expect("renders")).expect("parses");
    assert_eq!(parsed.name, "myPythonApp");
    assert_eq!(parsed.secrets.len(), 1);
    assert_eq!(parsed.secrets[0].size, Some(10));
    let err = parse_session("name: [unclosed\nvalue: \"s3cr3t\"").expect_err("not yaml");
    assert!(!err.to_string().contains("s3cr3t"));
    assert!(parse_session("name: \"../x\"\n").is_err());
}

#[test]
fn secret_values_are_redacted_in_debug() {
    let parsed = parse_session(
        "name: m\nsecrets:\n  - name: k\n    kind: private-key\n    value: TOPSECRET\n",
    )
    .expect("parses");
    assert_eq!(parsed.secrets[0].value.as_deref(), Some("TOPSECRET"));
    assert!(!format!("{parsed:?}").contains("TOPSECRET"));
    assert_eq!(SecretKind::parse("private-key").as_str(), "private-key");
    assert_eq!(SecretKind::parse("ascii"), SecretKind::Ascii);
}

/// The quoting of a character, one at a time (the escaping path), as reference.
fn quoted_char_by_char(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        let mut one = String::new();
        push_quoted(&mut one, &c.to_string());
        out.push_str(&one[1..one.len() - 1]);
    }
    out.push('"');
    out
}

#[test]
fn quoting_takes_the_plain_path_only_for_plain_text() {
    for text in [
        "plain text: with $$SCONE::x$$ and 'quotes'",
        "",
        "q\"b\\s",
        "tab\tnl\ncr\r",
        "\u{1}\u{7f}",
        "ünïcödé \u{85}\u{a0}\u{2028}\u{2029}\u{feff}",
        "~!@#%^&*()_+`{}|[]:;<>?,./",
    ] {
        assert_eq!(yaml_quote(text), quoted_char_by_char(text), "{text:?}");
    }
    assert_eq!(yaml_quote("a\"b"), "\"a\\\"b\"");
    assert_eq!(yaml_quote("x\u{7f}"), "\"x\\x7f\"");
}

#[test]
fn content_hash_without_a_predecessor_line_is_the_session_hash() {
    let input = SessionInput {
        name: "mesh".into(),
        services: vec![ServiceInput {
            name: "api".into(),
            image_name: "api".into(),
            environment: vec![("predecessor".into(), "x".into())],
            ..ServiceInput::default()
        }],
        ..SessionInput::default()
    };
    let yaml = render(&input).unwrap();
    assert_eq!(content_hash(&yaml), session_hash(&yaml));
    assert_eq!(
        content_hash(&yaml),
        session_hash(&with_predecessor(&yaml, None))
    );
    let chained = with_predecessor(&yaml, Some(&"a".repeat(64)));
    assert_ne!(session_hash(&chained), session_hash(&yaml));
    assert_eq!(content_hash(&chained), content_hash(&yaml));
    assert!(has_top_level_key(&chained, "predecessor"));
    assert!(!has_top_level_key(&yaml, "predecessor"));
    assert!(!has_top_level_key("predecessors: 1\n", "predecessor"));
}

#[test]
fn entries_made_ahead_give_the_session_render_gives() {
    let mut input = hello_world();
    let mut other = input.services[0].clone();
    other.name = "a_first".into();
    other.environment.push(("K".into(), "$$SCONE::s$$".into()));
    input.services.push(other);
    let whole = render(&input).unwrap();
    // Any subset of the entries given, in input order (not name order).
    for mask in 0..(1u32 << input.services.len()) {
        let entries: Vec<Option<String>> = input
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (mask & (1 << i) != 0).then(|| service_entry(s)))
            .collect();
        assert_eq!(
            render_with_entries(&input, &entries).unwrap(),
            whole,
            "{mask}"
        );
    }
    // An entry is the service's part of the session, and only that.
    let entry = service_entry(&input.services[1]);
    assert!(entry.starts_with("  - name: \"a_first\"\n"), "{entry}");
    assert!(whole.contains(&entry));
    assert!(!entry.contains("images:"));
}

#[test]
fn every_character_round_trips_through_a_quoted_scalar() {
    let ranges = [
        0..0x3000u32,
        0xd700..0xd800,
        0xe000..0xe100,
        0xfdd0..0xfdf0,
        0xfff0..0x10100,
        0x1fff0..0x20010,
        0x10fff0..0x110000,
    ];
    let mut broken = Vec::new();
    for c in ranges.into_iter().flatten().filter_map(char::from_u32) {
        let text = format!("a{c}b");
        let yaml = format!("v: {}\n", yaml_quote(&text));
        match serde_saphyr::from_str::<Value>(&yaml) {
            Ok(doc) if doc["v"] == text.as_str() => {}
            _ => broken.push(format!("U+{:04X}", c as u32)),
        }
    }
    assert!(
        broken.is_empty(),
        "{} characters do not round-trip: {}",
        broken.len(),
        broken.join(" ")
    );
}

#[test]
fn a_session_past_the_default_node_budget_parses() {
    // serde-saphyr's default budget stops at 250,000 nodes: about 9,000
    // services. 100,000 one-key entries are 300,000 nodes in 1.6 MB.
    let mut yaml = String::from("name: \"big\"\nservices:\n");
    for i in 0..100_000 {
        yaml.push_str(&format!("  - n: {i}\n"));
    }
    assert!(yaml.len() < crate::cas::serve::MAX_SESSION_BYTES);
    let parsed = parse_session(&yaml).expect("a session this size parses");
    assert_eq!(parsed.name, "big");
}
