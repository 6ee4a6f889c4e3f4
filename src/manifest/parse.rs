//! Reading manifests: file → Handlebars → YAML → typed model, every failure a
//! [`Diagnostic`] naming file:line:column.
//!
//! serde-saphyr's structured errors are mapped to our kinds: unknown field
//! (with did-you-mean), missing field, wrong type, YAML syntax. What a message
//! quotes of a secret's value is masked ([`super::redact`]).

use super::diag::{Diagnostic, ErrorKind};
use super::located::Pos;
use super::model::{Header, Mesh, ServiceManifest};
use super::redact;
use super::suggest;
use super::template::{self, Variables};
use serde::de::DeserializeOwned;
use serde_saphyr::Error as YamlError;
use std::path::Path;

/// Reads a manifest file as UTF-8 text: a regular file of at most
/// [`MAX_MANIFEST_BYTES`](crate::regular_file::MAX_MANIFEST_BYTES) (a FIFO or a
/// device is refused unopened, see [`crate::regular_file`]).
pub fn read_text(path: &Path) -> Result<String, Diagnostic> {
    use crate::regular_file::{self, ReadError, MAX_MANIFEST_BYTES};
    let bytes = regular_file::read(path, MAX_MANIFEST_BYTES).map_err(|e| {
        let (kind, hint) = match &e {
            _ if e.is_not_found() => (ErrorKind::NoManifest, None),
            ReadError::Special { .. } if path.is_dir() => {
                (ErrorKind::SpecialFile, Some(folder_hint(path)))
            }
            ReadError::Special { .. } => (
                ErrorKind::SpecialFile,
                Some(
                    "a manifest is a regular file (FIFOs, devices and sockets are never opened)"
                        .to_string(),
                ),
            ),
            ReadError::TooLarge { .. } => (
                ErrorKind::Io,
                Some("no manifest is that large: is this the right file?".to_string()),
            ),
            ReadError::Io(_) => (ErrorKind::Io, None),
        };
        let message = match &e {
            ReadError::Io(io) => format!("cannot read the manifest: {io}"),
            other => format!("the manifest {other}"),
        };
        let d = Diagnostic::new(kind, path, Pos::default(), message);
        match hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    })?;
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))
}

/// Where the first byte that is not UTF-8 is, as a diagnostic with a hint.
pub fn not_utf8(path: &Path, bytes: &[u8], err: std::str::Utf8Error) -> Diagnostic {
    let at = err.valid_up_to();
    let before = String::from_utf8_lossy(&bytes[..at]);
    let pos = Pos::at_offset(&before, before.len());
    Diagnostic::new(
        ErrorKind::Io,
        path,
        pos,
        format!("the manifest is not UTF-8 (byte 0x{:02X})", bytes[at]),
    )
    .with_hint("save the file as UTF-8 (an editor's \"encoding\" setting); Latin-1 or UTF-16 text is not read")
}

fn options() -> serde_saphyr::Options {
    let mut opts = serde_saphyr::Options::default();
    opts.with_snippet = false;
    opts
}

/// Parses YAML `text` into `T`, mapping errors to diagnostics of `file`.
pub fn from_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, Diagnostic> {
    if text.trim().is_empty() || is_only_comments(text) {
        return Err(Diagnostic::new(
            ErrorKind::Yaml,
            file,
            Pos { line: 1, column: 1 },
            "the manifest is empty",
        )
        .with_hint("a manifest starts with `apiVersion: scone/5.8` and `kind: …`"));
    }
    serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| redact::scrub_diagnostic(yaml_error(&e, file, text), text))
}

fn is_only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// `apiVersion` and `kind` of a manifest, ignoring everything else.
pub fn parse_header(text: &str, file: &Path) -> Result<Header, Diagnostic> {
    from_yaml(text, file)
}

/// What to give instead of the folder `dir`: the Meshfile in it, if it has
/// one, else what `-f` takes.
fn folder_hint(dir: &Path) -> String {
    let inside = super::discover::DEFAULT_MESHFILES
        .iter()
        .find(|name| dir.join(name).is_file());
    match inside {
        Some(name) => format!("`-f` takes a file: the Meshfile in this folder is `{name}`"),
        None => format!(
            "`-f` takes a Meshfile or a service manifest, not a folder (none of {} is in it)",
            super::discover::DEFAULT_MESHFILES.join(", ")
        ),
    }
}

/// A service manifest read from `file` and rendered with `vars`.
pub fn load_service(file: &Path, vars: &Variables) -> Result<ServiceManifest, Diagnostic> {
    let text = read_text(file)?;
    parse_service(&text, file, vars)
}

/// A service manifest from `text`, rendered with `vars` (values put in as data,
/// see [`template::render_service`]).
pub fn parse_service(
    text: &str,
    file: &Path,
    vars: &Variables,
) -> Result<ServiceManifest, Diagnostic> {
    let rendered = template::render_service(text, vars, file)?;
    let mut manifest: ServiceManifest =
        from_yaml(&rendered.text, file).map_err(|d| rendered.values.explain(d))?;
    rendered.values.fill(&mut manifest);
    manifest.path = file.to_path_buf();
    Ok(manifest)
}

/// A Meshfile and the template variables it defines.
pub fn load_mesh(file: &Path) -> Result<(Mesh, Variables), Diagnostic> {
    let text = read_text(file)?;
    parse_mesh(&text, file)
}

/// A Meshfile from `text`: parsed loosely to collect its variables, rendered
/// with them (strict), then parsed into the typed model.
pub fn parse_mesh(text: &str, file: &Path) -> Result<(Mesh, Variables), Diagnostic> {
    let loose: serde_json::Value = from_yaml(text, file).map_err(|d| {
        // The loose parse fails only on what is no YAML, or no JSON value
        // (a `{{x}}` unquoted is a flow mapping used as a key).
        if matches!(d.kind, ErrorKind::Yaml | ErrorKind::Type) && template_near(text, d.pos.line) {
            d.with_hint(
                "the Meshfile is read as YAML before rendering: quote values that are \
                 templates, e.g. `value: \"{{x}}\"`",
            )
        } else {
            d
        }
    })?;
    let vars = template::mesh_variables(&loose);
    let rendered = template::render(text, &vars, file)?;
    let mut mesh: Mesh = from_yaml(&rendered, file)?;
    mesh.path = file.to_path_buf();
    Ok((mesh, vars))
}

/// Whether a template (`{{`) is on line `line` of `text` (1-based) or the
/// line before it, where an unquoted one breaks the YAML; anywhere when the
/// line is not known. A template in a comment elsewhere is no reason to
/// blame one for an indentation error.
fn template_near(text: &str, line: u32) -> bool {
    if line == 0 {
        return text.contains("{{");
    }
    let at = line as usize;
    text.lines()
        .enumerate()
        .filter(|(i, _)| *i + 2 >= at && *i < at)
        .any(|(_, l)| l.split('#').next().unwrap_or("").contains("{{"))
}

/// Maps a serde-saphyr error on `text` to a diagnostic with a human message.
pub fn yaml_error(err: &YamlError, file: &Path, text: &str) -> Diagnostic {
    let inner = innermost(err);
    let pos = inner
        .location()
        .or_else(|| err.location())
        .map(Pos::from)
        .unwrap_or_default();
    let diag = |kind, msg: String| Diagnostic::new(kind, file, pos, msg);
    match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let d = diag(ErrorKind::UnknownField, format!("unknown field `{field}`"));
            match suggest::hint(field, expected.iter().copied()) {
                Some(h) => d.with_hint(h),
                None => d.with_hint("this mapping takes no fields"),
            }
        }
        YamlError::SerdeMissingField { field, .. } => Diagnostic::new(
            ErrorKind::MissingField,
            file,
            parent_pos(text, pos),
            format!("missing required field `{field}`"),
        )
        .with_hint(format!(
            "add `{field}: …` to this mapping (see docs/manifests.md)"
        )),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => type_hint(
            diag(
                ErrorKind::Type,
                format!("expected {}, found {unexpected}", human_expected(expected)),
            ),
            expected,
        ),
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => type_hint(
            diag(
                ErrorKind::Type,
                format!("expected {}, found {unexpected}", human_expected(expected)),
            ),
            expected,
        ),
        YamlError::InvalidScalar { ty, .. } => match key_before(text, pos) {
            // A secret's `size` (the manifest's only u32): its own bounds.
            Some("size") if *ty == "u32" => diag(
                ErrorKind::Type,
                format!(
                    "this value is not a whole number from 1 to {}",
                    crate::cas::secret::MAX_SECRET_SIZE
                ),
            )
            .with_hint(format!(
                "a secret's `size` is its length in characters (ascii) or bytes (binary), \
                 written in digits: `size: 32` (1 to {})",
                crate::cas::secret::MAX_SECRET_SIZE
            )),
            _ => diag(
                ErrorKind::Type,
                format!("this value is not {}", human_expected(ty)),
            ),
        },
        YamlError::NullIntoString { .. } => diag(
            ErrorKind::Type,
            "expected a string, found an empty value".to_string(),
        )
        .with_hint("write a value after the `:`, or quote it: `\"\"`"),
        YamlError::SerdeInvalidLength { expected, .. } => diag(
            ErrorKind::Type,
            format!("expected {}", human_expected(expected)),
        ),
        YamlError::Unexpected { expected, .. } => type_hint(
            diag(
                ErrorKind::Type,
                format!("expected {}", human_expected(expected)),
            ),
            expected,
        ),
        YamlError::Message { msg, .. } if msg.contains("untagged enum StringOrList") => diag(
            ErrorKind::Type,
            "expected a string or a list of strings".to_string(),
        )
        .with_hint("write `a, b` or `[a, b]`"),
        YamlError::Message { msg, .. } => diag(ErrorKind::Type, msg.clone()),
        YamlError::DuplicateMappingKey { key, .. } => {
            let what = key
                .as_deref()
                .map(|k| format!(" `{k}`"))
                .unwrap_or_default();
            diag(
                ErrorKind::Yaml,
                format!("duplicate key{what} in this mapping"),
            )
            .with_hint("a mapping names each key once: remove this one or rename it")
        }
        other => {
            let msg = strip_location(&other.to_string());
            if msg.contains("budget breached") {
                diag(
                    ErrorKind::Yaml,
                    "the manifest expands to too many YAML nodes (aliases of aliases: an alias bomb?)"
                        .to_string(),
                )
                .with_hint("write the values out instead of repeating `*alias` references")
            } else if msg.contains("tab") {
                Diagnostic::new(
                    ErrorKind::Yaml,
                    file,
                    first_tab(text, pos).unwrap_or(pos),
                    format!("invalid YAML: {msg}"),
                )
                .with_hint("YAML indents with spaces: replace this tab by spaces")
            } else {
                diag(ErrorKind::Yaml, format!("invalid YAML: {msg}")).with_hint(
                    "check the YAML here: indentation, a `:` after each key, quotes around values \
                     with `: `, ` #` or a leading `*`, `&`, `{`, `[`",
                )
            }
        }
    }
}

/// The first tab at or after `pos` (the parser reports tabs where the token
/// before them ends).
fn first_tab(text: &str, pos: Pos) -> Option<Pos> {
    let start = usize::try_from(pos.line.max(1) - 1).ok()?;
    text.lines().enumerate().skip(start).find_map(|(i, line)| {
        let skip = if i == start {
            usize::try_from(pos.column.saturating_sub(1)).ok()?
        } else {
            0
        };
        let col = line
            .chars()
            .enumerate()
            .skip(skip)
            .find(|(_, c)| *c == '\t')?
            .0;
        Some(Pos {
            line: u32::try_from(i + 1).ok()?,
            column: u32::try_from(col + 1).ok()?,
        })
    })
}

fn innermost(err: &YamlError) -> &YamlError {
    match err {
        YamlError::WithSnippet { error, .. } => innermost(error),
        YamlError::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

/// A type error's hint, where the fix is plain: a list written as one
/// value is the common one (`copy: print_env.py`).
fn type_hint(d: Diagnostic, expected: &str) -> Diagnostic {
    match human_expected(expected).as_str() {
        "a list" => d.with_hint("write a list: `[a, b]`, or one `- a` per line below the key"),
        _ => d,
    }
}

/// serde's "expected" phrases, made friendlier for our field types.
fn human_expected(expected: &str) -> String {
    match expected {
        // The bound: a number past it (`size: 99999999999`) is one too.
        "u16" => "a whole number from 0 to 65535".to_string(),
        "u32" => "a whole number from 0 to 4294967295".to_string(),
        "u64" | "usize" => "a whole number from 0 to 18446744073709551615".to_string(),
        "a string" | "string" | "string scalar" => "a string".to_string(),
        "a sequence" | "sequence start" => "a list".to_string(),
        "mapping start" | "a map" => "a mapping (`key: value` lines)".to_string(),
        e if e.starts_with("struct ") => "a mapping".to_string(),
        e => e.to_string(),
    }
}

/// The key whose value is at `pos` on its line (`size` of `size: ten`, also
/// in a flow mapping `{ name: s, size: ten }`), if any.
fn key_before(text: &str, pos: Pos) -> Option<&str> {
    let line = text
        .lines()
        .nth(usize::try_from(pos.line.checked_sub(1)?).ok()?)?;
    let column = usize::try_from(pos.column.checked_sub(1)?).ok()?;
    let before = line.get(..column)?.trim_end().strip_suffix(':')?;
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    Some(&before[start..]).filter(|k| !k.is_empty())
}

/// Where the block mapping that holds the node at `pos` starts: the nearest
/// line above that is less indented (its `- ` or key), or the document's first
/// line for a top-level mapping. serde reports a missing field where the
/// mapping ends; users look for it where the mapping begins.
fn parent_pos(text: &str, pos: Pos) -> Pos {
    let lines: Vec<&str> = text.lines().collect();
    let content = |l: &str| {
        let t = l.trim_start();
        !(t.is_empty() || t.starts_with('#') || t == "---")
    };
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let Some(at) = (pos.line as usize)
        .checked_sub(1)
        .filter(|i| *i < lines.len())
    else {
        return pos;
    };
    let own = usize::try_from(pos.column.saturating_sub(1)).unwrap_or(usize::MAX);
    if own == 0 {
        let first = lines.iter().position(|l| content(l)).unwrap_or(0);
        return Pos {
            line: u32::try_from(first + 1).unwrap_or(u32::MAX),
            column: 1,
        };
    }
    for i in (0..at).rev() {
        let l = lines[i];
        if content(l) && indent(l) < own {
            let column = u32::try_from(indent(l) + 1).unwrap_or(u32::MAX);
            return Pos {
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                column,
            };
        }
    }
    pos
}

/// Removes a trailing " at line N, column M" (the diagnostic carries it).
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
