//! A dep as a running step sees it: its id and output digest at hand, its
//! action record parsed on first use (a dep reused from the last build has
//! its record in the build state, unparsed).

use std::sync::{Arc, OnceLock};

use super::id::StepId;
use super::record::ActionRecord;
use super::state::{fields_of, Fields};
use super::store::Store;

/// A finished dep's record: at hand, or still unparsed in the build state (a
/// reused step's, parsed only if a dependent reads it).
#[derive(Clone, Debug)]
pub(super) enum DepRecord {
    Ready(Arc<ActionRecord>),
    /// Index into the last state's steps.
    Previous(usize),
}

impl DepRecord {
    /// The text fields `names` of the dep's `record`: a reused step's read
    /// from the build state alone ([`super::state::StepEntry::record_fields`]),
    /// else from its whole record.
    fn fields(&self, store: &Store, names: &[&str]) -> Option<Fields> {
        match self {
            DepRecord::Ready(r) => Some(fields_of(&r.record, names)),
            DepRecord::Previous(i) => {
                let entry = store.state().steps.get(*i)?;
                entry
                    .record_fields(store.state(), names)
                    .or_else(|| Some(fields_of(&store.record(entry)?.record, names)))
            }
        }
    }

    /// The record; a reused step's from the build state, else (it does not
    /// parse) from the action cache.
    pub fn get(&self, store: &Store) -> Option<Arc<ActionRecord>> {
        match self {
            DepRecord::Ready(r) => Some(Arc::clone(r)),
            DepRecord::Previous(i) => store.record(store.state().steps.get(*i)?),
        }
    }
}

/// One dep of a running step. See the module documentation.
#[derive(Debug)]
pub struct Dep<'a> {
    id: &'a StepId,
    digest: Arc<str>,
    source: DepRecord,
    parsed: OnceLock<Option<Arc<ActionRecord>>>,
}

impl<'a> Dep<'a> {
    pub(super) fn new(id: &'a StepId, digest: Arc<str>, source: DepRecord) -> Dep<'a> {
        Dep {
            id,
            digest,
            source,
            parsed: OnceLock::new(),
        }
    }

    pub fn id(&self) -> &'a StepId {
        self.id
    }

    /// The dep's [`ActionRecord::output_digest`]: it names the record exactly.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The text fields `names` of the dep's `record`, in that order: from
    /// its record if parsed, else without parsing the rest of it. `None` if
    /// the build state and the action cache both lost it; `Err(name)` if
    /// `name` is missing or not text.
    pub(super) fn fields(&self, store: &Store, names: &[&str]) -> Option<Fields> {
        match self.parsed.get() {
            Some(parsed) => Some(fields_of(&parsed.as_ref()?.record, names)),
            None => self.source.fields(store, names),
        }
    }

    /// The record, parsed once; `None` if the build state and the action
    /// cache both lost it.
    pub(super) fn record(&self, store: &Store) -> Option<&ActionRecord> {
        self.parsed
            .get_or_init(|| self.source.get(store))
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A record of step `id` with this `record` field and these files.
    fn made(id: &StepId, record: serde_json::Value, files: &[(&str, &str)]) -> Arc<ActionRecord> {
        Arc::new(ActionRecord {
            step: id.to_string(),
            fingerprint: "fp".into(),
            record,
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect::<BTreeMap<_, _>>(),
            publish: Vec::new(),
            info: serde_json::Value::Null,
            inputs: Vec::new(),
        })
    }

    #[test]
    fn a_ready_record_is_given_as_it_is_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Arc::default()).unwrap();
        let id = StepId::new("sign", "a");
        let record = made(&id, serde_json::json!({"mrenclave": "ab"}), &[("f", "d")]);
        let dep = Dep::new(&id, "digest".into(), DepRecord::Ready(Arc::clone(&record)));
        assert_eq!(dep.id(), &id);
        assert_eq!(dep.digest(), "digest");
        let got = dep.record(&store).unwrap();
        assert_eq!(got, record.as_ref());
        assert!(std::ptr::eq(got, dep.record(&store).unwrap()));
        assert_eq!(
            dep.fields(&store, &["mrenclave"]),
            Some(Ok(vec!["ab".to_string()]))
        );
        assert_eq!(
            dep.fields(&store, &["mrenclave", "mrsigner"]),
            Some(Err("mrsigner".to_string())),
            "a missing field is named"
        );
    }

    #[test]
    fn a_field_that_is_not_text_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Arc::default()).unwrap();
        let id = StepId::new("image", "a");
        let fields = serde_json::json!({"reference": 7, "manifest_digest": "sha256:x"});
        let dep = Dep::new(
            &id,
            "digest".into(),
            DepRecord::Ready(made(&id, fields, &[])),
        );
        assert_eq!(
            dep.fields(&store, &["manifest_digest"]),
            Some(Ok(vec!["sha256:x".to_string()]))
        );
        assert_eq!(
            dep.fields(&store, &["manifest_digest", "reference"]),
            Some(Err("reference".to_string()))
        );
    }
}
