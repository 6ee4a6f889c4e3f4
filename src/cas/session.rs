//! The CAS session (SCONE session language 0.3.10) of one mesh: the plain-data
//! input the `policy` step fills in, its deterministic YAML rendering, the session
//! hash CAS uses for the predecessor chain, and the parse of an uploaded session.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::CasError;
use super::fixed;
pub use super::refs::{normalize_secret_refs, secret_refs, split_list};
use super::secret::check_declarations;

/// The session language version every rendered session declares.
pub const SESSION_VERSION: &str = "0.3.10";

/// The session of one mesh, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInput {
    /// Session name: the mesh's `policy.namespace`.
    pub name: String,
    /// One entry per mesh service.
    pub services: Vec<ServiceInput>,
    /// Secret declarations (CAS generates the values unless one is given).
    pub secrets: Vec<SecretDecl>,
    /// `security.attestation.tolerate` (list items; use [`split_list`] for the comma form).
    pub tolerate: Vec<String>,
    /// `security.attestation.ignore_advisories`.
    pub ignore_advisories: Vec<String>,
    /// Hash of the session this one replaces (`None` when creating it).
    pub predecessor: Option<String>,
}

/// One service of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInput {
    /// The mesh service's name.
    pub name: String,
    /// Name of the session image entry the service runs in.
    pub image_name: String,
    /// Accepted MRENCLAVEs (hex), from the sign step.
    pub mrenclaves: Vec<String>,
    /// The protected command line.
    pub command: String,
    /// Working directory.
    pub pwd: String,
    /// Environment, ordered as given (locals, then resolved globals); values may hold
    /// `$$SCONE::x` references, which are normalized to `$$SCONE::x$$`.
    pub environment: Vec<(String, String)>,
    /// File-system protection tag from the sign step.
    pub fspf_tag: Option<String>,
}

/// The kind of a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    /// Printable characters; CAS generates `size` of them.
    Ascii,
    /// Random bytes; CAS generates `size` of them.
    Binary,
    /// Any other CAS kind (`private-key`, `x509`, …): declared and kept opaque.
    Other(String),
}

impl SecretKind {
    /// Parses a manifest's `kind:` (`ascii`, `binary`, anything else kept as given).
    pub fn parse(kind: &str) -> SecretKind {
        match kind {
            "ascii" => SecretKind::Ascii,
            "binary" => SecretKind::Binary,
            other => SecretKind::Other(other.to_string()),
        }
    }

    /// The kind as written in a session.
    pub fn as_str(&self) -> &str {
        match self {
            SecretKind::Ascii => "ascii",
            SecretKind::Binary => "binary",
            SecretKind::Other(kind) => kind,
        }
    }
}

/// A secret declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretDecl {
    /// Secret name, as referenced by `$$SCONE::name$$`.
    pub name: String,
    /// Its kind.
    pub kind: SecretKind,
    /// Size (characters for ascii, bytes for binary); CAS's default when `None`.
    pub size: Option<u32>,
    /// Whether a service manifest gives it a fixed value: the session holds
    /// [`fixed::PLACEHOLDER`] until the upload puts the value in
    /// ([`fixed::fill`]).
    pub fixed: bool,
    /// The mesh services that use it (all of them belong to this session).
    pub export_to: Vec<String>,
}

/// Quotes `text` as a YAML double-quoted scalar that parses back to exactly `text`.
pub fn yaml_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_quoted(&mut out, text);
    out
}

/// Whether a byte stands for itself inside a YAML double-quoted scalar: printable
/// ASCII other than `"` and `\`. Anything else takes the escaping path.
fn is_plain_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Appends [`yaml_quote`]`(text)` to `out` without an intermediate string; text of
/// plain bytes only (the usual case) is copied as one slice.
pub fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    if text.bytes().all(is_plain_byte) {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{85}' | '\u{a0}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            // C1 controls and noncharacters are not YAML's printable set.
            c if (0x80..=0x9f).contains(&(c as u32))
                || (0xfdd0..=0xfdef).contains(&(c as u32))
                || (c as u32) & 0xfffe == 0xfffe =>
            {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_session_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a session name must be, as [`is_session_name`] checks it.
pub const SESSION_NAME_RULE: &str = "1-128 letters, digits, `_`, `-` or `.`, not starting with `.`";

/// A session name CAS takes: non-empty, at most 128 letters, digits, `_`, `-`,
/// `.`, not starting with `.` (CAS names; they also name files of the local
/// CAS). `scone check` holds a mesh's `policy.namespace` to it too.
pub fn is_session_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks a session name ([`is_session_name`]).
pub fn check_session_name(name: &str) -> Result<(), CasError> {
    if is_session_name(name) {
        Ok(())
    } else {
        Err(CasError::InvalidSession(format!(
            "session name `{name}` must be {SESSION_NAME_RULE}"
        )))
    }
}

fn check_input(input: &SessionInput) -> Result<(), CasError> {
    check_session_name(&input.name)?;
    let invalid = |m: String| Err(CasError::InvalidSession(m));
    if let Some(p) = &input.predecessor {
        if !is_session_hash(p) {
            return invalid(format!(
                "predecessor `{p}` is not a session hash (64 hex digits)"
            ));
        }
    }
    let mut services = HashSet::with_capacity(input.services.len());
    for service in &input.services {
        if service.name.is_empty() {
            return invalid("a service has an empty name".into());
        }
        if !services.insert(service.name.as_str()) {
            return invalid(format!("service `{}` appears twice", service.name));
        }
        for (i, (key, _)) in service.environment.iter().enumerate() {
            let twice = || service.environment[..i].iter().any(|(k, _)| k == key);
            if key.is_empty() || twice() {
                return invalid(format!(
                    "service `{}`: environment variable `{key}` is empty or set twice",
                    service.name
                ));
            }
        }
    }
    check_declarations(
        input
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str(), s.size)),
    )?;
    let mut secrets = BTreeSet::new();
    for secret in &input.secrets {
        if secret.name.is_empty() || !secrets.insert(secret.name.as_str()) {
            return invalid(format!(
                "secret `{}` is empty or declared twice",
                secret.name
            ));
        }
        if secret.size == Some(0) {
            return invalid(format!("secret `{}` has size 0", secret.name));
        }
        if secret.name == fixed::SALT_SECRET {
            return invalid(format!(
                "secret name `{}` is taken by scone (it salts sessions with fixed values)",
                secret.name
            ));
        }
        if let Some(unknown) = secret
            .export_to
            .iter()
            .find(|s| !services.contains(s.as_str()))
        {
            return invalid(format!(
                "secret `{}` is exported to `{unknown}`, which is not a service of this mesh",
                secret.name
            ));
        }
    }
    Ok(())
}

fn sorted_unique(items: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = items.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

fn push_list(out: &mut String, indent: &str, key: &str, items: &[&str]) {
    out.push_str(indent);
    out.push_str(key);
    if items.is_empty() {
        out.push_str(": []\n");
        return;
    }
    out.push_str(":\n");
    for item in items {
        out.push_str(indent);
        out.push_str("  - ");
        push_quoted(out, item);
        out.push('\n');
    }
}

/// Appends `<prefix><quoted value>\n`.
fn push_field(out: &mut String, prefix: &str, value: &str) {
    out.push_str(prefix);
    push_quoted(out, value);
    out.push('\n');
}

/// Renders the session as YAML with a fixed key order, every string double-quoted
/// (so `$$`, `:`, leading spaces and multi-line values round-trip exactly), services
/// and secrets sorted by name, MRENCLAVEs, `tolerate` and `ignore_advisories` sorted
/// and de-duplicated, environment in the order given with references normalized.
///
/// Secrets are declared at session level: in SCONE every service of a session can
/// reference them and no other session can (no `export:` entry), which is the
/// mesh-only sharing the manifests ask for. `access_policy` names `CREATOR` for
/// read and update: only the client certificate that created the session may read
/// or change it. No secret value is rendered: a fixed one is
/// [`fixed::PLACEHOLDER`], and `secrets:` comes last, where [`fixed::fill`]
/// adds the salt.
pub fn render(input: &SessionInput) -> Result<String, CasError> {
    render_with_entries(input, &[])
}

/// A service's entry under `services:`, as [`render`] writes it.
pub fn service_entry(service: &ServiceInput) -> String {
    let mut out = String::with_capacity(480);
    push_service(&mut out, service);
    out
}

/// [`render`], taking the entry of `input.services[i]` from `entries[i]`
/// where that is given: it must be that service's [`service_entry`] (made
/// ahead, e.g. while the last enclaves are signed).
pub fn render_with_entries(
    input: &SessionInput,
    entries: &[Option<String>],
) -> Result<String, CasError> {
    check_input(input)?;
    // About what a service with a short environment takes, so the text rarely moves.
    let mut out =
        String::with_capacity(512 + 480 * input.services.len() + 96 * input.secrets.len());
    push_field(&mut out, "name: ", &input.name);
    push_field(&mut out, "version: ", SESSION_VERSION);
    if let Some(p) = &input.predecessor {
        push_field(&mut out, "predecessor: ", p);
    }
    out.push_str("\naccess_policy:\n");
    push_list(&mut out, "  ", "read", &["CREATOR"]);
    push_list(&mut out, "  ", "update", &["CREATOR"]);

    let tolerate = sorted_unique(&input.tolerate);
    let ignore = sorted_unique(&input.ignore_advisories);
    if !tolerate.is_empty() || !ignore.is_empty() {
        out.push_str("\nsecurity:\n  attestation:\n");
        push_list(&mut out, "    ", "tolerate", &tolerate);
        push_list(&mut out, "    ", "ignore_advisories", &ignore);
    }

    let mut services: Vec<(usize, &ServiceInput)> = input.services.iter().enumerate().collect();
    services.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name));
    out.push_str("\nservices:");
    out.push_str(if services.is_empty() { " []\n" } else { "\n" });
    for &(i, s) in &services {
        match entries.get(i).and_then(Option::as_deref) {
            Some(entry) => out.push_str(entry),
            None => push_service(&mut out, s),
        }
    }

    let mut images: Vec<&str> = services
        .iter()
        .map(|(_, s)| s.image_name.as_str())
        .collect();
    images.sort_unstable();
    images.dedup();
    if !images.is_empty() {
        out.push_str("\nimages:\n");
        for image in images {
            push_field(&mut out, "  - name: ", image);
        }
    }

    let mut secrets: Vec<&SecretDecl> = input.secrets.iter().collect();
    secrets.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if !secrets.is_empty() {
        out.push_str("\nsecrets:\n");
        for secret in secrets {
            push_field(&mut out, "  - name: ", &secret.name);
            push_field(&mut out, "    kind: ", secret.kind.as_str());
            if let Some(size) = secret.size {
                let _ = writeln!(out, "    size: {size}");
            }
            if secret.fixed {
                push_field(&mut out, "    value: ", fixed::PLACEHOLDER);
            }
        }
    }
    Ok(out)
}

/// Appends a service's entry under `services:`.
fn push_service(out: &mut String, s: &ServiceInput) {
    push_field(out, "  - name: ", &s.name);
    push_field(out, "    image_name: ", &s.image_name);
    push_list(out, "    ", "mrenclaves", &sorted_unique(&s.mrenclaves));
    push_field(out, "    command: ", &s.command);
    push_field(out, "    pwd: ", &s.pwd);
    if s.environment.is_empty() {
        out.push_str("    environment: {}\n");
    } else {
        out.push_str("    environment:\n");
        for (key, value) in &s.environment {
            out.push_str("      ");
            push_quoted(out, key);
            out.push_str(": ");
            push_quoted(out, &normalize_secret_refs(value));
            out.push('\n');
        }
    }
    if let Some(tag) = &s.fspf_tag {
        push_field(out, "    fspf_tag: ", tag);
    }
}

/// The session hash: SHA-256 (lowercase hex) of the session YAML's exact bytes, the
/// `predecessor` line included. It is what CAS answers on upload and what the next
/// update must name as its predecessor.
pub fn session_hash(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))
}

/// The content hash: [`session_hash`] of the YAML with its top-level `predecessor`
/// removed ([`with_predecessor`]`(yaml, None)`). Two uploads of the same content
/// have the same content hash whatever their place in the chain, so `apply` can
/// compare it with the content hash of the session on CAS and upload nothing when
/// they are equal.
pub fn content_hash(yaml: &str) -> String {
    if has_top_level_key(yaml, "predecessor") {
        session_hash(&with_predecessor(yaml, None))
    } else {
        // Nothing to remove: hash the text as it is, without copying it.
        session_hash(yaml)
    }
}

/// Whether a line of `yaml` starts with `key:` (a top-level key).
fn has_top_level_key(yaml: &str, key: &str) -> bool {
    let at_line_start = |i: usize| i == 0 || yaml.as_bytes()[i - 1] == b'\n';
    yaml.match_indices(key)
        .any(|(i, _)| at_line_start(i) && yaml[i + key.len()..].starts_with(':'))
}

fn is_top_level_key(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Returns `yaml` with its top-level `predecessor:` line replaced by `predecessor`
/// (removed when `None`); a new line goes right after `version:` (or first).
/// Works on block-style sessions, which is what [`render`] writes.
pub fn with_predecessor(yaml: &str, predecessor: Option<&str>) -> String {
    let mut out = String::with_capacity(yaml.len() + 80);
    let mut inserted = predecessor.is_none();
    let line = predecessor.map(|p| format!("predecessor: {}\n", yaml_quote(p)));
    let has_version = yaml
        .split_inclusive('\n')
        .any(|l| is_top_level_key(l, "version"));
    if !has_version {
        if let Some(line) = &line {
            out.push_str(line);
            inserted = true;
        }
    }
    for l in yaml.split_inclusive('\n') {
        if is_top_level_key(l, "predecessor") {
            continue;
        }
        out.push_str(l);
        if !inserted && is_top_level_key(l, "version") {
            if !l.ends_with('\n') {
                out.push('\n');
            }
            if let Some(line) = &line {
                out.push_str(line);
            }
            inserted = true;
        }
    }
    out
}

/// The parts of an uploaded session that CAS itself acts on.
#[derive(Debug, Clone, Deserialize)]
pub struct ParsedSession {
    /// Session name.
    pub name: String,
    /// Session language version.
    #[serde(default)]
    pub version: Option<String>,
    /// The hash it claims to replace.
    #[serde(default)]
    pub predecessor: Option<String>,
    /// Its secret declarations.
    #[serde(default)]
    pub secrets: Vec<ParsedSecret>,
}

/// A secret declaration as found in an uploaded session.
#[derive(Clone, Deserialize)]
pub struct ParsedSecret {
    /// Secret name.
    pub name: String,
    /// Secret kind as written.
    pub kind: String,
    /// Declared size.
    #[serde(default)]
    pub size: Option<u32>,
    /// Fixed value, if the session gives one.
    #[serde(default)]
    pub value: Option<String>,
}

impl std::fmt::Debug for ParsedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedSecret")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// serde-saphyr's default budget, but for the number of nodes and events:
/// its default (250,000 nodes) stops a session of about 9,000 services (a
/// 10,000-service mesh's has ~300,000 nodes in 4.6 MB). The body cap
/// ([`crate::cas::serve::MAX_SESSION_BYTES`]) bounds them in the server; the
/// caps on aliases, anchors, nesting and documents stay.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 4_000_000;
    budget.max_events = 8_000_000;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts
}

/// Parses an uploaded session and checks its name and predecessor form. The error
/// text never quotes the document (it may hold fixed secret values).
pub fn parse_session(yaml: &str) -> Result<ParsedSession, CasError> {
    let parsed: ParsedSession =
        serde_saphyr::from_str_with_options(yaml, options()).map_err(|e| {
            let location = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            CasError::InvalidSession(format!("the session is not valid YAML{location}"))
        })?;
    check_session_name(&parsed.name)?;
    if let Some(p) = &parsed.predecessor {
        if !is_session_hash(p) {
            return Err(CasError::InvalidSession(format!(
                "predecessor `{p}` is not a session hash (64 hex digits)"
            )));
        }
    }
    let mut names = BTreeSet::new();
    for secret in &parsed.secrets {
        if !names.insert(secret.name.as_str()) {
            return Err(CasError::InvalidSession(format!(
                "secret `{}` is declared twice",
                secret.name
            )));
        }
    }
    check_declarations(
        parsed
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str(), s.size)),
    )?;
    Ok(parsed)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
