//! The plan of the last build, stored with its workspace snapshot, so that an
//! incremental build of a thousand services makes the step objects of the
//! few steps that run, not of all of them.
//!
//! A plan is a function of the workspace and the
//! [`Settings`](super::Settings). The snapshot the plan is stored in holds the
//! workspace (and is used only while no manifest, `scone.toml` or
//! `scone.lock` changed since, see `engine::noop`); the plan is used only if
//! [`Settings::digest`](super::Settings::digest) is the one it was planned
//! under (a base pin that `scone.lock` gained since, say, makes it stale).
//! What is stored per node:
//!
//! | value | why |
//! |---|---|
//! | the step's kind and unit | its [`StepId`], which the engine asks of every node |
//! | the indices of its deps | the graph |
//! | `cacheable`, `dep_reads`, `prepare_without` | the engine asks them of nodes it may never run |
//! | a mesh step's param pairs (name and digest of each param) | its params describe every service: hashed once, not per build (what the engine needs of them for the fingerprint) |
//! | the step's fields, encoded | the step itself, decoded the first time the engine needs more than the above |
//!
//! Every field of every step kind is written and read back (the codecs in
//! `stored/codec.rs` destructure each step, so a new field does not compile
//! until it is stored). `apply` adds steps that are not stored (upload,
//! push): its plans are never stored.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::engine::wire::{put_var, put_var_bytes, Reader};
use crate::engine::{
    DepReads, Input, Node, Prepared, Step, StepContext, StepError, StepId, StepOutput,
};

mod codec;
use codec::{decode_step, opt, put_opt, put_str, text, KINDS};

const MAGIC: &[u8; 8] = b"sconePL1";

/// A step kind the plan can store.
pub(super) trait Stored: Step + Sized + 'static {
    const KIND: &'static str;
    /// Whether [`Step::param_pairs`] are stored too: those of a mesh step,
    /// whose params describe every service.
    const STORE_PARAMS: bool = false;
    /// Writes every field but the id.
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self>;
}

/// Writes the nodes of a plan as they are added; see [`Recorder::finish`].
pub(super) struct Recorder {
    out: Vec<u8>,
    nodes: u64,
}

impl Recorder {
    pub(super) fn new(settings: [u8; 32]) -> Recorder {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&settings);
        // The node count, filled in by `finish`.
        out.extend_from_slice(&[0; 8]);
        Recorder { out, nodes: 0 }
    }

    pub(super) fn add<S: Stored>(&mut self, step: &S, deps: &[usize]) {
        let out = &mut self.out;
        let tag = KINDS
            .iter()
            .position(|k| *k == S::KIND)
            .unwrap_or(usize::MAX);
        put_var(out, tag as u64);
        put_str(out, &step.id().unit);
        put_var(out, deps.len() as u64);
        for &d in deps {
            put_var(out, d as u64);
        }
        out.push(u8::from(step.cacheable()));
        out.push(u8::from(step.dep_reads() == DepReads::Fields));
        put_opt(out, step.prepare_without());
        if S::STORE_PARAMS {
            let pairs = step.param_pairs();
            put_var(out, pairs.len() as u64 + 1);
            for (k, v) in &pairs {
                put_str(out, k);
                put_str(out, v);
            }
        } else {
            put_var(out, 0);
        }
        let mut body = Vec::with_capacity(256);
        step.encode(&mut body);
        put_var_bytes(out, &body);
        self.nodes += 1;
    }

    /// The stored plan: the settings' digest, the node count, the nodes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let at = MAGIC.len() + 32;
        self.out[at..at + 8].copy_from_slice(&self.nodes.to_le_bytes());
        self.out
    }
}

/// The settings digest a stored plan was made under.
pub fn settings_of(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.strip_prefix(MAGIC)?.get(..32)?.try_into().ok()
}

/// The nodes of the stored plan at `range` in `bytes`, their steps decoded
/// when first needed; `None` if it is damaged.
pub fn decode(bytes: &Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Option<Vec<Node>> {
    let plan = bytes.get(range.clone())?;
    let mut r = Reader(plan.strip_prefix(MAGIC)?.get(32..)?);
    let n = r.len()?;
    let mut nodes = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let tag = usize::try_from(r.var()?).ok()?;
        let kind = KINDS.get(tag)?;
        let id = StepId::new(kind, std::str::from_utf8(r.var_bytes()?).ok()?);
        let n_deps = r.var_len()?;
        let mut deps = Vec::with_capacity(n_deps.min(1 << 24));
        for _ in 0..n_deps {
            let d = usize::try_from(r.var()?).ok()?;
            // Deps come before their dependents.
            if d >= nodes.len() {
                return None;
            }
            deps.push(d);
        }
        let flags = r.take(2)?;
        let prepare_without = opt(&mut r)?;
        let param_pairs = match r.var_len()? {
            0 => None,
            n => {
                let mut pairs = Vec::with_capacity(n.min(1 << 16));
                for _ in 1..n {
                    pairs.push((text(&mut r)?, text(&mut r)?));
                }
                Some(pairs)
            }
        };
        let len = r.var_len()?;
        let start = range.start + (plan.len() - r.0.len());
        r.take(len)?;
        nodes.push(Node {
            step: Box::new(LazyStep {
                id,
                tag,
                cacheable: flags[0] == 1,
                dep_reads: if flags[1] == 1 {
                    DepReads::Fields
                } else {
                    DepReads::Whole
                },
                prepare_without,
                param_pairs,
                bytes: Arc::clone(bytes),
                body: start..start + len,
                step: OnceLock::new(),
            }),
            deps,
        });
    }
    r.is_empty().then_some(nodes)
}

/// A stored step: what the engine asks of every node, at hand; the step
/// itself decoded on first use.
struct LazyStep {
    id: StepId,
    tag: usize,
    cacheable: bool,
    dep_reads: DepReads,
    prepare_without: Option<String>,
    /// The param pairs, if stored.
    param_pairs: Option<Vec<(String, String)>>,
    bytes: Arc<Vec<u8>>,
    body: std::ops::Range<usize>,
    step: OnceLock<Box<dyn Step>>,
}

impl LazyStep {
    fn step(&self) -> &dyn Step {
        self.step
            .get_or_init(|| {
                let mut r = Reader(self.bytes.get(self.body.clone()).unwrap_or_default());
                decode_step(self.tag, self.id.clone(), &mut r)
                    .filter(|_| r.is_empty())
                    .unwrap_or_else(|| {
                        Box::new(Damaged {
                            id: self.id.clone(),
                        })
                    })
            })
            .as_ref()
    }
}

impl Step for LazyStep {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn params(&self) -> BTreeMap<String, String> {
        self.step().params()
    }
    fn param_pairs(&self) -> Vec<(String, String)> {
        match &self.param_pairs {
            Some(pairs) => pairs.clone(),
            None => self.step().param_pairs(),
        }
    }
    fn inputs(&self) -> Vec<Input> {
        self.step().inputs()
    }
    fn cacheable(&self) -> bool {
        self.cacheable
    }
    fn dep_reads(&self) -> DepReads {
        self.dep_reads
    }
    fn prepare_without(&self) -> Option<&str> {
        self.prepare_without.as_deref()
    }
    fn prepare(&self, cx: &StepContext<'_>) -> Result<Option<Prepared>, StepError> {
        self.step().prepare(cx)
    }
    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        self.step().run(cx)
    }
}

/// A stored step that does not decode (the stored plan is checked against
/// the record's digest before it is used, so this is a bug, not a damaged
/// file): it fails, and its fingerprint matches nothing cached.
struct Damaged {
    id: StepId,
}

impl Step for Damaged {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("stored-plan".into(), "damaged".into())])
    }
    fn run(&self, _: &StepContext<'_>) -> Result<StepOutput, StepError> {
        Err(StepError::new(
            "the plan stored by the last build does not decode: run `scone clean` and build again",
        ))
    }
}

#[cfg(test)]
mod tests;
