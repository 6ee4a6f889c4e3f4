//! `$$SCONE::name$$` references in a manifest's values (environment values,
//! `command`; a Meshfile's values in [`super::link`]): finding them, and
//! refusing the ones CAS could not resolve — an empty name, a name no secret
//! of the service has, a part (`name.crt`) its secret's kind does not have.
//!
//! A part names a piece of a certificate: `$$SCONE::cert.crt$$` (the
//! certificate), `.key` (its private key), `.chain` (the chain). Only `x509`
//! and `x509-ca` secrets have parts; an `ascii` or `binary` secret is one
//! value and has none. Of a kind scone keeps opaque for CAS (`private-key`,
//! `service-specific`, …) and of an imported secret, whose kind the
//! exporting service decides, the part is left to CAS.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Located;
use super::model::ServiceManifest;
use super::suggest;
use std::path::Path;

/// The parts of an `x509` / `x509-ca` secret.
pub const CERTIFICATE_PARTS: [&str; 3] = ["crt", "key", "chain"];

/// Every `$$SCONE::name` / `$$SCONE::name$$` in `text`: the name and its byte
/// offset in `text`. Names are `[A-Za-z0-9_.-]+`; a `$$SCONE::` followed by
/// none of those is a reference with an empty name (`""`).
pub fn secret_refs(text: &str) -> Vec<(&str, usize)> {
    const MARK: &str = "$$SCONE::";
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(MARK) {
        let start = from + i;
        let name_start = start + MARK.len();
        let len = text[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .unwrap_or(text.len() - name_start);
        refs.push((&text[name_start..name_start + len], start));
        from = name_start + len;
    }
    refs
}

/// The parts a secret of `kind` has: `None` when scone cannot tell (a kind it
/// keeps opaque for CAS, or an import: `kind` is `None`).
pub fn parts_of(kind: Option<&str>) -> Option<&'static [&'static str]> {
    match kind? {
        "ascii" | "binary" => Some(&[]),
        "x509" | "x509-ca" => Some(&CERTIFICATE_PARTS),
        _ => None,
    }
}

/// Why a reference does not resolve.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved<'a> {
    /// `$$SCONE::$$`: no name at all.
    Empty,
    /// Neither the name nor, for `base.part`, the base is a secret given.
    Undeclared,
    /// `base.part` where `base` is a secret of `kind`, which has no `part`.
    NoSuchPart {
        base: &'a str,
        part: &'a str,
        kind: &'a str,
        parts: &'static [&'static str],
    },
}

/// Resolves `name` among the secrets `kind_of` knows (`Some(kind)` of one,
/// `kind` `None` when unknown, as of an import): the name itself, or for
/// `base.part` the base with a part its kind has.
pub fn resolve<'a>(
    name: &'a str,
    kind_of: impl Fn(&str) -> Option<Option<&'a str>>,
) -> Result<(), Unresolved<'a>> {
    if name.is_empty() {
        return Err(Unresolved::Empty);
    }
    if kind_of(name).is_some() {
        return Ok(());
    }
    let Some((base, part)) = name.rsplit_once('.') else {
        return Err(Unresolved::Undeclared);
    };
    let Some(kind) = kind_of(base) else {
        return Err(Unresolved::Undeclared);
    };
    match (kind, parts_of(kind)) {
        (Some(kind), Some(parts)) if !parts.contains(&part) => Err(Unresolved::NoSuchPart {
            base,
            part,
            kind,
            parts,
        }),
        _ => Ok(()),
    }
}

/// The `invalid-value` of an empty name or a missing part, at `value` in
/// `file`; `None` for [`Unresolved::Undeclared`], which the caller words (a
/// service and a Meshfile say it differently).
pub fn invalid(
    problem: &Unresolved<'_>,
    name: &str,
    file: &Path,
    value: &Located<String>,
) -> Option<Diagnostic> {
    let (message, hint) = match problem {
        Unresolved::Undeclared => return None,
        Unresolved::Empty => (
            "`$$SCONE::` names no secret: the name after `::` is empty".to_string(),
            "write the secret's name, `$$SCONE::name$$` (letters, digits, `_`, `.`, `-`), \
             as the service declares it under `secrets`"
                .to_string(),
        ),
        Unresolved::NoSuchPart {
            base,
            part,
            kind,
            parts,
        } => {
            let message = format!(
                "`$$SCONE::{name}` names part `{part}` of secret `{base}`, \
                 but a secret of kind `{kind}` has no part `{part}`"
            );
            let hint = if parts.is_empty() {
                format!(
                    "reference the whole secret, `$$SCONE::{base}$$`: only a certificate \
                     (kind `x509` or `x509-ca`) has parts ({})",
                    dotted(&CERTIFICATE_PARTS)
                )
            } else {
                let best = suggest::did_you_mean(part, parts.iter().copied())
                    .map(|p| format!("did you mean `$$SCONE::{base}.{p}$$`? "))
                    .unwrap_or_default();
                format!(
                    "{best}a certificate's parts are {}, or the whole secret `$$SCONE::{base}$$`",
                    dotted(parts)
                )
            };
            (message, hint)
        }
    };
    Some(Diagnostic::new(ErrorKind::InvalidValue, file, value.pos, message).with_hint(hint))
}

/// `` `.crt`, `.key`, `.chain` ``.
fn dotted(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("`.{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every reference in a service's environment values and `command` names a
/// secret it declares (with a part its kind has) or imports.
pub fn check_service(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
    let declared: Vec<(&str, Option<&str>)> = m
        .secrets
        .global
        .iter()
        .chain(&m.secrets.local)
        .map(|s| (s.name.value.as_str(), Some(s.kind.value.as_str())))
        .chain(m.secrets.import.iter().map(|s| (s.value.as_str(), None)))
        .collect();
    let kind_of = |name: &str| declared.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
    let values = m
        .environment
        .local
        .iter()
        .chain(&m.environment.global)
        .filter_map(|v| v.value.as_ref())
        .chain(std::iter::once(&m.build.command));
    for value in values {
        for (name, _) in secret_refs(&value.value) {
            let Err(problem) = resolve(name, kind_of) else {
                continue;
            };
            if let Some(diagnostic) = invalid(&problem, name, file, value) {
                out.push(diagnostic);
                continue;
            }
            let names = declared.iter().map(|(n, _)| *n);
            let hint = match suggest::did_you_mean(name, names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("declare it under `secrets: {{ local: [{{ name: {name}, kind: ascii, size: 16 }}] }}` or import it"),
            };
            out.push(
                Diagnostic::new(
                    ErrorKind::UndeclaredSecret,
                    file,
                    value.pos,
                    format!("`$$SCONE::{name}` names no declared or imported secret"),
                )
                .with_hint(hint),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_reference_forms_and_empty_names() {
        let refs = secret_refs("a $$SCONE::one$$-$$SCONE::two and $$SCONE::th.r-e_3$$x $$SCONE::");
        let names: Vec<&str> = refs.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["one", "two", "th.r-e_3", ""]);
        assert_eq!(refs[0].1, 2);
        assert!(secret_refs("no refs, $$SCONE: here").is_empty());
        assert_eq!(secret_refs("$$SCONE::$$")[0].0, "");
    }

    #[test]
    fn parts_resolve_by_kind() {
        let secrets = [
            ("password", Some("ascii")),
            ("blob", Some("binary")),
            ("cert", Some("x509")),
            ("ca", Some("x509-ca")),
            ("tls.v2", Some("ascii")),
            ("own", Some("private-key")),
            ("imported", None),
        ];
        let kind_of = |n: &str| secrets.iter().find(|(s, _)| *s == n).map(|(_, k)| *k);
        for ok in [
            "password",
            "tls.v2",
            "cert",
            "cert.crt",
            "cert.key",
            "ca.chain",
            "own.key",
            "imported.crt",
        ] {
            assert_eq!(resolve(ok, kind_of), Ok(()), "{ok}");
        }
        assert_eq!(resolve("", kind_of), Err(Unresolved::Empty));
        assert_eq!(resolve("nope", kind_of), Err(Unresolved::Undeclared));
        assert_eq!(resolve("nope.crt", kind_of), Err(Unresolved::Undeclared));
        for (bad, part) in [
            ("password.crt", "crt"),
            ("blob.key", "key"),
            ("cert.pem", "pem"),
        ] {
            assert!(
                matches!(resolve(bad, kind_of), Err(Unresolved::NoSuchPart { part: p, .. }) if p == part),
                "{bad}"
            );
        }
    }
}
