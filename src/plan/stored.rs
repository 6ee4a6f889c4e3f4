//! The plan the build state keeps: every step of the last plan as JSON, its
//! deps, and the digest of the [`Settings`] it was made with.
//!
//! A plan is a pure function of the workspace and the settings (the plan
//! does no I/O). The build state's rule for the load (`engine::state`: the
//! invocation key and every path the load read) decides when the workspace
//! is the last build's; the settings come partly from outside the load
//! (`scone.lock`, the signing keys' paths, the user cache), so they are
//! computed again and compared by digest. When both hold, a build that
//! must run steps (a *dirty* one) takes the plan from here instead of
//! loading every manifest and planning again: that is all this buys, and
//! `docs/performance.md` ("The plan kept with the state") measures it.
//!
//! A kept plan is decoded only where the run may need more of a step than
//! its id: a step the build state says is unaffected, none of whose deps
//! may run, is reused from the state without being looked at, and stands in
//! the plan as an [`Unopened`] step.
//!
//! ```text
//! settings digest (32 bytes)
//! count, then per step: kind, unit, JSON (each a length and its bytes),
//!           deps (count, then indices); numbers as `engine::wire` varints
//! ```
//!
//! The bytes are sealed inside the state's head, with scone's version: a
//! plan never outlives the binary that wrote it.

use rayon::prelude::*;

use std::collections::BTreeMap;

use super::Settings;
use crate::engine::wire::{put_var, put_var_bytes, Reader};
use crate::engine::{Node, Step, StepContext, StepError, StepId, StepOutput};
use crate::steps::base::BaseStep;
use crate::steps::chart::ChartStep;
use crate::steps::copy::CopyStep;
use crate::steps::image::ImageStep;
use crate::steps::layer::LayerStep;
use crate::steps::packages::PackagesStep;
use crate::steps::policy::PolicyStep;
use crate::steps::provenance::ProvenanceStep;
use crate::steps::sbom::SbomStep;
use crate::steps::sign::SignStep;

impl Settings {
    /// What of the settings shapes a plan, hashed. Every field is named
    /// (no `..`): a field added to [`Settings`] must be added here.
    pub fn digest(&self) -> [u8; 32] {
        let Settings {
            target_dir,
            source_date_epoch,
            compression,
            debug,
            signing_key,
            provenance_key,
            cache_dir,
            offline,
            insecure_registries,
            docker_host,
            pinned_bases,
            known_sessions,
            only,
            helm_templates,
            output_yaml,
            apply,
        } = self;
        let text = format!(
            "{:?}",
            (
                (target_dir, source_date_epoch, compression, debug),
                (signing_key, provenance_key, cache_dir, offline),
                (
                    insecure_registries,
                    docker_host,
                    pinned_bases,
                    known_sessions
                ),
                (only, helm_templates, output_yaml, apply.is_some()),
            )
        );
        *blake3::hash(text.as_bytes()).as_bytes()
    }
}

/// The plan `nodes`, made with settings of digest `settings`, as bytes;
/// `None` when a step cannot be kept (an effect: `apply` plans none here).
pub fn encode(nodes: &[Node], settings: &[u8; 32]) -> Option<Vec<u8>> {
    let steps: Vec<String> = nodes
        .par_iter()
        .map(|n| n.step.stored())
        .collect::<Option<_>>()?;
    let size: usize = steps.iter().map(|s| s.len() + 32).sum();
    let mut out = Vec::with_capacity(size + 40);
    out.extend_from_slice(settings);
    put_var(&mut out, nodes.len() as u64);
    for (node, json) in nodes.iter().zip(&steps) {
        let id = node.step.id();
        put_var_bytes(&mut out, id.kind.as_bytes());
        put_var_bytes(&mut out, id.unit.as_bytes());
        put_var_bytes(&mut out, json.as_bytes());
        put_var(&mut out, node.deps.len() as u64);
        for &d in &node.deps {
            put_var(&mut out, d as u64);
        }
    }
    Some(out)
}

/// The plan in `bytes` if it was made with settings of digest `settings`;
/// `None` when it was not, or it does not decode (then the build loads).
/// A step `unaffected` says the run will reuse (given its place in the plan
/// and its id), none of whose deps is decoded, stays [`Unopened`].
pub fn decode(
    bytes: &[u8],
    settings: &[u8; 32],
    unaffected: impl Fn(usize, &StepId) -> bool,
) -> Option<Vec<Node>> {
    let mut r = Reader(bytes);
    if r.take(32)? != settings {
        return None;
    }
    let n = r.var_len()?;
    let mut frames = Vec::with_capacity(n.min(bytes.len()));
    let mut opened: Vec<bool> = Vec::with_capacity(n.min(bytes.len()));
    let text = |r: &mut Reader<'_>| String::from_utf8(r.var_bytes()?.to_vec()).ok();
    for i in 0..n {
        let id = StepId {
            kind: text(&mut r)?,
            unit: text(&mut r)?,
        };
        let json = r.var_bytes()?;
        let count = r.var_len()?;
        let mut deps = Vec::with_capacity(count.min(bytes.len()));
        for _ in 0..count {
            // A plan lists a step after its deps.
            let d = r.var_len()?;
            if d >= i {
                return None;
            }
            deps.push(d);
        }
        opened.push(!unaffected(i, &id) || deps.iter().any(|&d| opened[d]));
        frames.push((id, json, deps));
    }
    if !r.is_empty() {
        return None;
    }
    frames
        .into_par_iter()
        .zip(opened)
        .map(|((id, json, deps), open)| {
            let step = match open {
                true => step(&id.kind, json)?,
                false => Box::new(Unopened { id }),
            };
            Some(Node { step, deps })
        })
        .collect()
}

/// A step of a kept plan that the run reuses from the build state: only its
/// id is known. Running it is a bug, reported as one (never a result).
struct Unopened {
    id: StepId,
}

impl Step for Unopened {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn run(&self, _: &StepContext<'_>) -> Result<StepOutput, StepError> {
        Err(StepError::new(format!(
            "internal: {} of the last plan was to be reused, not run",
            self.id
        )))
    }
}

/// One step from its kind and JSON.
fn step(kind: &str, json: &[u8]) -> Option<Box<dyn Step>> {
    fn of<T: Step + serde::de::DeserializeOwned + 'static>(json: &[u8]) -> Option<Box<dyn Step>> {
        let step: T = serde_json::from_slice(json).ok()?;
        Some(Box::new(step))
    }
    match kind {
        "base" => of::<BaseStep>(json),
        "packages" => of::<PackagesStep>(json),
        "copy" => of::<CopyStep>(json),
        "layer" => of::<LayerStep>(json),
        "image" => of::<ImageStep>(json),
        "sign" => of::<SignStep>(json),
        "sbom" => of::<SbomStep>(json),
        "provenance" => of::<ProvenanceStep>(json),
        "policy" => of::<PolicyStep>(json),
        "chart" => of::<ChartStep>(json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tar::Compression;
    use crate::workspace::LoadOptions;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn settings(debug: bool) -> Settings {
        Settings {
            target_dir: PathBuf::from("/t/target"),
            source_date_epoch: 0,
            compression: Compression::Gzip,
            debug,
            signing_key: PathBuf::from("/k/enclave.pem"),
            provenance_key: PathBuf::from("/k/provenance.pem"),
            cache_dir: PathBuf::from("/c"),
            offline: true,
            insecure_registries: Vec::new(),
            docker_host: None,
            pinned_bases: BTreeMap::new(),
            known_sessions: BTreeMap::new(),
            only: Vec::new(),
            helm_templates: None,
            output_yaml: false,
            apply: None,
        }
    }

    fn planned(fixture: &str, settings: &Settings) -> Vec<Node> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(fixture);
        let ws = crate::workspace::load(&LoadOptions {
            files: vec![dir.join("mesh.yml")],
            cwd: dir,
            target_dir: None,
        })
        .expect("the fixture loads");
        crate::plan::plan(&ws, settings).expect("it plans").nodes
    }

    /// What a step is to the engine: its id, deps, params and inputs.
    fn shown(nodes: &[Node]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {:?} {:?} {:?} {}",
                    n.step.id(),
                    n.deps,
                    n.step.param_pairs(),
                    n.step.inputs(),
                    n.step.cacheable()
                )
            })
            .collect()
    }

    #[test]
    fn a_plan_comes_back_as_it_was_made() {
        let s = settings(true);
        for fixture in ["hello-world", "multi"] {
            let nodes = planned(fixture, &s);
            let bytes = encode(&nodes, &s.digest()).expect("every step of a build is kept");
            let back = decode(&bytes, &s.digest(), |_, _| false).expect("it decodes");
            assert_eq!(shown(&back), shown(&nodes), "{fixture}");
            let kinds: std::collections::BTreeSet<&str> =
                nodes.iter().map(|n| n.step.id().kind.as_str()).collect();
            for kind in [
                "base",
                "copy",
                "layer",
                "image",
                "sign",
                "sbom",
                "provenance",
                "policy",
                "chart",
            ] {
                assert!(
                    kinds.contains(kind),
                    "{fixture} plans no {kind} step: {kinds:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_steps_that_may_run_are_opened() {
        let s = settings(true);
        let nodes = planned("multi", &s);
        let bytes = encode(&nodes, &s.digest()).unwrap();
        let changed = nodes
            .iter()
            .position(|n| n.step.id().kind == "copy")
            .expect("a copy step");
        let changed_id = nodes[changed].step.id().clone();
        let back = decode(&bytes, &s.digest(), |_, id| *id != changed_id).unwrap();
        // What may run: the changed step and, transitively, its dependents.
        let mut may_run = vec![false; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            may_run[i] = i == changed || n.deps.iter().any(|&d| may_run[d]);
        }
        assert!(may_run.iter().filter(|&&m| m).count() >= 4, "{may_run:?}");
        assert!(may_run.iter().any(|&m| !m));
        let (old, new) = (shown(&nodes), shown(&back));
        for (i, n) in back.iter().enumerate() {
            assert_eq!(n.step.id(), nodes[i].step.id());
            assert_eq!(n.deps, nodes[i].deps);
            if may_run[i] {
                assert_eq!(new[i], old[i]);
            } else {
                assert!(
                    n.step.param_pairs().is_empty(),
                    "{} was opened",
                    n.step.id()
                );
            }
        }
    }

    #[test]
    fn a_plan_of_other_settings_or_damaged_is_not_taken() {
        let s = settings(true);
        let nodes = planned("multi", &s);
        let bytes = encode(&nodes, &s.digest()).unwrap();
        let production = settings(false);
        assert_ne!(s.digest(), production.digest());
        assert!(decode(&bytes, &production.digest(), |_, _| false).is_none());
        let mut pinned = settings(true);
        pinned
            .pinned_bases
            .insert("python".into(), "sha256:00".into());
        assert!(decode(&bytes, &pinned.digest(), |_, _| false).is_none());
        assert!(decode(&bytes[..bytes.len() - 1], &s.digest(), |_, _| false).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &s.digest(), |_, _| false).is_none());
        let mut unknown = bytes.clone();
        // The first step's kind: after the digest, the count and its length
        // (one byte each: fewer than 128 steps, a short kind).
        let at = 32 + 1 + 1;
        assert!(nodes.len() < 128);
        unknown[at] = b'X';
        assert!(decode(&unknown, &s.digest(), |_, _| false).is_none());
    }
}
