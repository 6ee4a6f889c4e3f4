//! Fixed secret values on their way to CAS. A service manifest may give a
//! secret a fixed `value:`; that value is for CAS only. The `policy` step
//! renders the session with [`PLACEHOLDER`] in its place (what
//! `target/policy/` holds, what fingerprints, caches and `scone.lock` see);
//! the `upload` step puts the values in with [`fill`] right before it sends
//! the session, and nothing but CAS keeps the result.
//!
//! A session holding a fixed value also gets a **salt**: the secret
//! [`SALT_SECRET`], 43 random letters and digits (256 bits) that CAS keeps
//! like any other value. The session hash CAS computes covers the whole
//! session, values included; it is shown in messages and recorded in
//! `scone.lock` as the next predecessor. Without the salt, everything in that
//! hash but the fixed value is known (the policy under `target/`), so a
//! low-entropy value (a password) could be found by trying candidates against
//! it. With the salt, the hash says nothing about the value. The salt of the
//! session on CAS is kept on each update ([`salt_of`]), so an unchanged
//! session still compares equal and is not uploaded again.
//!
//! [`redact`] takes the values out of a session for display (`scone cas
//! session`); [`check_filled`] makes a CAS refuse a session that still holds
//! the placeholder (a `target/policy/` file uploaded by hand).

use std::collections::{BTreeMap, BTreeSet};

use super::error::CasError;
use super::secret::generate;
use super::session::{parse_session, push_quoted, yaml_quote, ParsedSession, SecretKind};
use super::SessionRecord;
use crate::manifest::FixedValue;

/// What a session holds in place of a fixed value until it is uploaded.
pub const PLACEHOLDER: &str = "<fixed value: put in by scone apply at upload>";

/// The secret that salts a session holding fixed values; no manifest may
/// declare a secret of this name.
pub const SALT_SECRET: &str = "scone_session_salt";

/// Length of a salt: 43 letters and digits are 256 bits.
const SALT_LEN: u32 = 43;

fn invalid(message: String) -> CasError {
    CasError::InvalidSession(message)
}

/// A new salt: [`SALT_LEN`] random letters and digits.
pub fn new_salt() -> Result<String, CasError> {
    let value = generate(&SecretKind::Ascii, Some(SALT_LEN))?
        .and_then(|v| v.expose_str().map(str::to_string))
        .ok_or_else(|| invalid("internal: no ascii salt was generated".into()))?;
    Ok(value)
}

/// Whether `text` is a salt [`new_salt`] could have made.
fn is_salt(text: &str) -> bool {
    text.len() == SALT_LEN as usize && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The salt of a session as CAS holds it (`yaml` with its values), if it has one.
pub fn salt_of(yaml: &str) -> Option<String> {
    parse_session(yaml)
        .ok()?
        .secrets
        .into_iter()
        .find(|s| s.name == SALT_SECRET)
        .and_then(|s| s.value)
        .filter(|v| is_salt(v))
}

/// The line a rendered session has for a fixed value.
fn placeholder_line() -> String {
    format!("    value: {}", yaml_quote(PLACEHOLDER))
}

/// Whether `line` (without its newline) starts a top-level key.
fn is_top_level(line: &str) -> bool {
    !line.is_empty() && !line.starts_with([' ', '\t', '#', '-'])
}

/// The session `template` (as the `policy` step renders it: a fixed value is
/// [`PLACEHOLDER`]) with `values` (secret name → value) put in, and `salt` as
/// the [`SALT_SECRET`] when there is a value (unused when there is none). Every placeholder must get a
/// value and every value a placeholder; the result is parsed back and
/// checked. Errors name secrets, never values.
pub fn fill(
    template: &str,
    values: &BTreeMap<String, String>,
    salt: &str,
) -> Result<String, CasError> {
    if !values.is_empty() && !is_salt(salt) {
        return Err(invalid("internal: the salt is not a salt".into()));
    }
    let extra: usize = values.values().map(|v| v.len() + 8).sum();
    let mut out = String::with_capacity(template.len() + extra + 128);
    let wanted = placeholder_line();
    let mut in_secrets = false;
    let mut current: Option<String> = None;
    let mut filled = BTreeSet::new();
    for line in template.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if is_top_level(bare) {
            in_secrets = bare == "secrets:";
            current = None;
        }
        if in_secrets {
            if let Some(quoted) = bare.strip_prefix("  - name: ") {
                current = serde_saphyr::from_str::<String>(quoted).ok();
            } else if bare == wanted {
                let name = current
                    .as_deref()
                    .ok_or_else(|| invalid("a fixed value outside of a secret".into()))?;
                let value = values.get(name).ok_or_else(|| {
                    invalid(format!(
                        "secret `{name}` has a fixed value in the policy, but the service \
                         manifests give it none: build again"
                    ))
                })?;
                out.push_str("    value: ");
                push_quoted(&mut out, value);
                out.push('\n');
                filled.insert(name.to_string());
                continue;
            }
        }
        out.push_str(line);
    }
    if let Some(name) = values.keys().find(|n| !filled.contains(*n)) {
        return Err(invalid(format!(
            "secret `{name}` has a fixed value in its service manifest, but not in the \
             policy: build again"
        )));
    }
    if filled.is_empty() {
        check_filled(&parse_session(&out)?)?;
        return Ok(out);
    }
    if !in_secrets {
        return Err(invalid(
            "internal: the session does not end with its secrets".into(),
        ));
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("  - name: ");
    push_quoted(&mut out, SALT_SECRET);
    out.push_str("\n    kind: \"ascii\"\n    value: ");
    push_quoted(&mut out, salt);
    out.push('\n');
    let parsed = parse_session(&out)?;
    check_filled(&parsed)?;
    for secret in &parsed.secrets {
        let want = match values.get(&secret.name) {
            Some(value) => Some(value.as_str()),
            None if secret.name == SALT_SECRET => Some(salt),
            None => None,
        };
        if want.is_some() && secret.value.as_deref() != want {
            return Err(invalid(format!(
                "internal: secret `{}` does not read back as given",
                secret.name
            )));
        }
    }
    Ok(out)
}

/// The session an apply sends for `template` (the `policy` step's): `values`
/// put in with [`fill`], salted with the salt of `current` (the session CAS
/// holds now, values included; [`salt_of`]) so that an unchanged session
/// compares equal, or with a new salt when it has none. What the `upload`
/// step sends, and what `apply --plan` and `verify` compare with CAS
/// ([`super::pending::compare`]).
pub fn to_send(
    template: &str,
    values: &BTreeMap<String, String>,
    current: Option<&SessionRecord>,
) -> Result<String, CasError> {
    let salt = match current.and_then(|c| salt_of(&c.yaml)) {
        Some(salt) => salt,
        None if values.is_empty() => String::new(),
        None => new_salt()?,
    };
    fill(template, values, &salt)
}

/// The values of `fixed` (secret name → value, as the service manifests of
/// this load give them), to put in with [`fill`]. A value read back from a
/// cache ([`FixedValue::Withheld`]) is an error naming its secret, never a
/// value.
pub fn exposed(fixed: &BTreeMap<String, FixedValue>) -> Result<BTreeMap<String, String>, CasError> {
    fixed
        .iter()
        .map(|(name, value)| match value.expose() {
            Some(v) => Ok((name.clone(), v.to_string())),
            None => Err(invalid(format!(
                "internal: the fixed value of secret `{name}` was not loaded from its service \
                 manifest; run scone again"
            ))),
        })
        .collect()
}

/// Refuses a session where a secret still holds [`PLACEHOLDER`] (or where the
/// salt's name is taken by something else than a salt).
pub fn check_filled(session: &ParsedSession) -> Result<(), CasError> {
    for secret in &session.secrets {
        if secret.value.as_deref() == Some(PLACEHOLDER) {
            return Err(invalid(format!(
                "secret `{}` holds the placeholder of a fixed value, not the value: this is \
                 the policy as `target/policy/` shows it; upload it with `scone apply`, which \
                 puts in the value from the service manifest",
                secret.name
            )));
        }
    }
    Ok(())
}

/// `yaml` with every secret value replaced by [`PLACEHOLDER`], for display.
/// Block-style sessions (what scone renders) keep their layout; a session in
/// another style is shown without its `secrets:` section.
pub fn redact(yaml: &str) -> String {
    let redacted = redact_lines(yaml);
    if shows_no_value(&redacted) {
        return redacted;
    }
    let without = drop_secrets(yaml);
    if shows_no_value(&without) {
        return without;
    }
    "# (the session is not shown: its secret values could not be taken out)\n".to_string()
}

/// The session CAS holds (`yaml`, as `fill` made it) as the `policy` step
/// rendered it: no predecessor, each value back to [`PLACEHOLDER`], the
/// [`SALT_SECRET`] entry gone. Equal to `target/policy/<ns>.yaml` when CAS
/// holds what the last apply uploaded; what `apply --plan` diffs against.
pub fn as_rendered(yaml: &str) -> String {
    let yaml = super::session::with_predecessor(yaml, None);
    let redacted = redact_lines(&yaml);
    let salt_line = format!("  - name: {}", yaml_quote(SALT_SECRET));
    let mut out = String::with_capacity(redacted.len());
    let mut in_secrets = false;
    let mut skipping = false;
    for line in redacted.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_top_level(bare) {
            in_secrets = bare.trim_end() == "secrets:";
            skipping = false;
        } else if in_secrets && bare.starts_with("  - ") {
            skipping = bare == salt_line;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    out
}

/// Whether `yaml` parses as a session and holds no secret value.
fn shows_no_value(yaml: &str) -> bool {
    parse_session(yaml).is_ok_and(|s| {
        s.secrets
            .iter()
            .all(|s| s.value.as_deref().is_none_or(|v| v == PLACEHOLDER))
    })
}

/// The `value:` keys of the top-level `secrets:` block replaced, with their
/// continuation lines (a block scalar) dropped.
fn redact_lines(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut in_secrets = false;
    let mut skip_deeper_than: Option<usize> = None;
    for line in yaml.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let indent = bare.len() - bare.trim_start_matches(' ').len();
        if let Some(depth) = skip_deeper_than {
            if bare.trim().is_empty() || indent > depth {
                continue;
            }
            skip_deeper_than = None;
        }
        if is_top_level(bare) {
            in_secrets = bare.trim_end() == "secrets:";
        }
        let body = &bare[indent..];
        let (dash, key) = match body.strip_prefix("- ") {
            Some(rest) => ("- ", rest),
            None => ("", body),
        };
        if in_secrets && key.starts_with("value:") {
            out.push_str(&bare[..indent]);
            out.push_str(dash);
            out.push_str("value: ");
            push_quoted(&mut out, PLACEHOLDER);
            out.push('\n');
            skip_deeper_than = Some(indent + dash.len());
            continue;
        }
        out.push_str(line);
    }
    out
}

/// `yaml` without its top-level `secrets:` section, and a note saying so.
fn drop_secrets(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut in_secrets = false;
    for line in yaml.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_top_level(bare) {
            in_secrets = bare.starts_with("secrets:");
        }
        if !in_secrets {
            out.push_str(line);
        }
    }
    if !out.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    out.push_str("# secrets: not shown (their values stay in CAS)\n");
    out
}

#[cfg(test)]
#[path = "fixed_tests.rs"]
mod tests;
