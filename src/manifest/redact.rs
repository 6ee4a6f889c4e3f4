//! Secret values out of diagnostics: the parts of a manifest's text that hold
//! (or may hold) a secret's fixed value, found from the raw text alone, so
//! that a source excerpt shows `***` there and a message never quotes them.
//!
//! The rule works on text that is no valid YAML (an error inside the value is
//! the case that matters most), so it reads lines and indentation, not a
//! document, and where it is unsure it masks more, never less:
//!
//! - a *secrets section* is the value of a key that contains `secret` (any
//!   case): the lines below it that are more indented (or a `- ` item at its
//!   indentation), and a flow collection after it;
//! - in a section, the value of every key but the fields that hold no secret
//!   ([`SHOWN`]: `name`, `kind`, `size`, …, and misspellings closer to one
//!   of them than to `value`) is masked: the rest of its line,
//!   a quoted or flow value to its end (over lines), and every line below
//!   that is more indented than the key, an item at its indentation, or no
//!   `key:` line at all (block scalars, multi-line plain scalars, a value
//!   that broke the YAML); below a value that has no text on its key's line
//!   (`value: |`, `value:`), also the lines up to one that starts an entry a
//!   manifest has there (a field; at column 0 a top-level field): the value
//!   written without its indentation reads to YAML as a key (`p4ss: x` at
//!   column 0), which an error then names and shows;
//! - in a section, a key that is no field and no near misspelling of one is
//!   masked with its value (a value that lost its indentation reads as a
//!   key), and so is a scalar item of a list that is no list of names
//!   (`import`, `dns`).
//!
//! [`scrub`] then takes out of a message what it quotes of a masked part
//! (the parser quotes keys, template variables and odd numbers).

use super::diag::Diagnostic;
use std::borrow::Cow;
use std::ops::Range;

/// What a masked part shows instead.
pub const MASK: &str = "***";

/// The fields of a secret (and of `secrets:`) whose values are no secret.
pub const SHOWN: &[&str] = &[
    "name",
    "kind",
    "size",
    "import",
    "global",
    "local",
    "private_key",
    "issuer",
    "dns",
    "common_name",
];

/// The fields whose items are names (of secrets, of hosts), no secret.
pub(super) const NAME_LISTS: &[&str] = &["import", "dns"];

/// The field that holds a fixed value.
pub(super) const VALUE: &str = "value";

/// The byte ranges of a text that hold (or may hold) a secret's value:
/// sorted, apart, each within one line and without the spaces around it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretSpans {
    ranges: Vec<Range<usize>>,
}

/// One line of a text as an excerpt may show it: every masked part replaced
/// by [`MASK`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskedLine {
    /// The line, masked, without its line break.
    pub text: String,
    /// Each masked part: its columns in the line as written (0-based, in
    /// characters) and the column its mask starts at in `text`.
    parts: Vec<(Range<usize>, usize)>,
}

impl MaskedLine {
    /// Where column `column` of the line as written (0-based, in characters)
    /// is in [`MaskedLine::text`], and whether it is inside a mask.
    pub fn column(&self, column: usize) -> (usize, bool) {
        let mut mapped = column;
        for (cols, at) in &self.parts {
            if column < cols.start {
                break;
            }
            if column < cols.end {
                return (*at, true);
            }
            mapped = (mapped + MASK.len()).saturating_sub(cols.len());
        }
        (mapped, false)
    }
}

impl SecretSpans {
    /// The secret values of `text` (see the module doc for the rule).
    pub fn find(text: &str) -> SecretSpans {
        SecretSpans::from_marks(text, super::secret_scan::marks(text))
    }

    /// Whether nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The masked parts of `text` (the text these spans were found in).
    pub fn values<'t>(&self, text: &'t str) -> Vec<&'t str> {
        self.ranges
            .iter()
            .filter_map(|r| text.get(r.clone()))
            .collect()
    }

    /// Line `n` (1-based) of `text`, masked, without its line break.
    pub fn line(&self, text: &str, n: u32) -> Option<MaskedLine> {
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        let (start, line) = lines(text).nth(index)?;
        let end = start + line.len();
        let mut masked = String::new();
        let mut parts = Vec::new();
        let mut from = start;
        let first = self.ranges.partition_point(|r| r.end <= start);
        for r in self.ranges[first..].iter().take_while(|r| r.start < end) {
            let (a, b) = (r.start.max(start), r.end.min(end));
            let before = text.get(from..a)?;
            masked.push_str(before);
            let column = text.get(start..a)?.chars().count();
            let len = text.get(a..b)?.chars().count();
            parts.push((column..column + len, masked.chars().count()));
            masked.push_str(MASK);
            from = b;
        }
        masked.push_str(text.get(from..end)?);
        Some(MaskedLine {
            text: masked,
            parts,
        })
    }

    /// Each mark cut into its lines, trimmed of spaces, sorted and merged.
    fn from_marks(text: &str, marks: Vec<Range<usize>>) -> SecretSpans {
        let mut ranges: Vec<Range<usize>> = Vec::new();
        for mark in marks {
            let mut start = mark.start;
            while start < mark.end {
                let Some(rest) = text.get(start..) else {
                    break;
                };
                let line_end = rest
                    .find('\n')
                    .map_or(text.len(), |i| start + i)
                    .min(mark.end);
                let Some(piece) = text.get(start..line_end) else {
                    break;
                };
                let trimmed = piece.trim_start_matches(is_blank);
                let a = start + (piece.len() - trimmed.len());
                let b = a + trimmed.trim_end_matches(is_blank).len();
                if a < b {
                    ranges.push(a..b);
                }
                start = line_end + 1;
            }
        }
        ranges.sort_by_key(|r| (r.start, r.end));
        // Overlapping ones, and ones only blanks apart (`key: value`), are one.
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last)
                    if r.start <= last.end
                        || text
                            .get(last.end..r.start)
                            .is_some_and(|gap| gap.chars().all(is_blank)) =>
                {
                    last.end = last.end.max(r.end)
                }
                _ => merged.push(r),
            }
        }
        SecretSpans { ranges: merged }
    }
}

/// `d` with what its message and hint quote of a secret value of `text` (the
/// manifest it is about) masked: see [`scrub`].
pub fn scrub_diagnostic(mut d: Diagnostic, text: &str) -> Diagnostic {
    let spans = SecretSpans::find(text);
    if spans.is_empty() {
        return d;
    }
    let values = spans.values(text);
    if let Cow::Owned(message) = scrub(&d.message, &values) {
        d.message = message;
    }
    if let Some(hint) = &d.hint {
        if let Cow::Owned(hint) = scrub(hint, &values) {
            d.hint = Some(hint);
        }
    }
    d
}

/// `message` with each quoted part (between backquotes, double or single
/// quotes, or a backquote and a single quote) that is part of a value, holds
/// one, or shares four characters in a row with one, replaced by [`MASK`].
/// What a message says in its own words is left alone.
pub fn scrub<'m>(message: &'m str, values: &[&str]) -> Cow<'m, str> {
    let mut out = String::new();
    let mut rest = message;
    let mut changed = false;
    while let Some(open) = rest.find(['`', '"', '\'']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        let inner_start = open + quote.len_utf8();
        let close = match quote {
            '`' => rest[inner_start..].find(['`', '\'']),
            q => rest[inner_start..].find(q),
        };
        let Some(close) = close.map(|i| inner_start + i) else {
            break;
        };
        let inner = &rest[inner_start..close];
        out.push_str(&rest[..inner_start]);
        if quotes_a_value(inner, values) {
            out.push_str(MASK);
            changed = true;
        } else {
            out.push_str(inner);
        }
        let after = close + rest[close..].chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[close..after]);
        rest = &rest[after..];
    }
    if !changed {
        return Cow::Borrowed(message);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Whether `quoted` (a part of a message) is, holds or shares four
/// characters in a row with one of `values`.
fn quotes_a_value(quoted: &str, values: &[&str]) -> bool {
    const RUN: usize = 4;
    let quoted = quoted.trim();
    if !quoted.chars().any(char::is_alphanumeric) {
        return false;
    }
    let chars: Vec<char> = quoted.chars().collect();
    values.iter().any(|v| {
        v.contains(quoted)
            || quoted.contains(v)
            || (chars.len() >= RUN
                && chars.windows(RUN).any(|w| {
                    let run: String = w.iter().collect();
                    v.contains(run.as_str())
                }))
    })
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// Each line of `text` with the byte offset it starts at, without its line
/// break (`\n` or `\r\n`).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    text.split('\n').map(move |line| {
        let at = start;
        start += line.len() + 1;
        (at, line.strip_suffix('\r').unwrap_or(line))
    })
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
