//! The next state's record log: what a build appends, and when it is
//! compacted.

use super::*;
use crate::engine::record::ActionRecord;
use std::collections::BTreeMap;

fn record(unit: &str, version: usize) -> Arc<ActionRecord> {
    Arc::new(ActionRecord {
        step: format!("k:{unit}"),
        fingerprint: "ab".repeat(32),
        record: serde_json::json!({ "unit": unit, "version": version }),
        // Records of a real size, so that the log passes its slack soon.
        info: serde_json::json!("x".repeat(16 << 10)),
        files: BTreeMap::new(),
        publish: Vec::new(),
        inputs: Vec::new(),
    })
}

fn units(state: &BuildState) -> Vec<(String, serde_json::Value)> {
    state
        .steps
        .iter()
        .map(|s| {
            let r = s.record(state).expect("a record");
            (s.id.unit.clone(), r.record.clone())
        })
        .collect()
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(".scone").join(super::super::records::FILE)).map_or(0, |m| m.len())
}

/// Steps kept from the last state and steps that ran, their ids
/// interleaved: the log grows by the records that changed only (a step
/// that ran to the same record adds nothing), every step reads its own
/// record back, and a log mostly of records no step names any more is
/// written again with only the named ones.
#[test]
fn a_build_appends_the_records_that_changed_and_a_dead_log_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let ran = |us: &[&str], version: usize| -> Vec<(StepId, Arc<ActionRecord>, Vec<Own>)> {
        us.iter()
            .map(|u| (StepId::new("k", u), record(u, version), Vec::new()))
            .collect()
    };
    let ids = |us: &[&str]| -> Vec<StepId> { us.iter().map(|u| StepId::new("k", u)).collect() };
    let build = |ran: Vec<(StepId, Arc<ActionRecord>, Vec<Own>)>, reused: &[&str]| {
        let last = Arc::new(BuildState::load(dir.path()));
        let reused = ids(reused)
            .iter()
            .map(|id| last.position(id).unwrap())
            .collect();
        NextState {
            planned: ids(&["a", "b", "c", "d", "e"]),
            ran,
            reused,
            whole: true,
            ..NextState::default()
        }
        .write(dir.path(), PathTable::new(last, dir.path()))
        .unwrap();
        BuildState::load(dir.path())
    };
    let want = |versions: [usize; 5]| -> Vec<(String, serde_json::Value)> {
        ["a", "b", "c", "d", "e"]
            .iter()
            .zip(versions)
            .map(|(u, v)| {
                (
                    u.to_string(),
                    serde_json::json!({ "unit": u, "version": v }),
                )
            })
            .collect()
    };

    let first = build(ran(&["a", "b", "c", "d", "e"], 0), &[]);
    assert_eq!(units(&first), want([0; 5]));
    let whole = log_len(dir.path());
    let one = whole / 5;

    // b and d ran to new records, the rest were kept.
    let second = build(ran(&["b", "d"], 1), &["a", "c", "e"]);
    assert_eq!(units(&second), want([0, 1, 0, 1, 0]));
    assert_eq!(log_len(dir.path()), whole + 2 * one, "two records appended");
    assert_eq!(
        second.steps[0].record, first.steps[0].record,
        "a kept where it was"
    );

    // Every step ran (a full check), b and d to the records they have.
    let all = ran(&["a", "c", "e"], 0)
        .into_iter()
        .chain(ran(&["b", "d"], 1))
        .collect();
    let third = build(all, &[]);
    assert_eq!(units(&third), want([0, 1, 0, 1, 0]));
    assert_eq!(log_len(dir.path()), whole + 2 * one, "nothing appended");

    // a's bytes in the log damaged: a reads as none, and a build in
    // which a ran to the same record writes it again.
    let log = dir.path().join(".scone").join(super::super::records::FILE);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[third.steps[0].record.at as usize + 3] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    let damaged = BuildState::load(dir.path());
    assert!(damaged.steps[0].record(&damaged).is_none());
    let healed = build(ran(&["a"], 0), &["b", "c", "d", "e"]);
    assert_eq!(units(&healed), want([0, 1, 0, 1, 0]));
    assert_eq!(log_len(dir.path()), whole + 3 * one, "a appended again");

    // Every step ran to a new record, build after build: the log grows
    // until it would hold more than twice its live bytes and the slack,
    // then holds the named records only.
    let mut version = 1;
    let mut longest = log_len(dir.path());
    loop {
        version += 1;
        let state = build(ran(&["a", "b", "c", "d", "e"], version), &[]);
        assert_eq!(units(&state), want([version; 5]));
        let now = log_len(dir.path());
        if now < longest {
            break;
        }
        longest = now;
        assert!(version < 100, "never compacted: {now} bytes");
    }
    assert!(longest <= 2 * whole + super::super::records::SLACK);
    assert!(
        log_len(dir.path()) <= whole + one,
        "the log holds the named records only: {} bytes",
        log_len(dir.path())
    );
}
