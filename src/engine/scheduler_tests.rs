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
    // The last build had all four (and `e`, which this plan lacks); b's
    // paths changed.
    let dir = tempfile::tempdir().unwrap();
    let state = state_of(&["a", "b", "c", "d", "e"]);
    let store = Store::open(dir.path(), Arc::new(state)).unwrap();
    let reuse = Reuse::new(vec![false, true, false, false, false]);
    assert_eq!(reuse.len(), 4);
    let places = recorded(&nodes, Some(&reuse), &store);
    assert_eq!(places, [Some(0), None, Some(2), Some(3)]);
    assert_eq!(
        tainted(&dependents, &places),
        vec![false, true, true, false]
    );
    assert_eq!(
        tainted(&dependents, &recorded(&nodes, None, &store)),
        vec![true; 4]
    );
    let unknown = [Node {
        step: Box::new(Named(StepId::new("j", "a"))),
        deps: Vec::new(),
    }];
    assert_eq!(recorded(&unknown, Some(&reuse), &store), [None]);
}

/// A build state with steps `k:<unit>` (no paths), as the codec reads one.
fn state_of(units: &[&str]) -> crate::engine::state::BuildState {
    use crate::engine::state::NextState;
    let dir = tempfile::tempdir().unwrap();
    let table = crate::engine::state::PathTable::new(Arc::default(), dir.path());
    let ran = units
        .iter()
        .map(|u| {
            let record = ActionRecord {
                step: format!("k:{u}"),
                fingerprint: "ab".repeat(32),
                record: serde_json::json!({}),
                files: BTreeMap::new(),
                publish: Vec::new(),
                info: serde_json::Value::Null,
                inputs: Vec::new(),
            };
            (StepId::new("k", u), Arc::new(record), Vec::new())
        })
        .collect();
    NextState {
        ran,
        ..NextState::default()
    }
    .write(dir.path(), table)
    .unwrap();
    crate::engine::state::BuildState::load(dir.path())
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
        let waited = std::time::Instant::now();
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
        jobs: 2,
        remote: None,
        reuse: None,
    };
    let session = crate::engine::Session::open(&dir.path().join("target"), || {}).unwrap();
    let report = session
        .run(&nodes, &opts, &super::super::events::Silent)
        .unwrap();
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

#[test]
fn a_step_that_panics_is_a_failure_not_a_hang() {
    assert_eq!(panics_as_failure(|| Ok::<_, String>(7)), Ok(7));
    assert_eq!(
        panics_as_failure(|| Err::<(), _>("no".to_string())),
        Err("no".to_string())
    );
    let panicked = panics_as_failure(|| -> Result<(), String> { panic!("failed printing") });
    let message = panicked.unwrap_err();
    assert!(message.contains("failed printing"), "{message}");
    let formatted = panics_as_failure(|| -> Result<(), String> { panic!("step {}", 3) });
    assert!(formatted.unwrap_err().contains("step 3"));
}

#[test]
fn a_prepare_looks_at_each_dep_until_it_is_about_to_be_done() {
    // `mesh:m` prepares without `slow`; its deps: three `fast` steps, then
    // `slow:a` and `slow:b`, which wait for `fast:f2`.
    let (prepared, first_done) = Default::default();
    let mut nodes: Vec<Node> = ["f0", "f1", "f2"]
        .iter()
        .map(|u| Node {
            step: Box::new(Named(StepId::new("fast", u))),
            deps: vec![],
        })
        .collect();
    for u in ["a", "b"] {
        nodes.push(Node {
            step: Box::new(Named(StepId::new("slow", u))),
            deps: vec![2],
        });
    }
    nodes.push(Node {
        step: Box::new(Prepares {
            id: StepId::new("mesh", "m"),
            prepared,
            first_done,
        }),
        deps: vec![0, 1, 2, 3, 4],
    });
    let done = || {
        Some(Finished {
            record: DepRecord::Previous(0),
            digest: Arc::from("d"),
            changed: false,
        })
    };
    let mut results: Vec<Option<Finished>> = (0..nodes.len()).map(|_| None).collect();
    let mut started = vec![false; nodes.len()];
    let mut open = 0;
    // Nothing done: `fast:f0` is missing, which the prepare needs.
    assert!(!can_prepare(&nodes, 5, &results, &started, &mut open, 5));
    assert_eq!(open, 0);
    results[0] = done();
    results[1] = done();
    started[2] = true;
    assert!(!can_prepare(&nodes, 5, &results, &started, &mut open, 3));
    assert_eq!(open, 2, "past the done, stopped at the one running");
    results[2] = done();
    started[3] = true;
    // `slow:a` runs and `slow:b` waits only for done steps: both about to be.
    assert!(can_prepare(&nodes, 5, &results, &started, &mut open, 2));
    assert_eq!(open, 5, "each dep passed once");
    // All done: nothing to prepare without; the step runs.
    results[3] = done();
    results[4] = done();
    assert!(!can_prepare(&nodes, 5, &results, &started, &mut open, 0));
}
