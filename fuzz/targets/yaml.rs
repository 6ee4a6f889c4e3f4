//! Structure-aware YAML: a tree drawn from the fuzzer's bytes with `arbitrary`
//! (mappings, sequences, scalars of every YAML flavour, anchors and aliases) and
//! rendered as block or flow YAML text, so that the manifest parser sees
//! documents that are mostly well-formed and shaped like manifests.

use arbitrary::{Arbitrary, Result, Unstructured};

/// Keys manifests and Meshfiles use, plus a few they do not.
pub const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "environment",
    "local",
    "global",
    "name",
    "value",
    "secrets",
    "import",
    "size",
    "build",
    "to",
    "pwd",
    "command",
    "copy",
    "from",
    "binary",
    "signature",
    "key",
    "ports",
    "port",
    "protocol",
    "cas",
    "cas_url",
    "alias",
    "cas_key",
    "tolerance",
    "mode",
    "policy",
    "namespace",
    "tolerate",
    "ignore_advisories",
    "env",
    "service",
    "services",
    "image",
    "manifest",
    "version",
    "unknown",
    "<<",
    "",
];

/// Scalars that mean something to a manifest or to YAML.
pub const SCALARS: &[&str] = &[
    "scone/5.8",
    "scone/5.10",
    "scone/4.2",
    "genImage",
    "genservice",
    "mesh",
    "python",
    "binary",
    "java",
    "ascii",
    "x509",
    "private-key",
    "myPythonApp",
    "python_app",
    "svc",
    "password",
    "API_USER",
    "API_PASSWORD",
    "$$SCONE::password",
    "$$SCONE::password$$",
    "$$SCONE::",
    "$$SCONE::a:crt$$",
    "{{ API_USER }}",
    "{{",
    "}}",
    "{{#each x}}",
    "registry.example.com/a/b:1",
    "127.0.0.1:5000/x:latest",
    "edge.scone-cas.cf",
    "/python",
    "python3 print_env.py",
    "print_env.py",
    "app.py",
    "../outside",
    "/etc/passwd",
    "dir:../../base",
    "oci:base:latest",
    "scratch",
    "debug-mode, hyperthreading",
    "0",
    "1",
    "10",
    "-1",
    "65536",
    "65537",
    "4294967295",
    "4294967296",
    "0x10",
    "1e9",
    ".inf",
    "~",
    "null",
    "true",
    "yes",
    "no",
    "on",
    "0123",
    "",
    " ",
    "a: b",
    "- x",
    "#",
    "\t",
    "\n",
    "é",
    "\u{85}",
    "\u{feff}",
    "\u{2028}",
    "\0",
];

/// A YAML node.
#[derive(Debug, Clone)]
pub enum Node {
    /// A scalar, rendered in the given style.
    Scalar(String, Style),
    /// A sequence.
    Seq(Vec<Node>, bool),
    /// A mapping (keys are scalars).
    Map(Vec<(String, Node)>, bool),
    /// `&name node`.
    Anchor(u8, Box<Node>),
    /// `*name`.
    Alias(u8),
}

/// How a scalar is written.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

fn scalar(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0..=5 => (*u.choose(SCALARS)?).to_string(),
        6 => u64::arbitrary(u)?.to_string(),
        7 => "x".repeat(u.int_in_range(0..=300)?),
        _ => String::arbitrary(u)?,
    })
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(7, 8)? {
        Ok((*u.choose(KEYS)?).to_string())
    } else {
        scalar(u)
    }
}

/// A node at most `depth` levels deep.
pub fn node(u: &mut Unstructured<'_>, depth: u32) -> Result<Node> {
    let pick = if depth == 0 {
        0
    } else {
        u.int_in_range(0..=9)?
    };
    Ok(match pick {
        0..=3 => Node::Scalar(scalar(u)?, Style::arbitrary(u)?),
        4..=5 => {
            let n = u.int_in_range(0..=4)?;
            let items = (0..n).map(|_| node(u, depth - 1)).collect::<Result<_>>()?;
            Node::Seq(items, u.ratio(1, 4)?)
        }
        6..=7 => {
            let n = u.int_in_range(0..=6)?;
            let items = (0..n)
                .map(|_| Ok((key(u)?, node(u, depth - 1)?)))
                .collect::<Result<_>>()?;
            Node::Map(items, u.ratio(1, 4)?)
        }
        8 => Node::Anchor(u.int_in_range(0..=3)?, Box::new(node(u, depth - 1)?)),
        _ => Node::Alias(u.int_in_range(0..=3)?),
    })
}

fn quote_double(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render_scalar(text: &str, style: Style, indent: usize, out: &mut String) {
    match style {
        Style::Plain => out.push_str(text),
        Style::Single => {
            out.push('\'');
            out.push_str(&text.replace('\'', "''"));
            out.push('\'');
        }
        Style::Double => out.push_str(&quote_double(text)),
        Style::Literal | Style::Folded => {
            out.push_str(if matches!(style, Style::Literal) {
                "|"
            } else {
                ">"
            });
            for line in text.split('\n') {
                out.push('\n');
                out.push_str(&" ".repeat(indent + 2));
                out.push_str(line);
            }
        }
    }
}

fn render_flow(node: &Node, out: &mut String) {
    match node {
        Node::Scalar(text, _) => out.push_str(&quote_double(text)),
        Node::Seq(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_flow(item, out);
            }
            out.push(']');
        }
        Node::Map(items, _) => {
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote_double(k));
                out.push_str(": ");
                render_flow(v, out);
            }
            out.push('}');
        }
        Node::Anchor(a, inner) => {
            out.push_str(&format!("&a{a} "));
            render_flow(inner, out);
        }
        Node::Alias(a) => out.push_str(&format!("*a{a}")),
    }
}

/// Renders `node` as the value after `key:` or `- ` at `indent`.
fn render_value(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Scalar(text, style) => {
            out.push(' ');
            render_scalar(text, *style, indent, out);
            out.push('\n');
        }
        Node::Seq(_, flow) | Node::Map(_, flow) if *flow || is_empty(node) => {
            out.push(' ');
            render_flow(node, out);
            out.push('\n');
        }
        Node::Seq(..) | Node::Map(..) => {
            out.push('\n');
            render_block(node, indent + 2, out);
        }
        Node::Anchor(a, inner) => {
            out.push_str(&format!(" &a{a}"));
            render_value(inner, indent, out);
        }
        Node::Alias(a) => out.push_str(&format!(" *a{a}\n")),
    }
}

fn is_empty(node: &Node) -> bool {
    match node {
        Node::Seq(items, _) => items.is_empty(),
        Node::Map(items, _) => items.is_empty(),
        _ => false,
    }
}

/// Renders a block collection at `indent`.
pub fn render_block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(items, _) => {
            for (k, v) in items {
                out.push_str(&pad);
                if k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '<')
                    && !k.is_empty()
                {
                    out.push_str(k);
                } else {
                    out.push_str(&quote_double(k));
                }
                out.push(':');
                render_value(v, indent, out);
            }
        }
        Node::Seq(items, _) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                render_value(item, indent, out);
            }
        }
        other => {
            out.push_str(&pad);
            render_value(other, indent, out);
        }
    }
}

/// A whole document: a mapping at the top, rendered as block YAML.
pub fn document(node: &Node) -> String {
    let mut out = String::new();
    render_block(node, 0, &mut out);
    out
}
