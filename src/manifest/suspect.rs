//! The files discovery could not use, explained: when no service manifest
//! builds a mesh service's image, every `*.yml` / `*.yaml` under the root that
//! looks like a service manifest (a `kind:` close to a service kind, or an
//! `apiVersion: scone/…`) but could not be read, rendered or parsed, and whose
//! `to:` line could be that image, is reported with its own `file:line:col`.
//! Without this, a typo in a service manifest only shows as "no service
//! manifest builds image …" in the Meshfile.

use super::diag::Diagnostic;
use super::located::{Located, Pos};
use super::model::{MESH_KIND, SERVICE_KINDS};
use super::parse;
use super::suggest;
use super::validate;
use std::path::{Path, PathBuf};

/// The top-level `kind:` of a text by a line scan, with where its value starts
/// (works on templates and on YAML that does not parse).
pub fn sniff_kind_at(text: &str) -> Option<Located<String>> {
    text.lines().enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix("kind:")?;
        let value = rest.split(" #").next().unwrap_or("");
        let lead = value.len() - value.trim_start().len();
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let quoted = rest[lead..].starts_with(['"', '\'']);
        let column = "kind:".len() + lead + 1 + usize::from(quoted);
        (!value.is_empty()).then(|| {
            Located::new(
                value.to_string(),
                Pos {
                    line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    column: u32::try_from(column).unwrap_or(u32::MAX),
                },
            )
        })
    })
}

/// Whether the text declares a SCONE `apiVersion` (`scone/…`).
fn scone_api(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("apiVersion:")
            .is_some_and(|v| v.trim().trim_matches(['"', '\'']).starts_with("scone/"))
    })
}

/// The raw value of the first indented `to:` line (the `build.to` of a
/// manifest that does not parse), without comment and quotes.
fn raw_build_to(text: &str) -> Option<&str> {
    text.lines().find_map(|l| {
        let t = l.trim_start();
        (t.len() < l.len())
            .then(|| t.strip_prefix("to:"))
            .flatten()
            .map(|v| v.split(" #").next().unwrap_or("").trim())
            .map(|v| v.trim_matches(['"', '\'']))
    })
}

/// Whether a `to:` value, where each `{{…}}` stands for any text, could be
/// `image`. A manifest with no `to:` line could be anything.
pub fn could_build(text: &str, image: &str) -> bool {
    let Some(to) = raw_build_to(text) else {
        return true;
    };
    let mut parts = Vec::new();
    let mut rest = to;
    while let Some(open) = rest.find("{{") {
        parts.push(&rest[..open]);
        rest = match rest[open..].find("}}") {
            Some(close) => &rest[open + close + 2..],
            None => "",
        };
    }
    parts.push(rest);
    if parts.len() == 1 {
        return to == image;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !image.starts_with(first) || !image[first.len()..].ends_with(last) {
        return false;
    }
    let mut middle = &image[first.len()..image.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(i) => middle = &middle[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether a `kind` is one a user meant as a service kind (a close misspelling).
fn near_service_kind(kind: &str) -> bool {
    suggest::did_you_mean(kind, SERVICE_KINDS.iter().copied()).is_some()
}

/// Why a `*.yml` / `*.yaml` file that is no discovery candidate might have been
/// meant as the service manifest building `image`: not UTF-8, or a `kind` that
/// is no manifest kind. `None` for files that are clearly something else
/// (a Kubernetes manifest, a Meshfile, a CI file) or that cannot build `image`.
pub fn unreadable(path: &Path, bytes: &[u8], image: &str) -> Option<Diagnostic> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes);
            let looks = scone_api(&lossy)
                || sniff_kind_at(&lossy).is_some_and(|k| near_service_kind(&k.value));
            return (looks && could_build(&lossy, image)).then(|| parse::not_utf8(path, bytes, e));
        }
    };
    let kind = sniff_kind_at(text)?;
    if kind.value == MESH_KIND || SERVICE_KINDS.contains(&kind.value.as_str()) {
        return None;
    }
    let looks = scone_api(text) || near_service_kind(&kind.value);
    (looks && could_build(text, image)).then(|| validate::kind_error(&kind, path))
}

/// Every file under `root` (as discovery walks it) that [`unreadable`] reports
/// for `image`, sorted by path.
pub fn unreadable_under(files: &[PathBuf], image: &str) -> Vec<Diagnostic> {
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .filter_map(|p| {
            let bytes =
                crate::regular_file::read(p, crate::regular_file::MAX_MANIFEST_BYTES).ok()?;
            unreadable(p, &bytes, image)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ErrorKind;

    #[test]
    fn kind_is_found_with_its_column() {
        let k = sniff_kind_at("a: 1\nkind: genImag # x\n").unwrap();
        assert_eq!(
            (k.value.as_str(), k.pos),
            ("genImag", Pos { line: 2, column: 7 })
        );
        let q = sniff_kind_at("kind: \"genImag\"\n").unwrap();
        assert_eq!(q.pos, Pos { line: 1, column: 8 });
        assert!(sniff_kind_at("  kind: nested\n").is_none());
    }

    #[test]
    fn a_to_line_with_templates_matches_what_it_could_render_to() {
        let t = "build:\n  to: \"{{REPO}}/app:{{TAG}}\" # x\n";
        assert!(could_build(t, "r.example/app:1"));
        assert!(!could_build(t, "r.example/other:1"));
        assert!(could_build("build:\n  to: r/a:1\n", "r/a:1"));
        assert!(!could_build("build:\n  to: r/a:1\n", "r/a:2"));
        assert!(could_build("build: {}\n", "anything"));
    }

    #[test]
    fn only_files_that_look_like_service_manifests_are_reported() {
        let p = Path::new("s.yml");
        let near = "apiVersion: scone/5.8\nkind: genImag\nbuild:\n  to: r/a:1\n";
        let d = unreadable(p, near.as_bytes(), "r/a:1").expect("reported");
        assert_eq!(
            (d.kind, d.pos),
            (ErrorKind::Kind, Pos { line: 2, column: 7 })
        );
        assert!(d.hint.unwrap().contains("genImage"));
        assert!(
            unreadable(p, near.as_bytes(), "r/b:1").is_none(),
            "another image"
        );
        let k8s = "apiVersion: apps/v1\nkind: Deployment\n";
        assert!(unreadable(p, k8s.as_bytes(), "r/a:1").is_none());
        let mesh = "apiVersion: scone/5.8\nkind: mesh\n";
        assert!(unreadable(p, mesh.as_bytes(), "r/a:1").is_none());
        let latin1 = b"apiVersion: scone/5.8\nkind: genImage\n# caf\xe9\n";
        let d = unreadable(p, latin1, "r/a:1").expect("reported");
        assert_eq!((d.kind, d.pos), (ErrorKind::Io, Pos { line: 3, column: 6 }));
    }
}
