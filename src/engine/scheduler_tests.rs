//! Tests of the scheduler: taint, and `Step::prepare`.

use super::*;
use crate::engine::step::{StepContext, StepError, StepOutput};

struct Named(StepId);

impl Step for Named {
    fn id(&self) -> &StepId {
        &self.0
    }
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn run(&self, _: &StepContext<'_>) -> Result<StepOutput, StepError> {
        Err(StepError::new("not run in this test"))
    }
}

#[test]
fn what_is_not_reused_taints_its_dependents_only() {
    // a → b → c, and d alone; only b is not reusable.
    let deps = [vec![], vec![0], vec![1], vec![]];
    let nodes: Vec<Node> = ["a", "b", "c", "d"]
        .iter()
        .zip(deps)
        .map(|(u, deps)| Node {
            step: Box::new(Named(StepId::new("k", u))),
            deps,
        })
        .collect();
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &d in &n.deps {
            dependents[d].push(i);
        }
    }
    // The last build had all four; b's paths changed.
    let steps = ["a", "b", "c", "d"]
        .iter()
        .map(|u| crate::engine::noop::StepMessage {
            kind: "k".into(),
            unit: u.to_string(),
            fingerprint: format!("fp-{u}"),
            files: Vec::new(),
        })
        .collect();
    let reuse = Reuse::new(Arc::new(Previous {
        record: crate::engine::noop::NoopRecord {
            steps,
            ..Default::default()
        },
        dirty: vec![false, true, false, false],
    }));
    assert_eq!(reuse.get(&StepId::new("k", "c")), Some("fp-c"));
    assert_eq!(reuse.get(&StepId::new("k", "b")), None, "dirty");
    assert_eq!(reuse.get(&StepId::new("k", "e")), None, "unknown");
    assert_eq!(reuse.len(), 3);
    let fingerprints = recorded(&nodes, Some(&reuse));
    assert_eq!(
        fingerprints,
        [Some("fp-a"), None, Some("fp-c"), Some("fp-d")]
    );
    assert_eq!(
        tainted(&dependents, &fingerprints),
        vec![false, true, true, false]
    );
    assert_eq!(tainted(&dependents, &recorded(&nodes, None)), vec![true; 4]);

    // In any order, with kinds interleaved and steps the record lacks, each
    // node gets what `get` gives it (the lookup tries the entry after the
    // last one of the kind first).
    let units = ["d", "b", "a", "c", "e", "a", "d"];
    let mixed: Vec<Node> = units
        .iter()
        .enumerate()
        .map(|(i, u)| Node {
            step: Box::new(Named(StepId::new(if i % 3 == 2 { "j" } else { "k" }, u))),
            deps: Vec::new(),
        })
        .collect();
    let expected: Vec<Option<&str>> = mixed.iter().map(|n| reuse.get(n.step.id())).collect();
    assert_eq!(recorded(&mixed, Some(&reuse)), expected);
    assert_eq!(
        expected,
        [
            Some("fp-d"),
            None,
            None,
            Some("fp-c"),
            None,
            None,
            Some("fp-d")
        ]
    );
}

/// `slow:a` waits (up to 10 s) for `mesh:c`'s prepare, which needs only
/// `fast:b`; `c` takes what it made.
/// `slow:*` waits for the prepare; `first:*` takes 30 ms, then says so.
struct Gate {
    id: StepId,
    prepared: Arc<std::sync::atomic::AtomicBool>,
    first_done: Arc<std::sync::atomic::AtomicBool>,
}

impl Step for Gate {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn run(&self, _: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let waited = Instant::now();
        while self.id.kind == "slow"
            && !self.prepared.load(Ordering::SeqCst)
            && waited.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.id.kind == "first" {
            std::thread::sleep(std::time::Duration::from_millis(30));
            self.first_done.store(true, Ordering::SeqCst);
        }
        Ok(StepOutput {
            record: serde_json::json!({ "unit": self.id.unit }),
            ..StepOutput::default()
        })
    }
}

struct Prepares {
    id: StepId,
    prepared: Arc<std::sync::atomic::AtomicBool>,
    first_done: Arc<std::sync::atomic::AtomicBool>,
}

impl Step for Prepares {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn prepare_without(&self) -> Option<&str> {
        Some("slow")
    }
    fn prepare(&self, cx: &StepContext<'_>) -> Result<Option<super::super::Prepared>, StepError> {
        let mut seen: Vec<String> = cx.deps().iter().map(|d| d.id().to_string()).collect();
        if self.first_done.load(Ordering::SeqCst) {
            seen.push("after first".into());
        }
        self.prepared.store(true, Ordering::SeqCst);
        Ok(Some(Box::new(seen.join(","))))
    }
    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let head = cx.take_prepared::<String>().map(|h| *h);
        assert!(cx.take_prepared::<String>().is_none(), "taken once");
        Ok(StepOutput {
            record: serde_json::json!({ "prepared": head }),
            ..StepOutput::default()
        })
    }
}

/// `first:y → up:x → slow:a → mesh:c ← fast:b`; `c` prepares without `slow`.
fn prepared_graph(first: bool) -> (Vec<Node>, Arc<std::sync::atomic::AtomicBool>) {
    let prepared = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = |kind: &str, unit: &str| -> Box<dyn Step> {
        Box::new(Gate {
            id: StepId::new(kind, unit),
            prepared: Arc::clone(&prepared),
            first_done: Arc::clone(&first_done),
        })
    };
    let mut nodes = vec![
        Node {
            step: gate("slow", "a"),
            deps: vec![],
        },
        Node {
            step: gate("fast", "b"),
            deps: vec![],
        },
        Node {
            step: Box::new(Prepares {
                id: StepId::new("mesh", "c"),
                prepared: Arc::clone(&prepared),
                first_done: Arc::clone(&first_done),
            }),
            deps: vec![0, 1],
        },
    ];
    if first {
        nodes.push(Node {
            step: gate("first", "y"),
            deps: vec![],
        });
        nodes.push(Node {
            step: gate("up", "x"),
            deps: vec![3],
        });
        nodes[0].deps = vec![4];
    }
    (nodes, first_done)
}

fn prepared_record(nodes: Vec<Node>) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        target_dir: dir.path().join("target"),
        jobs: 2,
        remote: None,
        reuse: None,
        exits_after: false,
    };
    let mut report = build(nodes, &opts, &super::super::events::Silent, || {}).unwrap();
    report.saving.wait().unwrap();
    assert!(report.success(), "{:?}", report.failed);
    report.results[&StepId::new("mesh", "c")].record.clone()
}

#[test]
fn a_step_is_prepared_while_the_dep_it_does_without_runs() {
    let (nodes, _) = prepared_graph(false);
    assert_eq!(
        prepared_record(nodes),
        serde_json::json!({ "prepared": "fast:b" }),
        "prepared with the done dep only, before the slow one finished"
    );
}

#[test]
fn a_prepare_waits_until_the_deps_it_does_without_are_about_to_be_done() {
    // While `first:y` runs, `slow:a` is two steps away: no prepare yet
    // (it would take the core `y` may use). Once `up:x` starts, it is.
    let (nodes, first_done) = prepared_graph(true);
    assert_eq!(
        prepared_record(nodes),
        serde_json::json!({ "prepared": "fast:b,after first" })
    );
    assert!(first_done.load(Ordering::SeqCst));
}
