//! Tolerances only a test setup may have: a CAS `tolerance` with
//! `--only_for_testing-*` flags (trust any CAS, accept debug enclaves, ignore
//! the signer) and `debug-mode` in `policy.tolerate` (an enclave whose memory
//! a debugger can read). A build warns once per mesh, loudly, naming the file
//! and line; a production build (`--mode production`, or `[signing] mode =
//! "production"` in scone.toml) refuses the mesh.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Pos;
use super::model::{Mesh, StringOrList};

/// The `--only_for_testing-` prefix of SCONE's test-only CAS tolerances.
pub const TESTING_FLAG: &str = "--only_for_testing-";

/// What `mesh` tolerates for testing only, each with where it is written.
/// `source` (the Meshfile's text) places what the parser could not (the
/// items of `policy.tolerate`).
pub fn testing_only(mesh: &Mesh, source: Option<&str>) -> Vec<(String, Pos)> {
    let mut found = Vec::new();
    for cas in &mesh.cas {
        if let Some(t) = &cas.tolerance {
            for flag in t.value.split_whitespace() {
                if flag.starts_with(TESTING_FLAG) {
                    found.push((flag.to_string(), t.pos));
                }
            }
        }
    }
    if let Some(tolerate) = &mesh.policy.tolerate {
        if tolerate.items().iter().any(|i| i == "debug-mode") {
            let pos = match tolerate {
                StringOrList::One(s) => s.pos,
                StringOrList::Many(items) => items
                    .iter()
                    .find(|i| i.value.trim() == "debug-mode")
                    .map(|i| i.pos)
                    .unwrap_or_default(),
            };
            let pos = match (pos.line, source) {
                (0, Some(text)) => find_after(text, "tolerate:", "debug-mode").unwrap_or(pos),
                _ => pos,
            };
            found.push(("debug-mode".to_string(), pos));
        }
    }
    found
}

/// The `policy.tolerate` values of SCONE's session language that scone
/// knows of (CAS may know more: an item far from all of these is passed on
/// without a word).
pub const KNOWN_TOLERATED: [&str; 6] = [
    "debug-mode",
    "hyperthreading",
    "insecure-configuration",
    "insecure-igpu",
    "outdated-tcb",
    "software-hardening-needed",
];

/// A warning for each item of `policy.tolerate` that is not a value scone
/// knows but is close to one (`debug-mod`): a typo there also hides
/// `debug-mode` from the testing-only check above. `source`: see
/// [`testing_only`].
pub fn near_misses(mesh: &Mesh, source: Option<&str>) -> Vec<Diagnostic> {
    let Some(tolerate) = &mesh.policy.tolerate else {
        return Vec::new();
    };
    // The items of a comma string are placed by the text, when it is given.
    let placed: Vec<(String, Pos)> = match tolerate {
        StringOrList::One(s) => s
            .value
            .split(',')
            .map(|i| (i.trim().to_string(), s.pos))
            .collect(),
        StringOrList::Many(items) => items
            .iter()
            .map(|i| (i.value.trim().to_string(), i.pos))
            .collect(),
    };
    placed
        .into_iter()
        .filter(|(item, _)| !item.is_empty() && !KNOWN_TOLERATED.contains(&item.as_str()))
        .filter_map(|(item, pos)| {
            let meant = super::suggest::did_you_mean(&item, KNOWN_TOLERATED.iter().copied())?;
            let in_string = matches!(tolerate, StringOrList::One(_));
            let pos = match source {
                Some(text) if in_string || pos.line == 0 => {
                    find_after(text, "tolerate:", &item).unwrap_or(pos)
                }
                _ => pos,
            };
            Some(
                Diagnostic::warning(
                    ErrorKind::InvalidValue,
                    &mesh.path,
                    pos,
                    format!("`policy.tolerate` item `{item}` is no value scone knows"),
                )
                .with_hint(format!(
                    "did you mean `{meant}`? (it goes into the session as written, and CAS decides)"
                )),
            )
        })
        .collect()
}

/// Where `word` first stands alone in `text` ([`Pos::of_word`]) at or after
/// the first line whose content starts with `key`.
fn find_after(text: &str, key: &str, word: &str) -> Option<Pos> {
    let start = text.lines().position(|l| l.trim_start().starts_with(key))?;
    let from = Pos {
        line: u32::try_from(start + 1).ok()?,
        column: 1,
    };
    Pos::of_word(text, from, word)
}

/// One diagnostic for the testing-only tolerances of `mesh` (none if it has
/// none): a warning, or with `production` an error. `source`: see
/// [`testing_only`].
pub fn diagnostic(mesh: &Mesh, production: bool, source: Option<&str>) -> Option<Diagnostic> {
    let found = testing_only(mesh, source);
    let (_, at) = found.first()?;
    let mut lines: Vec<u32> = found
        .iter()
        .map(|(_, p)| p.line)
        .filter(|l| *l > 0)
        .collect();
    lines.sort_unstable();
    lines.dedup();
    let names: Vec<String> = found.iter().map(|(f, _)| format!("`{f}`")).collect();
    let lines: Vec<String> = lines.iter().map(u32::to_string).collect();
    let what = match lines.len() {
        0 => format!(
            "mesh `{}` tolerates {}",
            mesh.policy.namespace.value,
            names.join(", ")
        ),
        1 => format!(
            "mesh `{}` tolerates {} (line {})",
            mesh.policy.namespace.value,
            names.join(", "),
            lines[0]
        ),
        _ => format!(
            "mesh `{}` tolerates {} (lines {})",
            mesh.policy.namespace.value,
            names.join(", "),
            lines.join(", ")
        ),
    };
    let hint = "remove the `--only_for_testing-*` flags from `cas[].tolerance` and \
                `debug-mode` from `policy.tolerate` before this mesh is deployed";
    Some(if production {
        Diagnostic::new(
            ErrorKind::TestingTolerance,
            &mesh.path,
            *at,
            format!("{what}: a production build refuses tolerances meant for testing"),
        )
        .with_hint(format!(
            "{hint}, or build in debug mode (without `--mode production`)"
        ))
    } else {
        Diagnostic::warning(
            ErrorKind::TestingTolerance,
            &mesh.path,
            *at,
            format!(
                "FOR TESTING ONLY: {what}: its enclaves and CAS are not protected as in \
                 production; `--mode production` refuses it"
            ),
        )
        .with_hint(hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tolerated_value_close_to_a_known_one_is_warned_of_where_it_is() {
        let head = "apiVersion: scone/5.8\nkind: mesh\n";
        for (tolerate, column) in [
            ("[debug-mod, hyperthreading, aepic-leak]", 14),
            ("debug-mod, hyperthreading, aepic-leak", 13),
            ("hyperthreading, debug-mod", 29),
        ] {
            let text =
                format!("{head}policy:\n  namespace: x\n  tolerate: {tolerate}\nservices: []\n");
            let text = text.as_str();
            let (mesh, _) =
                crate::manifest::parse::parse_mesh(text, std::path::Path::new("mesh.yml")).unwrap();
            let warned = near_misses(&mesh, Some(text));
            // `aepic-leak` is far from every value scone knows: passed on.
            assert_eq!(warned.len(), 1, "{text}: {warned:?}");
            let shown = warned[0].to_string();
            assert!(
                shown.contains("`debug-mod` is no value scone knows"),
                "{shown}"
            );
            assert_eq!(
                (warned[0].pos.line, warned[0].pos.column),
                (5, column),
                "{shown}"
            );
            assert!(warned[0]
                .hint
                .as_deref()
                .unwrap_or("")
                .contains("`debug-mode`"));
        }
    }

    #[test]
    fn a_word_is_found_after_its_key() {
        let text = "policy:\n  namespace: x\n  tolerate: [debug-mode, hyperthreading]\n";
        assert_eq!(
            find_after(text, "tolerate:", "debug-mode"),
            Some(Pos {
                line: 3,
                column: 14
            })
        );
        assert_eq!(find_after(text, "ignore:", "debug-mode"), None);
    }
}
