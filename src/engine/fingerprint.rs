//! Fingerprints: when a step must run again.
//!
//! A step's fingerprint is blake3 over an ordered list of `(label, digest)`
//! pairs. If the fingerprint has an action record whose blobs are all intact,
//! the step is **fresh**; otherwise it runs. Every value that can change a
//! step's output goes in, and nothing else:
//!
//! | label                  | value                                            | why |
//! |------------------------|--------------------------------------------------|-----|
//! | `tool`                 | scone's version + a digest of its own sources    | a new scone may produce different bytes |
//! | `step`                 | the step kind (`copy`, `layer`, …)               | two kinds never share results |
//! | `param:<name>`         | blake3 of each canonical parameter value         | command, pwd, env, settings, base reference… |
//! | `file:<label>`         | blake3 of the content + kind + exec bit of each declared input file; of a `dir:` base's files, every permission bit | the sources; a copied file's layer keeps its exec bit, a base's every bit (`/tmp` stays 1777) |
//! | `dir:<label>`          | blake3 of the listing + every permission bit of each folder of a `dir:` base | its layer keeps the folders' modes |
//! | `dep:<kind>:<unit>`    | the dep's [`output_digest`](super::record::ActionRecord::output_digest) | upstream *outputs*, not fingerprints: a rebuilt dep with identical output leaves us fresh (early cut-off) |
//!
//! Not included, on purpose: paths of the workspace or `target/` (a moved
//! checkout stays fresh), timestamps (a rewrite with identical bytes is fresh),
//! the unit name except through params (renaming a service re-runs only what
//! names it), and secret values (they never reach a step).
//!
//! The pairs are kept for the last successful run of each step, so
//! `--explain` can print the **first** pair that differs — the reason the
//! step is dirty — as a label a user recognises (`file:print_env.py`,
//! `param:command`, `dep:layer:python_hello_user`).

use std::collections::BTreeMap;

/// A digest of scone's own sources, computed by build.rs.
pub const SOURCE_DIGEST: &str = env!("SCONE_SOURCE_DIGEST");

/// The `tool` value.
pub fn tool_version() -> String {
    format!("{}+{}", env!("CARGO_PKG_VERSION"), SOURCE_DIGEST)
}

/// What a step's params add to its fingerprint: `param:<name>` and the
/// digest of each value. A mesh step's params describe every service, so the
/// scheduler makes them ahead of time, while the steps before it run (and a
/// stored plan keeps them, see [`super::Step::param_pairs`]).
pub fn param_pairs(params: &BTreeMap<String, String>) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(name, value)| {
            let digest = blake3::hash(value.as_bytes()).to_hex().to_string();
            (format!("param:{name}"), digest)
        })
        .collect()
}

/// An ordered list of fingerprint inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pairs: Vec<(String, String)>,
}

impl Fingerprint {
    /// Starts a fingerprint for a step kind.
    pub fn new(kind: &str) -> Fingerprint {
        let mut fp = Fingerprint::default();
        fp.push("tool", tool_version());
        fp.push("step", kind.to_string());
        fp
    }

    pub fn push(&mut self, label: impl Into<String>, digest: String) {
        self.pairs.push((label.into(), digest));
    }

    /// A step's param pairs (see [`param_pairs`]).
    pub fn param_pairs(&mut self, pairs: Vec<(String, String)>) {
        self.pairs.extend(pairs);
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The pairs, moved out (to keep as the step's last inputs).
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// blake3 over the pairs, each length-prefixed so no two lists collide.
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (label, value) in &self.pairs {
            for part in [label, value] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

/// Why a step is dirty: the first input that differs from its last run.
pub fn explain(previous: Option<&[(String, String)]>, current: &[(String, String)]) -> String {
    let Some(previous) = previous else {
        return "never built".to_string();
    };
    let old: BTreeMap<&str, &str> = previous
        .iter()
        .map(|(l, d)| (l.as_str(), d.as_str()))
        .collect();
    for (label, digest) in current {
        match old.get(label.as_str()) {
            None => return format!("{label} is new"),
            Some(d) if d != digest => return format!("{label} changed"),
            _ => {}
        }
    }
    let now: std::collections::BTreeSet<&str> = current.iter().map(|(l, _)| l.as_str()).collect();
    if let Some((label, _)) = previous.iter().find(|(l, _)| !now.contains(l.as_str())) {
        return format!("{label} was removed");
    }
    "its cached outputs are missing or damaged".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn digest_depends_on_every_pair_and_order() {
        let mut a = Fingerprint::new("copy");
        a.push("file:x", "1".into());
        let mut b = Fingerprint::new("copy");
        b.push("file:x", "2".into());
        let mut c = Fingerprint::new("layer");
        c.push("file:x", "1".into());
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        let mut d = Fingerprint::new("copy");
        d.push("file:x", "1".into());
        assert_eq!(a.digest(), d.digest());
    }

    #[test]
    fn length_prefix_prevents_ambiguity() {
        let mut a = Fingerprint::default();
        a.push("ab", "c".into());
        let mut b = Fingerprint::default();
        b.push("a", "bc".into());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn explain_names_first_difference() {
        let old = fp(&[("tool", "1"), ("file:a", "x"), ("file:b", "y")]);
        assert_eq!(explain(None, &old), "never built");
        let new = fp(&[("tool", "1"), ("file:a", "x"), ("file:b", "z")]);
        assert_eq!(explain(Some(&old), &new), "file:b changed");
        let added = fp(&[
            ("tool", "1"),
            ("file:a", "x"),
            ("file:b", "y"),
            ("file:c", "q"),
        ]);
        assert_eq!(explain(Some(&old), &added), "file:c is new");
        let removed = fp(&[("tool", "1"), ("file:a", "x")]);
        assert_eq!(explain(Some(&old), &removed), "file:b was removed");
    }
}
