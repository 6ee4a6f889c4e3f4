//! Target (b): the session renderer and parser round trip (`scone::cas::session`,
//! `scone::cas::fixed`). A `SessionInput` drawn with `arbitrary` (any Unicode in
//! every string) is rendered; a rendered session must parse back, as CAS and as
//! plain YAML, to exactly what was given (names, secrets, a fixed value's
//! placeholder, environment with references closed, command, lists sorted and
//! de-duplicated), its hashes must follow the predecessor rules, and rendering
//! must not depend on the input's order. Drawn fixed values are then put in
//! (`fixed::fill`): each must read back byte-exact, and `fixed::redact` must take
//! every one out again. Any text also goes through `parse_session`,
//! `with_predecessor`, `content_hash` and `redact`, which must not panic.

use arbitrary::{Arbitrary, Result, Unstructured};

use std::collections::BTreeMap;

use scone::cas::fixed::{fill, redact, PLACEHOLDER};
use scone::cas::session::{
    content_hash, normalize_secret_refs, parse_session, render, session_hash, with_predecessor,
    SecretDecl, SecretKind, ServiceInput, SessionInput,
};

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 0 {
        any_text(&String::from_utf8_lossy(rest));
        return;
    }
    let mut u = Unstructured::new(rest);
    if let Ok(input) = session_input(&mut u) {
        round_trip(&input);
        let _ = fill_round_trip(&input, &mut u);
    }
}

/// Functions that take any text: none may panic.
fn any_text(text: &str) {
    let _ = parse_session(text);
    let removed = with_predecessor(text, None);
    let set = with_predecessor(text, Some(&"ab".repeat(32)));
    let _ = (
        content_hash(text),
        content_hash(&removed),
        content_hash(&set),
    );
}

const PICKS: &[&str] = &[
    "python_app",
    "a",
    "$$SCONE::password",
    "$$SCONE::password$$",
    "$$SCONE::",
    "a: b",
    "#x",
    " lead",
    "trail ",
    "yes",
    "0123",
    "~",
    "null",
    "",
    "line\nbreak",
    "\t",
    "\"",
    "'",
    "\\",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}",
    "\u{7f}",
    "\u{80}",
    "\u{9f}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{1b}[31m",
    "\0",
];

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => (*u.choose(PICKS)?).to_string(),
        2 => {
            let (a, b) = (u.choose(PICKS)?, u.choose(PICKS)?);
            format!("{a}{b}")
        }
        _ => String::arbitrary(u)?,
    })
}

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    const NAMES: &[&str] = &["myPythonApp", "a", "a.b-c_d", "-", "..", "x"];
    Ok(if u.ratio(7, 8)? {
        u.choose(NAMES)?.repeat(u.int_in_range(1..=130)?)
    } else {
        text(u)?
    })
}

pub fn session_input(u: &mut Unstructured<'_>) -> Result<SessionInput> {
    let services: Vec<ServiceInput> = (0..u.int_in_range(0..=3)?)
        .map(|_| {
            Ok(ServiceInput {
                name: text(u)?,
                image_name: text(u)?,
                mrenclaves: (0..u.int_in_range(0..=3)?)
                    .map(|_| text(u))
                    .collect::<Result<_>>()?,
                command: text(u)?,
                pwd: text(u)?,
                environment: (0..u.int_in_range(0..=4)?)
                    .map(|_| Ok((text(u)?, text(u)?)))
                    .collect::<Result<_>>()?,
                fspf_tag: if u.arbitrary()? { Some(text(u)?) } else { None },
            })
        })
        .collect::<Result<_>>()?;
    let service_names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let secrets = (0..u.int_in_range(0..=3)?)
        .map(|_| {
            let kind = match u.int_in_range(0..=3)? {
                0 => SecretKind::Ascii,
                1 => SecretKind::Binary,
                2 => SecretKind::Other("x509".into()),
                _ => SecretKind::Other(text(u)?),
            };
            let size = match u.int_in_range(0..=3)? {
                0 => None,
                1 => Some(u.int_in_range(1..=65_536)?),
                _ => Some(u32::arbitrary(u)?),
            };
            let export_to = if service_names.is_empty() || u.ratio(1, 8)? {
                vec![text(u)?]
            } else {
                vec![u.choose(&service_names)?.clone()]
            };
            Ok(SecretDecl {
                name: text(u)?,
                kind,
                size,
                fixed: u.ratio(1, 3)?,
                export_to,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SessionInput {
        name: name(u)?,
        services,
        secrets,
        tolerate: (0..u.int_in_range(0..=3)?)
            .map(|_| text(u))
            .collect::<Result<_>>()?,
        ignore_advisories: (0..u.int_in_range(0..=2)?)
            .map(|_| text(u))
            .collect::<Result<_>>()?,
        predecessor: match u.int_in_range(0..=3)? {
            0 => Some(text(u)?),
            1 => Some(hex::encode(<[u8; 32]>::arbitrary(u)?)),
            _ => None,
        },
    })
}

fn sorted_unique(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items.dedup();
    items
}

/// Renders `input` and checks everything a rendered session promises.
pub fn round_trip(input: &SessionInput) {
    let Ok(yaml) = render(input) else {
        return;
    };
    let parsed = parse_session(&yaml)
        .unwrap_or_else(|e| panic!("a rendered session must parse: {e}\n{yaml}"));
    assert_eq!(parsed.name, input.name);
    assert_eq!(parsed.predecessor, input.predecessor);
    let mut secrets = input.secrets.clone();
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(parsed.secrets.len(), secrets.len());
    for (got, want) in parsed.secrets.iter().zip(&secrets) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.kind, want.kind.as_str());
        assert_eq!(got.size, want.size);
        let placeholder = want.fixed.then_some(PLACEHOLDER);
        assert_eq!(got.value.as_deref(), placeholder, "secret `{}`", want.name);
    }

    // As plain YAML: every string exactly as given.
    let doc: serde_json::Value = serde_saphyr_value(&yaml);
    let mut services = input.services.clone();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let rendered = doc["services"].as_array().cloned().unwrap_or_default();
    assert_eq!(rendered.len(), services.len(), "{yaml}");
    for (got, want) in rendered.iter().zip(&services) {
        assert_eq!(got["name"], want.name.as_str(), "{yaml}");
        assert_eq!(got["image_name"], want.image_name.as_str());
        assert_eq!(got["command"], want.command.as_str());
        assert_eq!(got["pwd"], want.pwd.as_str());
        let mrenclaves: Vec<String> =
            serde_json::from_value(got["mrenclaves"].clone()).expect("a list");
        assert_eq!(mrenclaves, sorted_unique(&want.mrenclaves));
        let env = got["environment"].as_object().expect("a mapping");
        assert_eq!(env.len(), want.environment.len());
        for (key, value) in &want.environment {
            assert_eq!(env[key], normalize_secret_refs(value).as_str(), "`{key}`");
        }
        match &want.fspf_tag {
            Some(tag) => assert_eq!(got["fspf_tag"], tag.as_str()),
            None => assert!(got.get("fspf_tag").is_none()),
        }
    }
    if !input.tolerate.is_empty() {
        let tolerate: Vec<String> =
            serde_json::from_value(doc["security"]["attestation"]["tolerate"].clone())
                .expect("a list");
        assert_eq!(tolerate, sorted_unique(&input.tolerate));
    }

    // Hashes: the predecessor line is all that separates the session from its content.
    assert_eq!(
        session_hash(&yaml),
        session_hash(&render(input).expect("renders again"))
    );
    let without = with_predecessor(&yaml, None);
    assert_eq!(content_hash(&yaml), session_hash(&without));
    let other = "cd".repeat(32);
    let moved = with_predecessor(&yaml, Some(&other));
    assert_eq!(content_hash(&moved), content_hash(&yaml));
    assert_eq!(
        parse_session(&moved)
            .expect("parses")
            .predecessor
            .as_deref(),
        Some(other.as_str())
    );

    // The order of the input does not matter.
    let mut reversed = input.clone();
    reversed.services.reverse();
    reversed.secrets.reverse();
    reversed.tolerate.reverse();
    reversed.ignore_advisories.reverse();
    for service in &mut reversed.services {
        service.mrenclaves.reverse();
    }
    assert_eq!(render(&reversed).expect("renders reversed"), yaml);
}

fn serde_saphyr_value(yaml: &str) -> serde_json::Value {
    serde_saphyr::from_str(yaml)
        .unwrap_or_else(|e| panic!("a rendered session is YAML: {e}\n{yaml}"))
}

/// Puts drawn values in for the fixed secrets of `input`'s rendered session:
/// each must read back exactly, and `redact` must show none of them.
fn fill_round_trip(input: &SessionInput, u: &mut Unstructured<'_>) -> Result<()> {
    let Ok(template) = render(input) else {
        return Ok(());
    };
    let mut values = BTreeMap::new();
    for secret in input.secrets.iter().filter(|s| s.fixed) {
        values.insert(secret.name.clone(), text(u)?);
    }
    let salt: String = "s".repeat(43);
    let Ok(filled) = fill(&template, &values, &salt) else {
        return Ok(());
    };
    let parsed =
        parse_session(&filled).unwrap_or_else(|e| panic!("a filled session must parse: {e}"));
    for (name, value) in &values {
        let got = parsed
            .secrets
            .iter()
            .find(|s| &s.name == name)
            .expect("filled");
        assert_eq!(
            got.value.as_ref(),
            Some(value),
            "secret `{name}` reads back"
        );
    }
    let shown = redact(&filled);
    if let Ok(shown) = parse_session(&shown) {
        for secret in &shown.secrets {
            assert!(
                secret.value.is_none() || secret.value.as_deref() == Some(PLACEHOLDER),
                "redact left the value of `{}`",
                secret.name
            );
        }
    }
    Ok(())
}
