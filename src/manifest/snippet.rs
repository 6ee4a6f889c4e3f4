//! The text form of a diagnostic, as rustc and cargo print one: the level and
//! the headline (`file:line:col: message [code]`), the source line it points
//! at with a caret under the span, then the hint.
//!
//! ```text
//! error: service.yml:2:7: unknown manifest kind `genImag` [kind]
//!   |
//! 2 | kind: genImag
//!   |       ^^^^^^^
//!   help: did you mean `genImage`?
//! ```
//!
//! A secret's value on the line shows as `***` ([`super::redact`]).

use super::diag::{Diagnostic, Level};
use super::redact::{SecretSpans, MASK};
use std::collections::HashMap;
use std::path::PathBuf;

/// Files bigger than this are not read for a snippet.
const MAX_SOURCE: u64 = 4 << 20;

/// Renders diagnostics, reading each source file once.
#[derive(Default)]
pub struct Renderer {
    /// ANSI colours (a terminal that wants them).
    pub color: bool,
    sources: HashMap<PathBuf, Option<(String, SecretSpans)>>,
}

impl Renderer {
    pub fn new(color: bool) -> Renderer {
        Renderer {
            color,
            sources: HashMap::new(),
        }
    }

    /// The whole text form of `d`, without a trailing newline.
    pub fn render(&mut self, d: &Diagnostic) -> String {
        let source = if d.has_pos() && !d.file.as_os_str().is_empty() {
            self.sources
                .entry(d.file.clone())
                .or_insert_with(|| read_source(&d.file))
                .as_ref()
                .map(|(text, spans)| (text.as_str(), spans))
        } else {
            None
        };
        render_masked(d, source, self.color)
    }
}

/// The text of `path` and its secret values, for excerpts.
fn read_source(path: &std::path::Path) -> Option<(String, SecretSpans)> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SOURCE {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let spans = SecretSpans::find(&text);
    Some((text, spans))
}

/// The text form of `d` with `source` (the text of `d.file`, if known).
pub fn render_with(d: &Diagnostic, source: Option<&str>, color: bool) -> String {
    match source {
        Some(text) => render_masked(d, Some((text, &SecretSpans::find(text))), color),
        None => render_masked(d, None, color),
    }
}

/// [`render_with`] with the secret values of the source already found.
fn render_masked(d: &Diagnostic, source: Option<(&str, &SecretSpans)>, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let level_color = match d.level {
        Level::Error => "1;31",
        Level::Warning => "1;33",
    };
    let mut out = format!("{}: {}", paint(level_color, d.level.as_str()), d.headline());
    if let Some(line) = source.and_then(|(text, spans)| spans.line(text, d.pos.line)) {
        let number = d.pos.line.to_string();
        let pad = " ".repeat(number.len());
        let shown = line.text.replace('\t', " ");
        let column = usize::try_from(d.pos.column.max(1)).unwrap_or(1) - 1;
        let (column, masked) = line.column(column);
        let start = column.min(shown.chars().count());
        let len = if masked {
            MASK.len()
        } else {
            span_len(&shown, start)
        };
        let bar = paint("1;34", "|");
        out.push_str(&format!("\n{pad} {bar}"));
        out.push_str(&format!("\n{} {bar} {shown}", paint("1;34", &number)));
        out.push_str(&format!(
            "\n{pad} {bar} {}{}",
            " ".repeat(start),
            paint(level_color, &"^".repeat(len))
        ));
    }
    if let Some(hint) = &d.hint {
        out.push_str(&format!("\n  {}: {hint}", paint("1", "help")));
    }
    out
}

/// How many characters from `start` the caret covers: a quoted scalar to
/// its closing quote, else the word there (up to a space, without a
/// trailing `:` or `,`); at least one.
fn span_len(line: &str, start: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(start).collect();
    match rest.first() {
        None => 1,
        Some(&quote @ ('"' | '\'')) => rest
            .iter()
            .skip(1)
            .position(|&c| c == quote)
            .map_or(rest.len(), |end| end + 2),
        Some(_) => {
            let mut word: Vec<char> = rest
                .into_iter()
                .take_while(|c| !c.is_whitespace())
                .collect();
            while word.len() > 1 && matches!(word.last(), Some(':' | ',' | ']' | '}')) {
                word.pop();
            }
            word.len().max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ErrorKind, Pos};

    fn at(line: u32, column: u32) -> Diagnostic {
        Diagnostic::new(
            ErrorKind::Kind,
            "service.yml",
            Pos { line, column },
            "unknown manifest kind `genImag`",
        )
        .with_hint("did you mean `genImage`?")
    }

    #[test]
    fn a_caret_under_the_word() {
        let text = render_with(
            &at(2, 7),
            Some("apiVersion: scone/5.8\nkind: genImag\n"),
            false,
        );
        assert_eq!(
            text,
            "error: service.yml:2:7: unknown manifest kind `genImag` [kind]\n  |\n2 | kind: genImag\n  |       ^^^^^^^\n  help: did you mean `genImage`?"
        );
    }

    #[test]
    fn a_quoted_scalar_is_underlined_to_its_quote() {
        let text = render_with(&at(1, 8), Some("value: \"a b\" # c"), false);
        assert!(text.contains("\n  |        ^^^^^\n"), "{text}");
    }

    #[test]
    fn a_key_loses_its_colon_and_a_missing_line_shows_no_snippet() {
        let text = render_with(&at(1, 3), Some("  pwd: /x"), false);
        assert!(text.contains("\n  |   ^^^\n"), "{text}");
        let text = render_with(&at(9, 1), Some("one line"), false);
        assert!(!text.contains('|'), "{text}");
    }

    #[test]
    fn no_location_prints_none() {
        let d = Diagnostic::new(
            ErrorKind::UnknownService,
            "",
            Pos::default(),
            "no service `x`",
        );
        assert_eq!(
            render_with(&d, None, false),
            "error: no service `x` [unknown-service]"
        );
        let d = Diagnostic::new(ErrorKind::Io, "a.yml", Pos::default(), "cannot read");
        assert_eq!(
            render_with(&d, None, false),
            "error: a.yml: cannot read [io]"
        );
    }
}
