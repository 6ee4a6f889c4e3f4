//! Secret references (`$$SCONE::name$$`) inside environment values and the
//! comma-string form of the mesh's `tolerate` / `ignore_advisories` lists.

const PREFIX: &str = "$$SCONE::";
const SUFFIX: &str = "$$";

/// Characters a secret reference may contain after `$$SCONE::`: the secret name
/// and an optional `:field` selector (e.g. `$$SCONE::cert:crt$$`).
fn is_ref_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Splits `text` at each reference: yields `(before, Some(reference body))` pairs,
/// the body being what follows `$$SCONE::` up to the end of the reference, and
/// whether the reference was already closed by `$$`.
fn scan(text: &str, mut on_ref: impl FnMut(&str, &str, bool)) -> usize {
    let mut rest = text;
    let mut consumed = 0;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let len = after
            .char_indices()
            .find(|&(_, c)| !is_ref_char(c))
            .map_or(after.len(), |(i, _)| i);
        let body = &after[..len];
        let closed = after[len..].starts_with(SUFFIX);
        on_ref(&rest[..at], body, closed);
        let used = at + PREFIX.len() + len + if closed { SUFFIX.len() } else { 0 };
        consumed += used;
        rest = &rest[used..];
    }
    consumed
}

/// Rewrites every `$$SCONE::x` that lacks its closing `$$` into `$$SCONE::x$$`;
/// references already closed and all other text stay byte-for-byte the same.
/// Values are never resolved here: the session keeps references, CAS fills them in.
pub fn normalize_secret_refs(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let consumed = scan(text, |before, body, _closed| {
        out.push_str(before);
        out.push_str(PREFIX);
        out.push_str(body);
        out.push_str(SUFFIX);
    });
    out.push_str(&text[consumed..]);
    out
}

/// The secret names referenced by `text` (the part before any `:field`), in order
/// of appearance, without duplicates.
pub fn secret_refs(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    scan(text, |_, body, _| {
        let name = body.split(':').next().unwrap_or(body);
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    });
    names
}

/// Splits the comma-string form of a list (`"debug-mode, outdated-tcb"`) into its
/// trimmed, non-empty items. Whitespace also separates items, so the seed's
/// space-separated forms work too.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_references_are_closed_and_closed_ones_kept() {
        assert_eq!(
            normalize_secret_refs("$$SCONE::password"),
            "$$SCONE::password$$"
        );
        assert_eq!(
            normalize_secret_refs("$$SCONE::password$$"),
            "$$SCONE::password$$"
        );
        assert_eq!(
            normalize_secret_refs("u=$$SCONE::a and $$SCONE::b$$/x $$SCONE::c:crt"),
            "u=$$SCONE::a$$ and $$SCONE::b$$/x $$SCONE::c:crt$$"
        );
        assert_eq!(
            normalize_secret_refs("no refs: $$ $ SCONE"),
            "no refs: $$ $ SCONE"
        );
        assert_eq!(normalize_secret_refs(""), "");
    }

    #[test]
    fn references_are_listed_by_secret_name() {
        assert_eq!(
            secret_refs("$$SCONE::a$$ $$SCONE::cert:crt $$SCONE::a"),
            vec!["a".to_string(), "cert".to_string()]
        );
        assert!(secret_refs("plain").is_empty());
    }

    #[test]
    fn comma_and_space_lists_split() {
        assert_eq!(
            split_list("debug-mode, outdated-tcb,hyperthreading"),
            vec!["debug-mode", "outdated-tcb", "hyperthreading"]
        );
        assert_eq!(split_list(" a  b ,, "), vec!["a", "b"]);
        assert!(split_list("").is_empty());
    }
}
