//! The scheduler: runs the step graph on a rayon pool, each step as soon as its
//! deps are done, deciding fresh or built by fingerprint.
//!
//! While steps run and nothing else can start, it works ahead: it starts a
//! step's [`Step::prepare`] on a free worker once the deps that prepare does
//! without are about to be done (the step then waits for it too), and on its
//! own thread computes the params of steps that will run and parses records
//! that readers of whole records will need.
//!
//! The first failure stops scheduling new steps; steps already running finish;
//! every failure is reported. Steps whose deps failed are not run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use super::dep::{Dep, DepRecord};
use super::events::{Event, EventSink, Status};
use super::remote::RemoteTier;
use super::run::{prepare_step, run_step, HeadStart, RunContext, StepResult};
use super::state::Own;
use super::step::{Step, StepId};
use super::store::{ActionRecord, Store};

/// The most step workers a build starts, whatever `-j` says (a thread each,
/// four with a remote cache): a bound against a mistyped `-j`, not a tuning.
pub const MOST_JOBS: usize = 256;

/// The step workers a build of `steps` steps has with `-j jobs` (0: the
/// cores): never more than its steps, nor than [`MOST_JOBS`].
pub fn workers(jobs: usize, steps: usize) -> usize {
    if jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        jobs
    }
    .clamp(1, steps.clamp(1, MOST_JOBS))
}

/// One node of the graph: a step and the indices of the nodes it depends on.
pub struct Node {
    pub step: Box<dyn Step>,
    pub deps: Vec<usize>,
}

/// How to run.
#[derive(Clone)]
pub struct EngineOptions {
    /// Parallel steps; 0 means the number of cores.
    pub jobs: usize,
    /// The remote cache tier, if any.
    pub remote: Option<Arc<dyn RemoteTier>>,
    /// Steps known to be unaffected since the last build, if known.
    pub reuse: Option<Arc<Reuse>>,
}

/// The steps of the last build nothing they consulted changed since (see
/// [`super::state::Verdict::Dirty`]), by their place in the build state. Such
/// a step is reused without resolving its inputs or computing its fingerprint
/// — as long as none of its deps' outputs changed in this build; its record
/// is parsed only if a dependent runs.
#[derive(Debug)]
pub struct Reuse {
    /// Per step of the state: whether a path it consulted changed.
    dirty: Vec<bool>,
}

impl Reuse {
    pub fn new(dirty: Vec<bool>) -> Reuse {
        Reuse { dirty }
    }

    /// Whether the state's step at `position` is unaffected.
    fn clean(&self, position: usize) -> bool {
        self.dirty.get(position).is_some_and(|d| !d)
    }

    /// The place in `state` of step `id`, the `n`th of the plan, if it is
    /// unaffected: if none of its deps' outputs change either, the run
    /// reuses it from there without looking at the step itself.
    pub fn place(&self, state: &super::state::BuildState, n: usize, id: &StepId) -> Option<usize> {
        state.planned_position(n, id).filter(|&p| self.clean(p))
    }

    /// How many steps are unaffected.
    pub fn len(&self) -> usize {
        self.dirty.iter().filter(|d| !**d).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("jobs", &self.jobs)
            .field("remote", &self.remote.is_some())
            .field("reuse", &self.reuse.as_ref().map(|r| r.len()))
            .finish()
    }
}

/// What a build did.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub built: usize,
    /// Local hits.
    pub fresh: usize,
    /// Remote hits (results downloaded from the remote cache).
    pub remote: usize,
    /// Whether a remote cache was configured.
    pub remote_configured: bool,
    pub failed: Vec<(StepId, String)>,
    /// Results of every step that finished, by id, but the reused ones.
    pub results: BTreeMap<StepId, Arc<ActionRecord>>,
    /// The steps reused as the last build left them (see [`Reuse`]), by
    /// their places in the last build state's steps; counted as fresh, not
    /// in `results`.
    pub reused: Vec<usize>,
    /// Files whose content was hashed (not served by the path table).
    pub hashed_files: u64,
    /// Per step that ran (not reused): every path it consulted, for the
    /// build state.
    pub consulted: Vec<(StepId, Vec<Own>)>,
    /// Whether every step was cacheable (effects rule out replaying it).
    pub all_cacheable: bool,
    /// Whether the build state answered: nothing was planned or run.
    pub replayed: bool,
    pub ms: u64,
}

impl BuildReport {
    pub fn success(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Errors that stop a build before or around the steps.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot use the build directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the step graph has a cycle through {0}")]
    Cycle(StepId),
}

/// Runs the graph with the store of `target`, `tmp` its scratch folder.
pub(super) fn run(
    store: &Store,
    target: &Path,
    tmp: &Path,
    nodes: &[Node],
    opts: &EngineOptions,
    sink: &dyn EventSink,
) -> Result<BuildReport, EngineError> {
    let io_err = |source| EngineError::Io {
        dir: target.to_path_buf(),
        source,
    };
    // Never more workers than steps: `-j 100000` made a pool of 100,000
    // threads, and a one-step build took twelve minutes and 1 GB.
    let jobs = workers(opts.jobs, nodes.len());
    // Remote lookups mostly wait on the network, so with a remote cache more
    // steps are in flight than there are cores. (No semaphore limits how many
    // of them run: a step blocked on one inside a rayon pool could be the one
    // that a nested parallel loop, e.g. the layer's gzip, is waiting for.)
    let threads = if opts.remote.is_some() {
        jobs * 4
    } else {
        jobs
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("scone-step-{i}"))
        .build()
        .map_err(|e| io_err(std::io::Error::other(e)))?;
    let remote = opts.remote.as_deref();
    let cx = RunContext {
        store,
        target,
        remote,
        sink,
    };
    let run = run_graph(nodes, &cx, opts.reuse.as_deref(), tmp, &pool, jobs);
    if let Some(remote) = remote {
        for message in remote.finish(store) {
            sink.event(Event::Warning { message });
        }
    }
    let mut report = run?;
    report.remote_configured = remote.is_some();
    report.hashed_files = store.paths().hashed_files();
    Ok(report)
}

/// What a worker sends back.
enum Done {
    /// A step finished.
    Step {
        index: usize,
        result: Result<StepResult, String>,
    },
    /// A step's [`Step::prepare`] finished: the step may run.
    Prepared {
        index: usize,
        head: Option<HeadStart>,
    },
}

/// A finished step, as its dependents see it.
struct Finished {
    record: DepRecord,
    digest: Arc<str>,
    /// Whether its output differs from the last build's.
    changed: bool,
}

/// A step is done: its dependents wait for one dep fewer; those that wait
/// for none are ready (to run, if tainted; else likely to be reused).
fn release(
    dependents: &[usize],
    tainted: &[bool],
    waiting: &mut [usize],
    ready_run: &mut Vec<usize>,
    ready: &mut Vec<usize>,
) {
    for &j in dependents {
        waiting[j] -= 1;
        if waiting[j] == 0 {
            if tainted[j] {
                ready_run.push(j);
            } else {
                ready.push(j);
            }
        }
    }
}

/// The place in the build state to reuse `node` from, if [`Reuse`] lists it
/// as unaffected (`recorded`) and none of its deps' outputs changed in this
/// build.
fn reusable(node: &Node, results: &[Option<Finished>], recorded: Option<usize>) -> Option<usize> {
    let position = recorded?;
    let deps_unchanged = node
        .deps
        .iter()
        .all(|&d| results[d].as_ref().is_some_and(|f| !f.changed));
    deps_unchanged.then_some(position)
}

/// The deps of step `j` that are done, as it gets them.
fn done_deps<'n>(nodes: &'n [Node], j: usize, results: &[Option<Finished>]) -> Vec<Dep<'n>> {
    nodes[j]
        .deps
        .iter()
        .filter_map(|&d| {
            let f = results[d].as_ref()?;
            Some(Dep::new(
                nodes[d].step.id(),
                Arc::clone(&f.digest),
                f.record.clone(),
            ))
        })
        .collect()
}

/// Whether step `j`'s [`Step::prepare`] can start: every dep of another kind
/// than the one it does without is done; one of that kind is not, and each
/// of those is about to be: started, or waiting for started steps only. (Not
/// earlier: a prepare takes a core, which a step further up the chain may
/// use whole, e.g. a layer's compression.) `pending`: how many of its deps
/// are not done.
///
/// `open`: how many of `j`'s deps, in order, were seen done or about to be.
/// Both last (a started step stays started until done, a done one done), so
/// each dep is looked at until it is, and no more: a mesh step's 10,000 deps
/// are walked once in a build rather than at every look.
fn can_prepare(
    nodes: &[Node],
    j: usize,
    results: &[Option<Finished>],
    started: &[bool],
    open: &mut usize,
    pending: usize,
) -> bool {
    let Some(without) = nodes[j].step.prepare_without() else {
        return false;
    };
    let underway = |d: usize| results[d].is_some() || started[d];
    while let Some(&d) = nodes[j].deps.get(*open) {
        let coming = || {
            nodes[d].step.id().kind == without
                && (started[d] || nodes[d].deps.iter().all(|&e| underway(e)))
        };
        if results[d].is_none() && !coming() {
            return false;
        }
        *open += 1;
    }
    pending > 0
}

/// Per node: its place in the build state, if [`Reuse`] lists it as
/// unaffected.
fn recorded(nodes: &[Node], reuse: Option<&Reuse>, store: &Store) -> Vec<Option<usize>> {
    let Some(reuse) = reuse else {
        return vec![None; nodes.len()];
    };
    let state = store.state();
    nodes
        .iter()
        .enumerate()
        .map(|(n, node)| reuse.place(state, n, node.step.id()))
        .collect()
}

/// Per node: whether it will likely run — it is not [`recorded`] as
/// unaffected, or one of its deps (transitively) is not.
fn tainted(dependents: &[Vec<usize>], recorded: &[Option<usize>]) -> Vec<bool> {
    let mut tainted: Vec<bool> = recorded.iter().map(Option::is_none).collect();
    let mut queue: Vec<usize> = (0..tainted.len()).filter(|&i| tainted[i]).collect();
    while let Some(i) = queue.pop() {
        for &j in &dependents[i] {
            if !tainted[j] {
                tainted[j] = true;
                queue.push(j);
            }
        }
    }
    tainted
}

/// `run`'s result, or a failure naming the panic if it panicked: the loop
/// waits for every step it started to say it is done, so a step that
/// panicked without saying so would leave the build waiting for ever (with
/// the target locked).
fn panics_as_failure<T>(run: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(format!("scone failed inside this step (a bug): {what}"))
    })
}

fn run_graph(
    nodes: &[Node],
    cx: &RunContext<'_>,
    reuse: Option<&Reuse>,
    tmp: &Path,
    pool: &rayon::ThreadPool,
    jobs: usize,
) -> Result<BuildReport, EngineError> {
    let n = nodes.len();
    let mut waiting: Vec<usize> = nodes.iter().map(|node| node.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.deps {
            dependents[d].push(i);
        }
    }
    let mut results: Vec<Option<Finished>> = (0..n).map(|_| None).collect();
    let recorded = recorded(nodes, reuse, cx.store);
    let tainted = tainted(&dependents, &recorded);
    // Steps that will likely run are started before any reused step is
    // bookkept, so the chain of rebuilt steps never waits on the loop.
    let (mut ready_run, mut ready): (Vec<usize>, Vec<usize>) = (0..n)
        .filter(|&i| waiting[i] == 0)
        .rev()
        .partition(|&i| tainted[i]);
    // The params of tainted steps that are not ready yet (a mesh step's
    // describe every service), made while the loop waits for running steps.
    // (The records of reused steps a tainted step reads are not parsed here:
    // a mesh step reads one field of each, on all cores, when it prepares —
    // parsed on this thread too, they took a core from the rebuilt chain.)
    let mut ahead: Vec<usize> = (0..n).filter(|&i| tainted[i] && waiting[i] > 0).collect();
    let mut params: Vec<Option<Vec<(String, String)>>> = vec![None; n];
    // Tainted steps with a `prepare`, not started yet; what those that ran made.
    let mut preparable: Vec<usize> = ahead
        .iter()
        .copied()
        .filter(|&i| nodes[i].step.prepare_without().is_some())
        .collect();
    let mut heads: Vec<Option<HeadStart>> = (0..n).map(|_| None).collect();
    let mut started = vec![false; n];
    // Per step: how many of its deps were seen done or about to be (`can_prepare`).
    let mut open = vec![0usize; n];
    let mut report = BuildReport {
        all_cacheable: nodes.iter().all(|n| n.step.cacheable()),
        ..BuildReport::default()
    };
    let scratch_counter = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Done>();
    let mut running = 0usize;
    let mut finished = 0usize;
    // The output digest each running step had in the last build.
    let mut before: HashMap<usize, Option<Arc<str>>> = HashMap::new();
    let state = cx.store.state();
    let wants_outputs = cx.sink.wants_outputs();
    let wants_reused = cx.sink.wants_reused();

    pool.in_place_scope(|scope| loop {
        // A finished step first: its dependents may be on the critical path.
        let mut done = rx.try_recv().ok();
        if done.is_none() {
            let next = if report.failed.is_empty() {
                ready_run.pop().or_else(|| ready.pop())
            } else {
                None
            };
            if let Some(i) = next {
                let id = nodes[i].step.id();
                if let Some(position) = reusable(&nodes[i], &results, recorded[i]) {
                    let entry = &state.steps[position];
                    if wants_reused {
                        let outputs = if wants_outputs {
                            entry
                                .record(state)
                                .map_or(serde_json::Value::Null, |r| r.outputs())
                        } else {
                            serde_json::Value::Null
                        };
                        cx.sink.event(Event::Finished {
                            id: id.clone(),
                            status: Status::Fresh,
                            fingerprint: entry.fingerprint.clone(),
                            outputs,
                            why: None,
                            ms: 0,
                            ran: None,
                        });
                    }
                    report.fresh += 1;
                    report.reused.push(position);
                    results[i] = Some(Finished {
                        digest: Arc::clone(&entry.output),
                        record: DepRecord::Previous(position),
                        changed: false,
                    });
                    finished += 1;
                    release(
                        &dependents[i],
                        &tainted,
                        &mut waiting,
                        &mut ready_run,
                        &mut ready,
                    );
                } else {
                    let deps = done_deps(nodes, i, &results);
                    before.insert(i, cx.store.previous(id).map(|e| Arc::clone(&e.output)));
                    let tx = tx.clone();
                    let scratch =
                        tmp.join(scratch_counter.fetch_add(1, Ordering::Relaxed).to_string());
                    let step = nodes[i].step.as_ref();
                    let params = params[i].take();
                    let head = heads[i].take();
                    started[i] = true;
                    running += 1;
                    scope.spawn(move |_| {
                        let result =
                            panics_as_failure(|| run_step(step, deps, params, head, cx, &scratch));
                        let _ = tx.send(Done::Step { index: i, result });
                    });
                }
                continue;
            }
            if running == 0 {
                break;
            }
            // Nothing to start, and a core free: a step waiting only for
            // deps its `prepare` does without gets it started there (late in
            // a cold build, when most of those deps are done); the step runs
            // once it is done (one more thing to wait for).
            preparable.retain(|&j| waiting[j] > 0);
            let startable = preparable
                .iter()
                .position(|&j| can_prepare(nodes, j, &results, &started, &mut open[j], waiting[j]));
            if let Some(at) = startable.filter(|_| running < jobs && report.failed.is_empty()) {
                let j = preparable.swap_remove(at);
                let deps = done_deps(nodes, j, &results);
                waiting[j] += 1;
                running += 1;
                let tx = tx.clone();
                let step = nodes[j].step.as_ref();
                scope.spawn(move |_| {
                    // A prepare that panicked is done without: the step's run
                    // prepares again (and fails there, as a step).
                    let head = panics_as_failure(|| Ok(prepare_step(step, deps, cx.store)))
                        .ok()
                        .flatten();
                    let _ = tx.send(Done::Prepared { index: j, head });
                });
                continue;
            }
            // Nothing to start: work ahead while steps run.
            done = loop {
                if let Some(j) = ahead.pop() {
                    if waiting[j] > 0 {
                        params[j] = Some(nodes[j].step.param_pairs());
                    }
                } else {
                    break rx.recv().ok();
                }
                if let Ok(d) = rx.try_recv() {
                    break Some(d);
                }
            };
        }
        let Some(done) = done else { break };
        running -= 1;
        let (index, result) = match done {
            Done::Step { index, result } => (index, result),
            Done::Prepared { index, head } => {
                heads[index] = head;
                waiting[index] -= 1;
                if waiting[index] == 0 {
                    ready_run.push(index);
                }
                continue;
            }
        };
        finished += 1;
        let id = nodes[index].step.id().clone();
        match result {
            Ok(StepResult {
                record,
                digest,
                status,
                consulted,
            }) => {
                report.consulted.push((id.clone(), consulted));
                match status {
                    Status::Fresh => report.fresh += 1,
                    Status::Remote => report.remote += 1,
                    _ => report.built += 1,
                }
                let changed = before
                    .remove(&index)
                    .flatten()
                    .is_none_or(|old| old != digest);
                report.results.insert(id, Arc::clone(&record));
                results[index] = Some(Finished {
                    record: DepRecord::Ready(record),
                    digest,
                    changed,
                });
                release(
                    &dependents[index],
                    &tainted,
                    &mut waiting,
                    &mut ready_run,
                    &mut ready,
                );
            }
            Err(message) => report.failed.push((id, message)),
        }
    });
    if report.failed.is_empty() && finished < n {
        let stuck = (0..n).find(|&i| results[i].is_none()).unwrap_or(0);
        return Err(EngineError::Cycle(nodes[stuck].step.id().clone()));
    }
    Ok(report)
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
