//! A dep as a running step sees it: its id and output digest at hand, its
//! action record parsed on first use.
//!
//! A reused dep's record is still in the step index, unparsed: a mesh step
//! over a thousand services that keeps what it reads of them (see
//! [`super::step::DepReads::Fields`]) parses only the records of the services
//! that changed.

use std::sync::{Arc, OnceLock};

use super::index::IndexEntry;
use super::step::StepId;
use super::store::{ActionRecord, Store};

/// A finished dep's record: at hand, or still unparsed in the step index (a
/// reused step's, parsed only if a dependent reads it).
#[derive(Clone, Debug)]
pub(super) enum DepRecord {
    Ready(Arc<ActionRecord>),
    Indexed(Arc<IndexEntry>),
}

impl DepRecord {
    /// The record; a reused step's from the step index (with its `record`
    /// alone unless `whole`: see [`super::step::DepReads`]), else (its shard
    /// was replaced or damaged since it was opened) from the action cache.
    pub fn get(&self, store: &Store, whole: bool) -> Option<Arc<ActionRecord>> {
        match self {
            DepRecord::Ready(r) => Some(Arc::clone(r)),
            DepRecord::Indexed(e) => if whole { e.record() } else { e.record_only() }
                .or_else(|| store.load_action(&e.fingerprint).map(Arc::new)),
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

    /// Whether the record was asked for (for tests: what a memo spared).
    #[cfg(test)]
    pub(super) fn was_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// The record, parsed once (`whole`: with its files and publish list);
    /// `None` if the step index and the action cache both lost it.
    pub(super) fn record(&self, store: &Store, whole: bool) -> Option<&ActionRecord> {
        self.parsed
            .get_or_init(|| self.source.get(store, whole))
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_ready_record_is_given_as_it_is_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = StepId::new("sign", "a");
        let record = Arc::new(ActionRecord {
            step: id.to_string(),
            fingerprint: "fp".into(),
            record: serde_json::json!({"mrenclave": "ab"}),
            files: BTreeMap::from([("f".to_string(), "d".to_string())]),
            publish: Vec::new(),
            info: serde_json::Value::Null,
        });
        let dep = Dep::new(&id, "digest".into(), DepRecord::Ready(Arc::clone(&record)));
        assert_eq!(dep.id(), &id);
        assert_eq!(dep.digest(), "digest");
        let got = dep.record(&store, false).unwrap();
        assert_eq!(got, record.as_ref(), "a ready record keeps its files");
        assert!(std::ptr::eq(got, dep.record(&store, true).unwrap()));
    }
}
