//! What the next `scone apply` would do with a mesh's session, decided as its
//! `upload` step decides it, for `scone apply --plan` and `scone verify`: the
//! session the upload would send ([`fixed::to_send`]: the `policy` step's
//! session with this load's fixed values and the salt CAS holds) against the
//! session CAS holds ([`SessionRecord::holds`]). A fixed value changed in a
//! service manifest changes only that: the policy under `target/` is the same.
//!
//! Nothing here shows or keeps a value: a [`Comparison`] holds CAS's session
//! as rendered (values back to placeholders) and the names of the secrets
//! whose fixed values differ, and the session filled to compare is dropped.

use std::collections::BTreeMap;

use super::error::CasError;
use super::session::{content_hash, parse_session};
use super::{fixed, SessionRecord};

/// CAS's session against the one the next apply would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// CAS holds what apply would send: it uploads nothing.
    pub unchanged: bool,
    /// CAS's session as the `policy` step renders it ([`fixed::as_rendered`]:
    /// fixed values as placeholders, no predecessor, no salt): what a plan
    /// diffs against `target/policy/`.
    pub rendered: String,
    /// Whether `rendered` has the content of the session the build rendered.
    pub same_template: bool,
    /// The secrets (by name) whose fixed value in CAS is not the one the
    /// service manifests give.
    pub fixed_differ: Vec<String>,
    /// The secrets (by name) the service manifests give a fixed value and
    /// CAS's session holds none for (not declared, or generated there): the
    /// template differs too, and the diff shows it.
    pub fixed_missing: Vec<String>,
    /// Whether CAS's session has a salt scone can read ([`fixed::salt_of`]).
    /// Without one, fixed values cannot be compared as sent: an apply sends
    /// them again, with a new salt.
    pub salted: bool,
    /// Whether the manifests give any fixed value.
    pub has_fixed: bool,
}

impl Comparison {
    /// What differs in the fixed values, as a sentence that names secrets and
    /// never a value; `None` when they are as CAS holds them, or when what
    /// differs is in the template (the diff shows it).
    pub fn fixed_note(&self) -> Option<String> {
        if !self.fixed_differ.is_empty() {
            let names: Vec<String> = self.fixed_differ.iter().map(|n| format!("`{n}`")).collect();
            return Some(format!(
                "the fixed value of {} {} in the service manifests is not the one CAS holds \
                 (values are not shown)",
                if names.len() == 1 {
                    "secret"
                } else {
                    "secrets"
                },
                names.join(", ")
            ));
        }
        if self.unchanged || !self.same_template {
            return None;
        }
        Some(if self.has_fixed && !self.salted {
            "CAS's session holds no salt scone can read, so its fixed values are not compared \
             for this CAS: apply sends them again, with a new salt"
                .to_string()
        } else {
            "the session's fixed values differ from CAS's (values are not shown)".to_string()
        })
    }
}

/// `current` (the session CAS holds, values included) against the session an
/// apply of `template` (the `policy` step's, placeholders in) with `values`
/// (the fixed values of the service manifests, by secret name) would send.
/// Errors (a placeholder without a value, or a value without one: the build
/// is not this load's) name secrets, never values.
pub fn compare(
    current: &SessionRecord,
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<Comparison, CasError> {
    let sent = fixed::to_send(template, values, Some(current))?;
    let unchanged = current.holds(&sent);
    drop(sent);
    let rendered = fixed::as_rendered(&current.yaml);
    let same_template = content_hash(&rendered) == content_hash(template);
    let held: BTreeMap<String, String> = parse_session(&current.yaml)
        .map(|s| {
            s.secrets
                .into_iter()
                .filter_map(|s| Some((s.name, s.value?)))
                .collect()
        })
        .unwrap_or_default();
    let names = |keep: &dyn Fn(Option<&String>, &String) -> bool| -> Vec<String> {
        values
            .iter()
            .filter(|(name, value)| keep(held.get(*name), value))
            .map(|(name, _)| name.clone())
            .collect()
    };
    let fixed_differ = names(&|held, value| held.is_some_and(|h| h != value));
    let fixed_missing = names(&|held, _| held.is_none());
    Ok(Comparison {
        unchanged,
        rendered,
        same_template,
        fixed_differ,
        fixed_missing,
        salted: fixed::salt_of(&current.yaml).is_some(),
        has_fixed: !values.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::session::{
        render, session_hash, with_predecessor, SecretDecl, SecretKind, ServiceInput, SessionInput,
    };

    /// The session the `policy` step renders: a fixed `dbpw`, a generated `gen`.
    fn template() -> String {
        let decl = |name: &str, fixed: bool| SecretDecl {
            name: name.into(),
            kind: SecretKind::Ascii,
            size: if fixed { None } else { Some(12) },
            fixed,
            export_to: vec!["app".into()],
        };
        render(&SessionInput {
            name: "ns".into(),
            services: vec![ServiceInput {
                name: "app".into(),
                image_name: "app".into(),
                mrenclaves: vec!["ab".repeat(32)],
                command: "app".into(),
                pwd: "/".into(),
                environment: vec![("DB".into(), "$$SCONE::dbpw$$".into())],
                fspf_tag: None,
            }],
            secrets: vec![decl("dbpw", true), decl("gen", false)],
            ..SessionInput::default()
        })
        .expect("renders")
    }

    fn values(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("dbpw".to_string(), v.to_string())])
    }

    /// The session CAS holds after an apply of `value` (with a predecessor,
    /// as an update leaves it).
    fn held(value: &str) -> SessionRecord {
        let sent = fixed::to_send(&template(), &values(value), None).expect("fills");
        let yaml = with_predecessor(&sent, Some(&"ab".repeat(32)));
        SessionRecord {
            name: "ns".into(),
            hash: session_hash(&yaml),
            yaml,
            project: None,
        }
    }

    #[test]
    fn the_same_values_are_unchanged_and_another_value_is_named_not_shown() {
        let current = held("alphaValue-1");
        let same = compare(&current, &template(), &values("alphaValue-1")).expect("compares");
        assert!(
            same.unchanged && same.same_template && same.salted,
            "{same:?}"
        );
        assert_eq!(same.fixed_note(), None);

        let other = compare(&current, &template(), &values("betaValue-2")).expect("compares");
        assert!(!other.unchanged && other.same_template, "{other:?}");
        assert_eq!(other.fixed_differ, ["dbpw"]);
        assert!(other.fixed_missing.is_empty());
        let note = other.fixed_note().expect("a note");
        assert!(note.contains("`dbpw`"), "{note}");
        let shown = format!("{other:?} {note}");
        assert!(!shown.contains("alphaValue") && !shown.contains("betaValue"));
    }

    #[test]
    fn an_unsalted_session_is_not_compared_and_says_so() {
        let mut current = held("alphaValue-1");
        let salt = fixed::salt_of(&current.yaml).expect("salted");
        current.yaml = current.yaml.replace(&salt, "not a salt");
        let cmp = compare(&current, &template(), &values("alphaValue-1")).expect("compares");
        assert!(!cmp.unchanged && !cmp.salted && cmp.fixed_differ.is_empty());
        assert!(cmp
            .fixed_note()
            .is_some_and(|n| n.contains("not compared for this CAS")));
    }
}
