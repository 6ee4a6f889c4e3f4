//! Handlebars rendering of manifests (strict mode, no HTML escaping) and the
//! variables a Meshfile provides to it: `cas_<name>_<field>` for every field of
//! every `cas` entry, `namespace` (= `policy.namespace`) and every global env
//! value by its name.
//!
//! In a service manifest, a Meshfile's values are data, never template source
//! ([`render_service`]): a value that could change the YAML around it is
//! rendered as a token and put in after parsing ([`Values`]), so a Meshfile
//! author cannot add a local to a service through a value (docs/security.md).

use super::diag::{Diagnostic, ErrorKind};
use super::located::Pos;
use super::{redact, suggest};
use handlebars::{Handlebars, RenderErrorReason};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Template variables, sorted by name.
pub type Variables = BTreeMap<String, String>;

/// Renders `text` with `vars`. Text without `{{` is returned as is (byte-exact,
/// handlebars is not even run). An unknown variable or a template syntax error is
/// a [`ErrorKind::Template`] diagnostic at the line and column of its `{{`.
pub fn render<'t>(
    text: &'t str,
    vars: &Variables,
    file: &Path,
) -> Result<Cow<'t, str>, Diagnostic> {
    if !text.contains("{{") {
        return Ok(Cow::Borrowed(text));
    }
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(|s| s.to_string());
    hb.render_template(text, vars)
        .map(Cow::Owned)
        .map_err(|err| {
            let mut d = render_error(&err, vars, file);
            if d.message.starts_with("invalid template") {
                if let Some(p) = unclosed_block(text) {
                    d.pos = p;
                }
            }
            redact::scrub_diagnostic(d, text)
        })
}

/// A service manifest rendered with a Meshfile's variables: the text, where each
/// value that could change the YAML around it stands as a token, and those
/// values, to put in after parsing ([`Values::fill`]).
#[derive(Clone, Debug)]
pub struct Rendered<'t> {
    pub text: Cow<'t, str>,
    pub values: Values,
}

/// The values a rendered text's tokens stand for. A token is the prefix, the
/// value's index and `x` (letters and digits only: plain in any YAML context);
/// the prefix occurs in neither the template nor any value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    prefix: String,
    list: Vec<String>,
}

impl Values {
    /// Whether no value stands as a token (the text is the manifest as is).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `text` with every token replaced by its value.
    pub fn expand(&self, text: &str) -> String {
        let mut out = text.to_string();
        self.apply(&mut out);
        out
    }

    /// Replaces every token in `s` by its value.
    pub fn apply(&self, s: &mut String) {
        if self.list.is_empty() || !s.contains(&self.prefix) {
            return;
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(at) = rest.find(&self.prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + self.prefix.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let value = after[..digits]
                .parse::<usize>()
                .ok()
                .filter(|_| after[digits..].starts_with('x'))
                .and_then(|i| self.list.get(i));
            match value {
                Some(v) => {
                    out.push_str(v);
                    rest = &after[digits + 1..];
                }
                None => {
                    out.push_str(&self.prefix);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        *s = out;
    }

    /// Puts the values into every string of `m` (after parsing).
    pub fn fill(&self, m: &mut super::model::ServiceManifest) {
        if !self.list.is_empty() {
            m.strings_mut(&mut |s| self.apply(s));
        }
    }

    /// A diagnostic about the tokenized text, told in the values (a message may
    /// quote a scalar).
    pub fn explain(&self, mut d: Diagnostic) -> Diagnostic {
        self.apply(&mut d.message);
        if let Some(h) = &mut d.hint {
            self.apply(h);
        }
        d
    }
}

/// Whether `value` can be put into YAML text as it is, whatever the context
/// (plain, quoted, block scalar, flow, key): letters, digits and `_ . / + -`, not
/// starting with `-`, `+` or `.`… only a letter, digit, `_` or `/`.
fn is_plain_safe(value: &str) -> bool {
    value
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./+-".contains(c))
}

/// Where `text` asks for raw output (`{{{x}}}`, `{{&x}}`), which would paste a
/// value into the YAML as source.
fn raw_output(text: &str) -> Option<Pos> {
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let at = from + i;
        let rest = text[at + 2..].trim_start_matches('~');
        let escaped = at > 0 && text.as_bytes()[at - 1] == b'\\';
        if !escaped && (rest.starts_with('{') || rest.starts_with('&')) {
            return Some(Pos::at_offset(text, at));
        }
        from = at + 2;
    }
    None
}

/// Renders a service manifest with a Meshfile's variables `vars`: like
/// [`render`], but a value that could change the YAML around it is rendered as
/// a token (see [`Values`]), and raw output (`{{{x}}}`, `{{&x}}`) is a
/// [`ErrorKind::Template`] diagnostic. Block helpers see the real values.
pub fn render_service<'t>(
    text: &'t str,
    vars: &Variables,
    file: &Path,
) -> Result<Rendered<'t>, Diagnostic> {
    if !text.contains("{{") {
        return Ok(Rendered {
            text: Cow::Borrowed(text),
            values: Values::default(),
        });
    }
    if let Some(pos) = raw_output(text) {
        return Err(Diagnostic::new(
            ErrorKind::Template,
            file,
            pos,
            "raw output (`{{{x}}}` or `{{&x}}`) would paste a Meshfile value into this manifest as YAML",
        )
        .with_hint("write `{{x}}`: a Meshfile value is put in as data, never as YAML"));
    }
    let prefix = (0u32..)
        .map(|k| format!("sconevalue{k}n"))
        .find(|p| !text.contains(p.as_str()) && !vars.values().any(|v| v.contains(p.as_str())))
        .unwrap_or_default();
    let list = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    {
        let list = Arc::clone(&list);
        let prefix = prefix.clone();
        hb.register_escape_fn(move |value| {
            if is_plain_safe(value) {
                return value.to_string();
            }
            let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
            list.push(value.to_string());
            format!("{prefix}{}x", list.len() - 1)
        });
    }
    let rendered = hb.render_template(text, vars).map_err(|err| {
        let mut d = render_error(&err, vars, file);
        if d.message.starts_with("invalid template") {
            if let Some(p) = unclosed_block(text) {
                d.pos = p;
            }
        }
        redact::scrub_diagnostic(d, text)
    })?;
    drop(hb);
    let list = std::mem::take(&mut *list.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Rendered {
        text: Cow::Owned(rendered),
        values: Values { prefix, list },
    })
}

/// Where the first `{{#block}}` without its `{{/block}}` opens, if any
/// (handlebars reports those at the end of the text).
fn unclosed_block(text: &str) -> Option<Pos> {
    let mut stack: Vec<(&str, usize)> = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let at = from + i;
        let rest = &text[at + 2..];
        let word = |r: &str| {
            r.split(|c: char| c.is_whitespace() || c == '}')
                .next()
                .unwrap_or("")
                .to_string()
        };
        if let Some(r) = rest.strip_prefix('#') {
            let name = word(r);
            let len = name.len();
            stack.push((&text[at + 3..at + 3 + len], at));
        } else if let Some(r) = rest.strip_prefix('/') {
            let name = word(r);
            if let Some(k) = stack.iter().rposition(|(n, _)| *n == name) {
                stack.truncate(k);
            }
        }
        from = at + 2;
    }
    let (_, offset) = stack.first()?;
    Some(Pos::at_offset(text, *offset))
}

fn render_error(err: &handlebars::RenderError, vars: &Variables, file: &Path) -> Diagnostic {
    let pos = Pos {
        line: to_u32(err.line_no),
        column: to_u32(err.column_no),
    };
    match err.reason() {
        RenderErrorReason::MissingVariable(name) => {
            let name = name.clone().unwrap_or_default();
            let diag = Diagnostic::new(
                ErrorKind::Template,
                file,
                pos,
                format!("template variable `{name}` is not defined"),
            );
            let close = suggest::close_matches(&name, vars.keys().map(String::as_str));
            let hint = if !close.is_empty() {
                let list: Vec<String> = close.iter().map(|c| format!("`{{{{{c}}}}}`")).collect();
                format!("did you mean {}?", list.join(" or "))
            } else if vars.is_empty() {
                "no variables are defined here (a service manifest used alone has none; \
                 write `\\{{` for a literal `{{`)"
                    .to_string()
            } else {
                let list: Vec<&str> = vars.keys().map(String::as_str).collect();
                format!("defined variables: {}", list.join(", "))
            };
            diag.with_hint(hint)
        }
        RenderErrorReason::TemplateError(terr) => {
            let pos = terr
                .pos()
                .map(|(l, c)| Pos {
                    line: to_u32(Some(l)),
                    column: to_u32(Some(c)),
                })
                .unwrap_or(pos);
            let reason = terr.reason().to_string();
            let reason = match reason.split_once(": expected") {
                Some((head, _)) => head.to_string(),
                None => reason,
            };
            Diagnostic::new(
                ErrorKind::Template,
                file,
                pos,
                format!("invalid template: {reason}"),
            )
            .with_hint(
                "close every `{{#block}}` with `{{/block}}`; write `\\{{` for a literal `{{`",
            )
        }
        other => Diagnostic::new(
            ErrorKind::Template,
            file,
            pos,
            format!("template error: {other}"),
        ),
    }
}

fn to_u32(n: Option<usize>) -> u32 {
    n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(0)
}

/// The variables a Meshfile document defines. `doc` is the Meshfile parsed
/// loosely (before rendering), so only well-formed parts contribute.
pub fn mesh_variables(doc: &Value) -> Variables {
    let mut vars = Variables::new();
    if let Some(cas) = doc.get("cas").and_then(Value::as_array) {
        for entry in cas {
            let Some(name) = entry.get("name").and_then(scalar) else {
                continue;
            };
            if let Some(fields) = entry.as_object() {
                for (field, value) in fields {
                    if let Some(value) = scalar(value) {
                        vars.insert(format!("cas_{name}_{field}"), value);
                    }
                }
            }
        }
    }
    if let Some(ns) = doc.pointer("/policy/namespace").and_then(scalar) {
        vars.insert("namespace".to_string(), ns);
    }
    if let Some(env) = doc.get("env").and_then(Value::as_array) {
        for entry in env {
            match entry.get("service").and_then(scalar) {
                None => insert_env(&mut vars, entry),
                Some(service) if service == "global" => {
                    for var in entry
                        .get("env")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        insert_env(&mut vars, var);
                    }
                }
                Some(_) => {}
            }
        }
    }
    vars
}

fn insert_env(vars: &mut Variables, entry: &Value) {
    let name = entry
        .get("name")
        .or_else(|| entry.get("key"))
        .and_then(scalar);
    if let (Some(name), Some(value)) = (name, entry.get("value").and_then(scalar)) {
        vars.insert(name, value);
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn text_without_braces_is_untouched() {
        let text = "a: <b>&\"c\"\n  x: |\n    keep\n\n";
        let out = render(text, &Variables::new(), Path::new("m.yml")).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(out, text);
    }

    #[test]
    fn renders_without_html_escaping() {
        let out = render(
            "url: {{cas_cas_cas_url}} # <&>\n",
            &vars(&[("cas_cas_cas_url", "a&b<c>")]),
            Path::new("m.yml"),
        )
        .unwrap();
        assert_eq!(out, "url: a&b<c> # <&>\n");
    }

    #[test]
    fn unknown_variable_points_at_its_braces() {
        let err = render(
            "a: 1\nb: x {{namespac}}\n",
            &vars(&[("namespace", "ns")]),
            Path::new("m.yml"),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Template);
        assert_eq!(err.pos, Pos { line: 2, column: 6 });
        assert!(err.message.contains("namespac"), "{}", err.message);
        assert_eq!(err.hint.as_deref(), Some("did you mean `{{namespace}}`?"));
    }

    #[test]
    fn syntax_error_is_a_template_diagnostic() {
        let err = render(
            "a: 1\nb: {{#if x}}\nc: 2\n",
            &vars(&[("x", "1")]),
            Path::new("m.yml"),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Template);
        assert_eq!(err.pos, Pos { line: 2, column: 4 }, "{err}");
        assert!(err.message.starts_with("invalid template"), "{err}");
    }

    #[test]
    fn values_that_could_change_the_yaml_are_put_in_after_parsing() {
        let text = "a: \"{{X}}\"\nb: {{N}}\nc: {{#if E}}yes{{else}}no{{/if}}\nd: {{P}}\n";
        let v = vars(&[
            ("X", "x\"\n- injected: 1"),
            ("N", "8080"),
            ("E", ""),
            ("P", "a/b.c_d+e-f"),
        ]);
        let r = render_service(text, &v, Path::new("m.yml")).unwrap();
        assert_eq!(
            r.text,
            "a: \"sconevalue0n0x\"\nb: 8080\nc: no\nd: a/b.c_d+e-f\n"
        );
        assert_eq!(
            r.values.expand(&r.text),
            "a: \"x\"\n- injected: 1\"\nb: 8080\nc: no\nd: a/b.c_d+e-f\n"
        );
        // The prefix is one neither the text nor a value holds.
        let r = render_service(
            "a: {{X}} sconevalue0n\n",
            &vars(&[("X", "a b")]),
            Path::new("m.yml"),
        )
        .unwrap();
        assert_eq!(r.text, "a: sconevalue1n0x sconevalue0n\n");
        assert_eq!(r.values.expand(&r.text), "a: a b sconevalue0n\n");
        for raw in ["a: {{{X}}}\n", "a: {{&X}}\n", "a: {{~{X}~}}\n"] {
            let d = render_service(raw, &vars(&[("X", "1")]), Path::new("m.yml")).unwrap_err();
            assert_eq!(d.kind, ErrorKind::Template, "{raw}");
            assert_eq!(d.pos, Pos { line: 1, column: 4 }, "{raw}");
        }
        assert!(render_service("a: \\{{{X}}}\n", &vars(&[]), Path::new("m.yml")).is_ok());
        for safe in ["", "info", "8080", "a/b", "_x", "v1.2.3+build-4"] {
            assert!(is_plain_safe(safe), "{safe}");
        }
        for unsafe_ in [
            "-", "-x", ".inf", "+1", "a b", "a:b", "a#b", "a\"b", "[a]", "é",
        ] {
            assert!(!is_plain_safe(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn mesh_variables_cover_cas_namespace_and_env() {
        let doc = json!({
            "cas": [{"name": "cas", "cas_url": "edge.example", "mode": 3}],
            "policy": {"namespace": "myApp"},
            "env": [
                {"key": "API_USER", "value": "myself"},
                {"service": "global", "env": [{"name": "LEVEL", "value": "info"}]},
                {"service": "helm", "env": [{"name": "REPLICAS", "value": "2"}]},
                {"service": "svc", "env": [{"name": "OWN", "value": "x"}]}
            ]
        });
        let got = mesh_variables(&doc);
        assert_eq!(
            got,
            vars(&[
                ("API_USER", "myself"),
                ("LEVEL", "info"),
                ("cas_cas_cas_url", "edge.example"),
                ("cas_cas_mode", "3"),
                ("cas_cas_name", "cas"),
                ("namespace", "myApp"),
            ])
        );
    }
}
