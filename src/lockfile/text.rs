//! A fast path for the canonical text of `scone.lock`: writing it without the
//! generic TOML serializer and reading back exactly what scone writes. A lock of
//! 1,000 images is ~400 kB; the `toml` crate takes several ms each way for it.
//!
//! Both directions only take the plain case (bare or simply quoted keys, strings
//! of printable ASCII without quotes or backslashes) and answer `None` for
//! anything else, so the caller falls back to `toml`: the text and the values are
//! always what `toml` would write and read. The tests hold the two side by side.

use std::collections::BTreeMap;

use super::{BaseLock, ImageLock, Lockfile, SessionLock};

/// A string `toml` writes as `"text"`, unchanged.
fn is_plain(text: &str) -> bool {
    // Without an early exit, so that it is vectorized (every value of a
    // thousand-image lock is checked on each write).
    text.bytes().fold(true, |plain, b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\') & (b != b'\'')
    })
}

/// A key `toml` writes bare.
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn push_key(out: &mut String, key: &str) -> Option<()> {
    if is_bare(key) {
        out.push_str(key);
    } else if is_plain(key) && !key.is_empty() {
        push_string(out, key);
    } else {
        return None;
    }
    Some(())
}

fn push_string(out: &mut String, text: &str) {
    out.push('"');
    out.push_str(text);
    out.push('"');
}

fn push_field(out: &mut String, name: &str, value: &str) -> Option<()> {
    if !is_plain(value) {
        return None;
    }
    out.push_str(name);
    out.push_str(" = ");
    push_string(out, value);
    out.push('\n');
    Some(())
}

/// Writes the section `[table]` and its `[table.key]` sub-tables.
fn push_table<T>(
    out: &mut String,
    table: &str,
    entries: &BTreeMap<String, T>,
    mut fields: impl FnMut(&mut String, &T) -> Option<()>,
) -> Option<()> {
    if entries.is_empty() {
        out.push_str("\n[");
        out.push_str(table);
        out.push_str("]\n");
        return Some(());
    }
    for (key, entry) in entries {
        out.push_str("\n[");
        out.push_str(table);
        out.push('.');
        push_key(out, key)?;
        out.push_str("]\n");
        fields(out, entry)?;
    }
    Some(())
}

/// The body `toml::to_string` gives for `lock` with its version set to
/// `version`, or `None` when a key or value is not plain.
pub(super) fn write(lock: &Lockfile, version: u32) -> Option<String> {
    let mut out = String::with_capacity(128 + 420 * lock.image.len() + 128 * lock.base.len());
    out.push_str("version = ");
    out.push_str(&version.to_string());
    out.push('\n');
    push_table(&mut out, "base", &lock.base, |out, base| {
        push_field(out, "digest", &base.digest)
    })?;
    push_table(&mut out, "image", &lock.image, |out, image| {
        push_field(out, "reference", &image.reference)?;
        push_field(out, "digest", &image.digest)?;
        push_field(out, "mrenclave", &image.mrenclave)?;
        push_field(out, "mrsigner", &image.mrsigner)?;
        push_field(out, "fspf_tag", &image.fspf_tag)
    })?;
    push_table(&mut out, "session", &lock.session, |out, session| {
        push_field(out, "content", &session.content)?;
        match &session.cas_hash {
            Some(hash) => push_field(out, "cas_hash", hash),
            None => Some(()),
        }
    })?;
    Some(out)
}

/// A `"plain"` string or a bare key.
fn parse_key(text: &str) -> Option<&str> {
    match text.strip_prefix('"') {
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            (is_plain(inner) && !inner.is_empty()).then_some(inner)
        }
        None => is_bare(text).then_some(text),
    }
}

/// Which entry the fields being read belong to.
enum Section<'a> {
    Top,
    /// `[base]`, `[image]` or `[session]` with no fields of its own.
    Table,
    Base(&'a str),
    Image(&'a str),
    Session(&'a str),
}

/// Sets a field that must be absent so far (a repeated key is a TOML error: left to `toml`).
fn set(slot: &mut Option<String>, value: &str) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value.to_owned());
    Some(())
}

#[derive(Default)]
struct Fields {
    digest: Option<String>,
    reference: Option<String>,
    mrenclave: Option<String>,
    mrsigner: Option<String>,
    fspf_tag: Option<String>,
    content: Option<String>,
    cas_hash: Option<String>,
}

/// Reads text in the form [`write`] gives (comments and blank lines allowed), or
/// `None` for anything else: every field present exactly once, no other keys.
pub(super) fn read(text: &str) -> Option<Lockfile> {
    let mut version = None;
    let mut section = Section::Top;
    let mut fields = Fields::default();
    let mut lock = Lockfile::default();
    let mut tables_seen = [false; 3];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.strip_suffix(']')?;
            finish(
                &mut lock,
                std::mem::replace(&mut section, Section::Table),
                &mut fields,
            )?;
            let (table, key) = match header.split_once('.') {
                Some((table, key)) => (table, Some(parse_key(key)?)),
                None => (header, None),
            };
            let index = ["base", "image", "session"]
                .iter()
                .position(|t| *t == table)?;
            if key.is_none() {
                if tables_seen[index] {
                    return None;
                }
                tables_seen[index] = true;
            }
            section = match (index, key) {
                (_, None) => Section::Table,
                (0, Some(k)) => Section::Base(k),
                (1, Some(k)) => Section::Image(k),
                (_, Some(k)) => Section::Session(k),
            };
            continue;
        }
        let (name, value) = line.split_once(" = ")?;
        if let Section::Top = section {
            if name != "version" || version.is_some() {
                return None;
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            version = Some(value.parse::<u32>().ok()?);
            continue;
        }
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        if !is_plain(value) {
            return None;
        }
        let slot = match (&section, name) {
            (Section::Base(_), "digest") => &mut fields.digest,
            (Section::Image(_), "reference") => &mut fields.reference,
            (Section::Image(_), "digest") => &mut fields.digest,
            (Section::Image(_), "mrenclave") => &mut fields.mrenclave,
            (Section::Image(_), "mrsigner") => &mut fields.mrsigner,
            (Section::Image(_), "fspf_tag") => &mut fields.fspf_tag,
            (Section::Session(_), "content") => &mut fields.content,
            (Section::Session(_), "cas_hash") => &mut fields.cas_hash,
            _ => return None,
        };
        set(slot, value)?;
    }
    finish(&mut lock, section, &mut fields)?;
    lock.version = version?;
    Some(lock)
}

/// Files the entry just read under its key; a missing field or a key seen
/// before answers `None`.
fn finish(lock: &mut Lockfile, section: Section<'_>, fields: &mut Fields) -> Option<()> {
    let f = std::mem::take(fields);
    let fresh = match section {
        Section::Top | Section::Table => {
            let empty = f.digest.is_none()
                && f.reference.is_none()
                && f.mrenclave.is_none()
                && f.mrsigner.is_none()
                && f.fspf_tag.is_none()
                && f.content.is_none()
                && f.cas_hash.is_none();
            return empty.then_some(());
        }
        Section::Base(key) => lock
            .base
            .insert(key.to_owned(), BaseLock { digest: f.digest? })
            .is_none(),
        Section::Image(key) => lock
            .image
            .insert(
                key.to_owned(),
                ImageLock {
                    reference: f.reference?,
                    digest: f.digest?,
                    mrenclave: f.mrenclave?,
                    mrsigner: f.mrsigner?,
                    fspf_tag: f.fspf_tag?,
                },
            )
            .is_none(),
        Section::Session(key) => lock
            .session
            .insert(
                key.to_owned(),
                SessionLock {
                    content: f.content?,
                    cas_hash: f.cas_hash,
                },
            )
            .is_none(),
    };
    fresh.then_some(())
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
