//! Dep fields kept across runs: the text fields a step read from its deps'
//! records, by each dep's output digest, so that the next run of a mesh step
//! over a thousand services parses only the records of the services whose
//! output changed (see [`super::step::DepReads::Fields`] and
//! [`super::step::StepContext::dep_fields`]).
//!
//! This is sound because an output digest names its record exactly: the
//! fields kept under a digest are that record's, whichever run read them.
//! What a step makes from them is then what it would make from the parsed
//! records, so the memo is not a fingerprint input.
//!
//! One file per step, `target/.scone/memo/<blake3 of the step id>.bin`:
//!
//! | part      | content                                                   |
//! |-----------|-----------------------------------------------------------|
//! | magic     | `sconeDF1`                                                |
//! | tool      | [`super::fingerprint::tool_version`]: another scone's memo is not read |
//! | step      | the step id: a file copied or renamed is not read          |
//! | sections  | one per dep kind and field names a run (and its `prepare`) asked [`StepContext::dep_fields`] for: dep kind, field names, then per dep its digest and that many values |
//! | checksum  | blake3 of all of the above ([`super::wire::seal`])         |
//!
//! A torn, foreign or damaged file reads as empty, which costs parsing and
//! nothing else; so it is written without an fsync
//! ([`crate::durable::write_checked`]).
//!
//! [`StepContext::dep_fields`]: super::step::StepContext::dep_fields

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::fingerprint::tool_version;
use super::step::StepId;
use super::wire::{put_bytes, put_var, seal, unseal, Reader};

const MAGIC: &[u8; 8] = b"sconeDF1";

fn path_of(root: &Path, id: &StepId) -> PathBuf {
    let name = blake3::hash(id.to_string().as_bytes()).to_hex();
    root.join("memo").join(format!("{}.bin", &name[..32]))
}

/// The sections of a step's memo file, checked whole.
#[derive(Debug, Default)]
pub struct Memo {
    sections: Vec<u8>,
}

/// The head of a section: the dep kind and the field names it holds.
fn put_head(out: &mut Vec<u8>, kind: &str, names: &[&str]) {
    put_bytes(out, kind.as_bytes());
    put_var(out, names.len() as u64);
    for name in names {
        put_bytes(out, name.as_bytes());
    }
}

impl Memo {
    /// The memo `id`'s last run left under the store `root`; empty if there
    /// is none this scone can trust.
    pub fn load(root: &Path, id: &StepId) -> Memo {
        std::fs::read(path_of(root, id))
            .ok()
            .and_then(|bytes| {
                let body = unseal(&bytes)?;
                let mut r = Reader(body.strip_prefix(MAGIC)?);
                let tool = r.bytes()?;
                let step = r.bytes()?;
                (tool == tool_version().as_bytes() && step == id.to_string().as_bytes())
                    .then(|| r.0.to_vec())
            })
            .map(|sections| Memo { sections })
            .unwrap_or_default()
    }

    /// The values kept for deps of `kind` with exactly these field `names`,
    /// by dep digest, in `names` order.
    pub fn section(&self, kind: &str, names: &[&str]) -> HashMap<&str, Vec<&str>> {
        let mut head = Vec::new();
        put_head(&mut head, kind, names);
        let mut r = Reader(&self.sections);
        while !r.is_empty() {
            let found = r.0.starts_with(&head);
            let Some(entries) = skip_head(&mut r).and_then(|width| entries(&mut r, width)) else {
                break;
            };
            if found {
                return entries;
            }
        }
        HashMap::new()
    }
}

/// Reads past a section's head; its number of field names.
fn skip_head(r: &mut Reader<'_>) -> Option<usize> {
    r.bytes()?;
    let width = r.var()?;
    for _ in 0..width {
        r.bytes()?;
    }
    usize::try_from(width).ok()
}

fn entries<'m>(r: &mut Reader<'m>, width: usize) -> Option<HashMap<&'m str, Vec<&'m str>>> {
    let text = |r: &mut Reader<'m>| std::str::from_utf8(r.bytes()?).ok();
    let n = usize::try_from(r.var()?).ok()?;
    let mut out = HashMap::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let digest = text(r)?;
        let values = (0..width).map(|_| text(r)).collect::<Option<Vec<_>>>()?;
        out.insert(digest, values);
    }
    Some(out)
}

/// A section being written: what this run read of its deps of one kind.
#[derive(Debug)]
pub struct Section {
    bytes: Vec<u8>,
    count: u64,
    entries: Vec<u8>,
}

impl Section {
    pub fn new(kind: &str, names: &[&str]) -> Section {
        let mut bytes = Vec::new();
        put_head(&mut bytes, kind, names);
        Section {
            bytes,
            count: 0,
            entries: Vec::with_capacity(256 * 64),
        }
    }

    /// Keeps the `values` of the dep with this output `digest`.
    pub fn push(&mut self, digest: &str, values: &[&str]) {
        put_bytes(&mut self.entries, digest.as_bytes());
        for v in values {
            put_bytes(&mut self.entries, v.as_bytes());
        }
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        put_var(&mut self.bytes, self.count);
        self.bytes.extend_from_slice(&self.entries);
        self.bytes
    }
}

/// Writes the memo of `id`'s run that just succeeded, replacing the last one.
/// Sections of one dep kind and field names (a [`super::step::Step::prepare`]'s
/// and its run's) are written as one. A failure to write costs the next run
/// parsing, so it is not an error.
pub fn save(root: &Path, id: &StepId, sections: Vec<Section>) {
    let mut merged: Vec<Section> = Vec::with_capacity(sections.len());
    for s in sections {
        match merged.iter_mut().find(|m| m.bytes == s.bytes) {
            Some(m) => {
                m.entries.extend_from_slice(&s.entries);
                m.count += s.count;
            }
            None => merged.push(s),
        }
    }
    let sections = merged;
    let mut out = Vec::with_capacity(
        64 + sections
            .iter()
            .map(|s| s.bytes.len() + s.entries.len() + 10)
            .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, tool_version().as_bytes());
    put_bytes(&mut out, id.to_string().as_bytes());
    for s in sections {
        out.extend_from_slice(&s.finish());
    }
    seal(&mut out);
    let _ = crate::durable::write_checked(&path_of(root, id), &out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dep::{Dep, DepRecord};
    use crate::engine::step::StepContext;
    use crate::engine::store::{ActionRecord, Store};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    fn sign(unit: &str, mrenclave: &str) -> (StepId, Arc<ActionRecord>) {
        let id = StepId::new("sign", unit);
        let record = ActionRecord {
            step: id.to_string(),
            fingerprint: format!("fp-{unit}"),
            record: serde_json::json!({"mrenclave": mrenclave, "fspf_tag": format!("tag-{unit}")}),
            files: BTreeMap::new(),
            publish: Vec::new(),
            info: serde_json::Value::Null,
        };
        (id, Arc::new(record))
    }

    /// Deps whose records are in memory.
    fn ready(deps: &[(StepId, Arc<ActionRecord>)]) -> Vec<Dep<'_>> {
        deps.iter()
            .map(|(id, r)| {
                Dep::new(
                    id,
                    r.output_digest().into(),
                    DepRecord::Ready(Arc::clone(r)),
                )
            })
            .collect()
    }

    /// A step's context over `deps` with `memo`, nothing else.
    fn context<'a>(store: &'a Store, deps: &'a [Dep<'a>], memo: &'a Memo) -> StepContext<'a> {
        StepContext {
            inputs: &[],
            deps,
            scratch: store.root(),
            store,
            whole: false,
            memo,
            kept: Mutex::new(Vec::new()),
            prepared: Mutex::new(None),
        }
    }

    /// Runs `dep_fields("sign", [mrenclave, fspf_tag])` over `deps` with the
    /// memo under `store`; the values by unit, which deps were parsed, and
    /// the section kept for the next run.
    #[allow(clippy::type_complexity)]
    fn read(
        store: &Store,
        deps: &[(StepId, Arc<ActionRecord>)],
    ) -> (BTreeMap<String, Vec<String>>, Vec<bool>, Vec<Section>) {
        let memo = Memo::load(store.root(), &StepId::new("policy", "mesh"));
        let deps = ready(deps);
        let cx = context(store, &deps, &memo);
        let fields = cx.dep_fields("sign", &["mrenclave", "fspf_tag"]).unwrap();
        let values = deps
            .iter()
            .filter_map(|d| {
                let v = fields.get(&d.id().unit)?;
                Some((
                    d.id().unit.clone(),
                    v.iter().map(|s| s.to_string()).collect(),
                ))
            })
            .collect();
        let parsed = deps.iter().map(Dep::was_parsed).collect();
        drop(fields);
        (values, parsed, cx.kept.into_inner().unwrap())
    }

    #[test]
    fn dep_fields_parse_only_the_deps_the_last_run_did_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = StepId::new("policy", "mesh");
        let deps = vec![sign("a", "m-a"), sign("b", "m-b"), sign("a", "second")];
        let (values, parsed, kept) = read(&store, &deps);
        assert_eq!(
            values["a"],
            ["m-a", "tag-a"],
            "the first dep of a unit wins"
        );
        assert_eq!(values["b"], ["m-b", "tag-b"]);
        assert_eq!(
            parsed,
            [true, true, false],
            "no memo yet: each unit's dep parsed"
        );
        save(store.root(), &id, kept);

        // b's output changed: only b is parsed; a comes from the memo.
        let deps = vec![sign("a", "m-a"), sign("b", "m-b2")];
        let (values, parsed, kept) = read(&store, &deps);
        assert_eq!(parsed, [false, true]);
        assert_eq!(values["a"], ["m-a", "tag-a"]);
        assert_eq!(values["b"], ["m-b2", "tag-b"]);
        save(store.root(), &id, kept);
        let (again, parsed, _) = read(&store, &deps);
        assert_eq!(parsed, [false, false]);
        assert_eq!(again, values, "the memo gives what parsing gave");
    }

    #[test]
    fn a_missing_field_is_an_error_that_names_the_dep() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (id, mut record) = sign("a", "m");
        Arc::make_mut(&mut record).record = serde_json::json!({"mrenclave": 7});
        let memo = Memo::default();
        let deps = [Dep::new(&id, "d".into(), DepRecord::Ready(record))];
        let cx = context(&store, &deps, &memo);
        let err = cx.dep_fields("sign", &["mrenclave"]).unwrap_err();
        assert!(err.message.contains("sign:a"), "{err}");
        assert!(err.message.contains("`mrenclave`"), "{err}");
    }

    fn kept(root: &Path, id: &StepId) {
        let mut signs = Section::new("sign", &["mrenclave", "fspf_tag"]);
        signs.push("d1", &["m1", "t1"]);
        signs.push("d2", &["m2", ""]);
        let mut images = Section::new("image", &["reference"]);
        images.push("d3", &["r3"]);
        save(root, id, vec![signs, images]);
    }

    #[test]
    fn sections_are_found_by_kind_and_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let id = StepId::new("policy", "mesh");
        kept(dir.path(), &id);
        let memo = Memo::load(dir.path(), &id);
        let signs = memo.section("sign", &["mrenclave", "fspf_tag"]);
        assert_eq!(signs.len(), 2);
        assert_eq!(signs["d1"], ["m1", "t1"]);
        assert_eq!(signs["d2"], ["m2", ""]);
        assert_eq!(memo.section("image", &["reference"])["d3"], ["r3"]);
        assert!(
            memo.section("sign", &["mrenclave"]).is_empty(),
            "other field names are another section"
        );
        assert!(memo.section("image", &["reference", "x"]).is_empty());
        assert!(memo.section("layer", &[]).is_empty());
    }

    #[test]
    fn another_steps_or_a_damaged_memo_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let id = StepId::new("policy", "mesh");
        let other = StepId::new("chart", "mesh");
        kept(dir.path(), &id);
        // Copied over another step's file: not that step's.
        std::fs::copy(path_of(dir.path(), &id), path_of(dir.path(), &other)).unwrap();
        assert!(Memo::load(dir.path(), &other)
            .section("sign", &["mrenclave", "fspf_tag"])
            .is_empty());
        // One byte flipped: the checksum fails.
        let path = path_of(dir.path(), &id);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Memo::load(dir.path(), &id).sections.is_empty());
        // Torn (cut short): the same.
        kept(dir.path(), &id);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert!(Memo::load(dir.path(), &id).sections.is_empty());
        assert!(Memo::load(dir.path(), &StepId::new("x", "never"))
            .sections
            .is_empty());
    }

    #[test]
    fn sections_of_one_head_are_saved_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = StepId::new("policy", "mesh");
        // A prepare's (two deps), an image section, then its run's (one more).
        let mut ahead = Section::new("sign", &["mrenclave", "fspf_tag"]);
        ahead.push("d1", &["m1", "t1"]);
        ahead.push("d2", &["m2", "t2"]);
        let mut images = Section::new("image", &["reference"]);
        images.push("d3", &["r3"]);
        let mut run = Section::new("sign", &["mrenclave", "fspf_tag"]);
        run.push("d4", &["m4", "t4"]);
        save(dir.path(), &id, vec![ahead, images, run]);
        let memo = Memo::load(dir.path(), &id);
        let signs = memo.section("sign", &["mrenclave", "fspf_tag"]);
        assert_eq!(signs.len(), 3);
        assert_eq!(signs["d1"], ["m1", "t1"]);
        assert_eq!(signs["d4"], ["m4", "t4"]);
        assert_eq!(memo.section("image", &["reference"])["d3"], ["r3"]);
    }

    #[test]
    fn dep_fields_of_reads_the_wanted_units_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let memo = Memo::default();
        let signs = [sign("a", "m-a"), sign("b", "m-b")];
        let deps = ready(&signs);
        let cx = context(&store, &deps, &memo);
        let fields = cx
            .dep_fields_of("sign", &["mrenclave"], |u| u == "b")
            .unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields.get("b"), Some(&["m-b"][..]));
        assert!(fields.get("a").is_none());
        drop(fields);
        let kept = cx.kept.into_inner().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].count, 1, "only what was read is kept");
    }
}
