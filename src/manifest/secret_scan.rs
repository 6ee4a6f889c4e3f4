//! Where a manifest's text holds (or may hold) a secret's value: a scan of
//! its lines by indentation, keys and flow collections, for text that need
//! not be valid YAML. The rule is [`super::redact`]'s module doc; this finds
//! the byte ranges it names, which [`super::redact::SecretSpans`] cuts into
//! lines.

use super::redact::{NAME_LISTS, SHOWN, VALUE};
use super::suggest::levenshtein;
use std::ops::Range;

/// The byte ranges of `text` the rule masks (unsorted, may overlap, may
/// span lines).
pub(super) fn marks(text: &str) -> Vec<Range<usize>> {
    let mut scanner = Scanner {
        text,
        marks: Vec::new(),
    };
    scanner.block();
    scanner.marks
}

/// Whether `s` (a line after its indentation) is a `- ` item.
fn is_item(s: &str) -> bool {
    s == "-" || s.starts_with("- ") || s.starts_with("-\t")
}

/// How many bytes of spaces and tabs `s` starts with.
fn blanks(s: &str) -> usize {
    s.len() - s.trim_start_matches([' ', '\t']).len()
}

/// `s` after its `- ` item markers, and how many bytes they took.
fn after_items(s: &str) -> (usize, &str) {
    let mut at = 0;
    while is_item(&s[at..]) {
        at += 1;
        at += blanks(&s[at..]);
    }
    (at, &s[at..])
}

/// The key of a `key: value` line (`s` is the line after its indentation and
/// item markers), lowercased and unquoted, with the key's length in bytes as
/// written and where its value starts (after the `:` and the blanks).
fn key_of(s: &str) -> Option<(String, usize, usize)> {
    let (key, len) = match s.chars().next()? {
        q @ ('"' | '\'') => {
            let end = quoted_end(s, 0);
            if end > s.len() || !s[..end].ends_with(q) || end < 2 {
                return None;
            }
            (&s[1..end - 1], end)
        }
        '{' | '[' | ']' | '}' | ',' | '|' | '>' | '*' | '&' | '!' | '%' | '@' | '`' | '#' => {
            return None
        }
        '?' if s.len() == 1 || s[1..].starts_with([' ', '\t']) => return None,
        _ => {
            let bytes = s.as_bytes();
            let mut i = 0;
            loop {
                match bytes.get(i) {
                    None => return None,
                    Some(b'#') if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => return None,
                    Some(b':') if matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) => break,
                    _ => i += 1,
                }
            }
            let key = s[..i].trim_end_matches([' ', '\t']);
            (key, key.len())
        }
    };
    let rest = &s[len..];
    let colon = blanks(rest);
    let after = rest.get(colon..)?;
    if !(after == ":" || after.starts_with(": ") || after.starts_with(":\t")) {
        return None;
    }
    let value = len + colon + 1;
    Some((key.to_lowercase(), len, value + blanks(&s[value..])))
}

/// The top-level fields of a service manifest and a Meshfile (lowercase).
const TOP_FIELDS: &[&str] = &[
    "apiversion",
    "kind",
    "environment",
    "secrets",
    "build",
    "ports",
    "injection_files",
    "requirements",
    "cas",
    "policy",
    "env",
    "services",
    "version",
    "helm_extra_values",
    "helm",
    "extra_policies",
];

/// The fields below the top level that are no secret's (lowercase), besides
/// [`SHOWN`] and `value`.
const INNER_FIELDS: &[&str] = &[
    "key",
    "service",
    "image",
    "manifest",
    "from",
    "to",
    "pwd",
    "command",
    "copy",
    "binary",
    "signature",
    "sign",
    "run",
    "stable",
    "host_paths",
    "host_path",
    "path",
    "content",
    "port",
    "protocol",
    "namespace",
    "tolerate",
    "cas_url",
    "alias",
    "mode",
];

/// Whether a line not more indented than a masked value (`content`, after
/// its indentation; `rest`, after its item markers too) starts another
/// entry, so that the value ends above it: a `key:` line whose key a
/// manifest has there (at column 0 a top-level field, below it a field or a
/// misspelling of a secret's field), or an item that is a flow collection or
/// empty. Anything else still belongs to the value, or may: it is masked.
fn ends_value(indent: usize, content: &str, rest: &str) -> bool {
    if let Some((key, _, _)) = key_of(rest) {
        let near = |fields: &[&str]| {
            fields.iter().any(|f| {
                let d = levenshtein(&key, f);
                d == 0 || (d == 1 && key.len() >= 4)
            })
        };
        return if indent == 0 && content.len() == rest.len() {
            near(TOP_FIELDS)
        } else {
            key_shown(&key) || near(TOP_FIELDS) || near(INNER_FIELDS)
        };
    }
    is_item(content) && (rest.is_empty() || rest.starts_with(['{', '[', '#']))
}

/// Whether the text after a key's `:` (to its line's end) holds no value yet:
/// nothing, a comment, or a block scalar's header (`|`, `>-`, `|2+`), after
/// any tags and anchors.
fn opens_below(after: &str) -> bool {
    let mut rest = after.trim_start_matches([' ', '\t']);
    while rest.starts_with(['!', '&']) {
        let word = rest.find([' ', '\t']).unwrap_or(rest.len());
        rest = rest[word..].trim_start_matches([' ', '\t']);
    }
    let rest = rest
        .strip_prefix(['|', '>'])
        .map_or(rest, |header| {
            header.trim_start_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit())
        })
        .trim_start_matches([' ', '\t', '\r']);
    rest.is_empty() || rest.starts_with('#')
}

/// Whether `key` names a secrets section.
fn is_section(key: &str) -> bool {
    key.to_lowercase().contains("secret")
}

/// Whether a key in a secrets section is shown: a field, or close to one
/// (a misspelt field, named in its did-you-mean).
fn key_shown(key: &str) -> bool {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain
        && SHOWN
            .iter()
            .chain(&[VALUE])
            .any(|field| levenshtein(key, field) <= 2)
}

/// Where a quoted scalar that opens at byte `at` of `text` ends: after its
/// closing quote, or the end of the text (an unclosed one runs to there).
fn quoted_end(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let Some(&quote) = bytes.get(at) else {
        return text.len();
    };
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// What a place in the text is: in a secrets section, masked, a list of names.
#[derive(Clone, Copy, Debug, Default)]
struct Ctx {
    secrets: bool,
    masked: bool,
    names: bool,
}

/// Whether the value of `key` in a secrets section is shown: `key` is one of
/// [`SHOWN`], or a misspelling closer to one of them than to `value`.
fn value_shown(key: &str) -> bool {
    let to_value = levenshtein(key, VALUE);
    SHOWN.iter().any(|field| {
        let d = levenshtein(key, field);
        d == 0 || (d <= 2 && d < to_value)
    })
}

impl Ctx {
    /// The context of the value of `key` in this one.
    fn value_of(self, key: &str) -> Ctx {
        Ctx {
            secrets: self.secrets || self.masked || is_section(key),
            masked: self.masked || (self.secrets && !value_shown(key)),
            names: NAME_LISTS.contains(&key),
        }
    }

    /// The context of an item of a list in this one: a scalar item in a
    /// section is masked unless the list is one of names ([`NAME_LISTS`]); a
    /// collection is looked into.
    fn item(self, scalar: bool) -> Ctx {
        Ctx {
            secrets: self.secrets,
            masked: self.masked || (scalar && self.secrets && !self.names),
            names: false,
        }
    }
}

struct Scanner<'t> {
    text: &'t str,
    marks: Vec<Range<usize>>,
}

impl Scanner<'_> {
    fn mark(&mut self, range: Range<usize>) {
        if range.start < range.end {
            self.marks.push(range);
        }
    }

    /// Where the line holding byte `at` ends (its `\n`, or the text's end).
    fn line_end(&self, at: usize) -> usize {
        self.text
            .get(at..)
            .and_then(|rest| rest.find('\n'))
            .map_or(self.text.len(), |i| at + i)
    }

    /// The block structure, line by line.
    fn block(&mut self) {
        let text = self.text;
        // The keys above the line: their column and name.
        let mut stack: Vec<(usize, String)> = Vec::new();
        // The column of a key whose value is masked, while lines below it
        // may still be part of that value.
        // and whether that value has no text yet (it opens below its key).
        let mut value_of: Option<(usize, bool)> = None;
        let mut start = 0;
        while start < text.len() {
            let end = self.line_end(start);
            let line = text[start..end]
                .strip_suffix('\r')
                .unwrap_or(&text[start..end]);
            let next = end + 1;
            let indent = blanks(line);
            let content = &line[indent..];
            if content.is_empty() {
                start = next;
                continue;
            }
            let (items, rest) = after_items(content);
            if let Some((k, pending)) = value_of {
                // More indented, an item at its indentation, or no key and
                // no item that starts another entry; below a value that has
                // nothing yet (`value: |`), also a line that starts no entry
                // a manifest has there: the value written without its
                // indentation (`p4ss: w0rd` at column 0 is a key to YAML).
                if indent > k
                    || (indent == k && is_item(content))
                    || (!content.starts_with('#') && !is_item(content) && key_of(rest).is_none())
                    || (pending && !content.starts_with('#') && !ends_value(indent, content, rest))
                {
                    self.mark(start + indent..start + line.len());
                    value_of = Some((k, false));
                    start = next;
                    continue;
                }
                if content.starts_with('#') {
                    start = next;
                    continue;
                }
                value_of = None;
            }
            if content.starts_with('#') {
                start = next;
                continue;
            }
            while stack
                .last()
                .is_some_and(|(col, _)| *col > indent || (*col == indent && !is_item(content)))
            {
                stack.pop();
            }
            let column = indent + items;
            if rest.is_empty() || rest.starts_with('#') {
                start = next;
                continue;
            }
            let ctx = Ctx {
                secrets: stack.iter().any(|(_, k)| is_section(k)),
                masked: false,
                names: stack
                    .last()
                    .is_some_and(|(_, k)| NAME_LISTS.contains(&k.as_str())),
            };
            let at = start + column;
            let (ctx, value_at) = match key_of(rest) {
                Some((key, len, value)) => {
                    while stack.last().is_some_and(|(col, _)| *col >= column) {
                        stack.pop();
                    }
                    if ctx.secrets && !key_shown(&key) {
                        // With its colon: one mask with the value.
                        self.mark(at..at + len + rest[len..].find(':').map_or(0, |c| c + 1));
                    }
                    let value_ctx = ctx.value_of(&key);
                    stack.push((column, key));
                    (value_ctx, at + value)
                }
                None => (ctx.item(!rest.starts_with(['{', '['])), at),
            };
            let after = self.value(value_at, ctx);
            if ctx.masked {
                let opens_below = after <= end && opens_below(&text[value_at.min(end)..end]);
                value_of = Some((column, opens_below));
            }
            start = self.line_end(after.max(end)) + 1;
        }
    }

    /// A value in block context that starts at byte `at` (its line's end when
    /// it is on the lines below); returns where it ends.
    fn value(&mut self, at: usize, ctx: Ctx) -> usize {
        let text = self.text;
        let end = self.line_end(at);
        let mut p = at;
        // Tags and anchors before the value.
        while text[p..end].starts_with(['!', '&']) {
            p += text[p..end].find([' ', '\t']).unwrap_or(end - p);
            p += blanks(&text[p..end]);
        }
        let first = text[p..end].chars().next();
        let done = match first {
            None => return end,
            // A comment (`value: #x` is no value, but it may be meant as one).
            Some('#') => end,
            Some('"' | '\'') => quoted_end(text, p),
            Some('{' | '[') => self.flow(p, ctx),
            _ => end,
        };
        if ctx.masked {
            // The value, and whatever follows it on its last line.
            self.mark(at..self.line_end(done.min(text.len())));
        }
        done
    }

    /// A flow collection that opens at byte `at`, in context `ctx`; returns
    /// where it ends (after its closing bracket, or the text's end).
    fn flow(&mut self, at: usize, ctx: Ctx) -> usize {
        struct Level {
            map: bool,
            ctx: Ctx,
            key: Option<String>,
            colon: bool,
            /// Where it opens, when it is masked as a whole.
            masked_from: Option<usize>,
        }
        impl Level {
            /// The context of what comes next in this collection (a scalar
            /// or a collection).
            fn next(&self, scalar: bool) -> Ctx {
                if self.colon {
                    self.ctx.value_of(self.key.as_deref().unwrap_or(""))
                } else if self.map {
                    // A key (or a complex one).
                    Ctx {
                        masked: self.ctx.masked || self.ctx.secrets,
                        ..self.ctx
                    }
                } else {
                    self.ctx.item(scalar)
                }
            }
        }
        let text = self.text;
        let bytes = text.as_bytes();
        let mut levels: Vec<Level> = Vec::new();
        let mut i = at;
        while i < bytes.len() {
            let c = bytes[i];
            let blank_before = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r');
            match c {
                b'{' | b'[' => {
                    let outer = levels.last().map_or(ctx, |level| level.ctx);
                    let inner = levels.last().map_or(ctx, |level| level.next(false));
                    levels.push(Level {
                        map: c == b'{',
                        ctx: inner,
                        key: None,
                        colon: false,
                        masked_from: (inner.masked && !outer.masked).then_some(i),
                    });
                    i += 1;
                }
                b'}' | b']' => {
                    i += 1;
                    if let Some(from) = levels.pop().and_then(|level| level.masked_from) {
                        self.mark(from..i);
                    }
                    if levels.is_empty() {
                        return i;
                    }
                }
                b',' => {
                    if let Some(level) = levels.last_mut() {
                        level.key = None;
                        level.colon = false;
                    }
                    i += 1;
                }
                b':' if matches!(
                    bytes.get(i + 1),
                    None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
                ) =>
                {
                    if let Some(level) = levels.last_mut() {
                        level.colon = true;
                    }
                    i += 1;
                }
                b'#' if blank_before => i = self.line_end(i),
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'?' if matches!(bytes.get(i + 1), Some(b' ' | b'\t' | b'\n')) => i += 1,
                _ => {
                    let end = if c == b'"' || c == b'\'' {
                        quoted_end(text, i)
                    } else {
                        plain_end(bytes, i)
                    };
                    let mut end = end.max(i + 1);
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    let Some(level) = levels.last_mut() else {
                        return end;
                    };
                    let scalar = text.get(i..end).unwrap_or_default();
                    let is_key = !level.colon && (level.map || followed_by_colon(bytes, end));
                    let masked = if is_key {
                        let key = scalar.trim_matches(['"', '\'']).to_lowercase();
                        let masked = level.ctx.masked || (level.ctx.secrets && !key_shown(&key));
                        level.key = Some(key);
                        masked
                    } else {
                        level.next(true).masked
                    };
                    if masked {
                        self.mark(i..end);
                    }
                    i = end;
                }
            }
        }
        // Unclosed: a masked collection runs to the end.
        if let Some(from) = levels.iter().find_map(|level| level.masked_from) {
            self.mark(from..text.len());
        }
        text.len()
    }
}

/// Where a plain scalar in a flow collection that starts at byte `at` ends:
/// at a flow indicator, a `:` before a blank or a ` #` (over lines).
fn plain_end(bytes: &[u8], at: usize) -> usize {
    let mut i = at;
    while i < bytes.len() {
        match bytes[i] {
            b',' | b'[' | b']' | b'{' | b'}' if i > at => break,
            b':' if i > at
                && matches!(
                    bytes.get(i + 1),
                    None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
                ) =>
            {
                break
            }
            b'#' if i > at && matches!(bytes[i - 1], b' ' | b'\t' | b'\n') => break,
            _ => i += 1,
        }
    }
    // Without the blanks before what ends it.
    while i > at && matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r') {
        i -= 1;
    }
    i.max(at + 1).min(bytes.len())
}

/// Whether a `:` (after blanks on the same line) follows byte `at`.
fn followed_by_colon(bytes: &[u8], at: usize) -> bool {
    let mut i = at;
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    bytes.get(i) == Some(&b':')
}
