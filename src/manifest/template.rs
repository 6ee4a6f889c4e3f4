//! Handlebars rendering of manifests (strict mode, no HTML escaping) and the
//! variables a Meshfile provides to it: `cas_<name>_<field>` for every field of
//! every `cas` entry, `namespace` (= `policy.namespace`) and every global env
//! value by its name.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Pos;
use super::suggest;
use handlebars::{Handlebars, RenderErrorReason};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

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
            d
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
    let before = &text[..*offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some(Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    })
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
