//! The scheduler: runs the step graph on a rayon pool, each step as soon as its
//! deps are done, deciding fresh or built by fingerprint.
//!
//! The first failure stops scheduling new steps; steps already running finish;
//! every failure is reported. Steps whose deps failed are not run.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use super::events::{Event, EventSink, Status};
use super::fingerprint::{explain, Fingerprint};
use super::inputs;
use super::lock::TargetLock;
use super::publish;
use super::remote::{Lookup, RemoteTier};
use super::statcache::Stat;
use super::step::{BlobSource, Publish, Step, StepContext, StepError, StepId};
use super::store::{ActionRecord, Published, StepState, Store};

/// One node of the graph: a step and the indices of the nodes it depends on.
pub struct Node {
    pub step: Box<dyn Step>,
    pub deps: Vec<usize>,
}

/// How to run.
#[derive(Clone)]
pub struct EngineOptions {
    pub target_dir: PathBuf,
    /// Parallel steps; 0 means the number of cores.
    pub jobs: usize,
    /// The remote cache tier, if any.
    pub remote: Option<Arc<dyn RemoteTier>>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("target_dir", &self.target_dir)
            .field("jobs", &self.jobs)
            .field("remote", &self.remote.is_some())
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
    /// Results of every step that finished, by id.
    pub results: BTreeMap<StepId, Arc<ActionRecord>>,
    /// Files whose content was hashed (not served by the stat cache).
    pub hashed_files: u64,
    /// Every path the build consulted (inputs, folders listed, outputs, blobs):
    /// what the no-op fast path must stat (see [`super::noop`]). Inputs and
    /// folders come with the stat the build saw when it read them; the others
    /// (outputs, blobs) are the build's own and are stat'ed when recorded.
    pub consulted: Vec<(PathBuf, Option<Stat>)>,
    /// Whether every step was cacheable (effects rule out the fast path).
    pub all_cacheable: bool,
    /// Whether the no-op fast path answered (nothing was planned or run).
    pub fast_path: bool,
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

/// Runs the graph. `on_wait` is called if another scone holds the lock.
pub fn build(
    nodes: Vec<Node>,
    opts: &EngineOptions,
    sink: &dyn EventSink,
    on_wait: impl FnOnce(),
) -> Result<BuildReport, EngineError> {
    let started = Instant::now();
    let io_err = |source| EngineError::Io {
        dir: opts.target_dir.clone(),
        source,
    };
    fs::create_dir_all(&opts.target_dir).map_err(io_err)?;
    let _lock = TargetLock::acquire(&opts.target_dir, on_wait).map_err(io_err)?;
    let store = Store::open(&opts.target_dir).map_err(io_err)?;
    let tmp = store.reset_tmp().map_err(io_err)?;
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.jobs
    };
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
        store: &store,
        target: &opts.target_dir,
        remote,
        sink,
    };
    let run = run_graph(&nodes, &cx, &tmp, &pool);
    if let Some(remote) = remote {
        for message in remote.finish() {
            sink.event(Event::Warning { message });
        }
    }
    let mut report = run?;
    report.remote_configured = remote.is_some();
    store.save_stats().map_err(io_err)?;
    let _ = fs::remove_dir_all(&tmp);
    report.hashed_files = store.stats().hashed_files();
    report.ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

struct Done {
    index: usize,
    result: Result<StepResult, String>,
}

/// A finished step, as its dependents and the report need it.
struct StepResult {
    record: Arc<ActionRecord>,
    /// `record.output_digest()`, computed once on the worker, not once per dependent.
    digest: Arc<str>,
    status: Status,
    consulted: Vec<(PathBuf, Option<Stat>)>,
}

/// What every step run shares.
struct RunContext<'a> {
    store: &'a Store,
    target: &'a Path,
    remote: Option<&'a dyn RemoteTier>,
    sink: &'a dyn EventSink,
}

fn run_graph(
    nodes: &[Node],
    cx: &RunContext<'_>,
    tmp: &Path,
    pool: &rayon::ThreadPool,
) -> Result<BuildReport, EngineError> {
    let n = nodes.len();
    let mut waiting: Vec<usize> = nodes.iter().map(|node| node.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.deps {
            dependents[d].push(i);
        }
    }
    let mut results: Vec<Option<(Arc<ActionRecord>, Arc<str>)>> = vec![None; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).rev().collect();
    let mut report = BuildReport {
        all_cacheable: nodes.iter().all(|n| n.step.cacheable()),
        ..BuildReport::default()
    };
    let scratch_counter = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Done>();
    let mut running = 0usize;
    let mut finished = 0usize;

    pool.in_place_scope(|scope| loop {
        while report.failed.is_empty() {
            let Some(i) = ready.pop() else { break };
            let mut deps: Vec<(StepId, Arc<ActionRecord>)> =
                Vec::with_capacity(nodes[i].deps.len());
            let mut digests: Vec<Arc<str>> = Vec::with_capacity(nodes[i].deps.len());
            for &d in &nodes[i].deps {
                if let Some((record, digest)) = &results[d] {
                    deps.push((nodes[d].step.id().clone(), Arc::clone(record)));
                    digests.push(Arc::clone(digest));
                }
            }
            let tx = tx.clone();
            let scratch = tmp.join(scratch_counter.fetch_add(1, Ordering::Relaxed).to_string());
            let step = nodes[i].step.as_ref();
            running += 1;
            scope.spawn(move |_| {
                let result = run_step(step, &deps, &digests, cx, &scratch);
                let _ = tx.send(Done { index: i, result });
            });
        }
        if running == 0 {
            break;
        }
        let Ok(done) = rx.recv() else { break };
        running -= 1;
        finished += 1;
        let id = nodes[done.index].step.id().clone();
        match done.result {
            Ok(StepResult {
                record,
                digest,
                status,
                consulted,
            }) => {
                report.consulted.extend(consulted);
                match status {
                    Status::Fresh => report.fresh += 1,
                    Status::Remote => report.remote += 1,
                    _ => report.built += 1,
                }
                report.results.insert(id, record.clone());
                results[done.index] = Some((record, digest));
                for &j in &dependents[done.index] {
                    waiting[j] -= 1;
                    if waiting[j] == 0 {
                        ready.push(j);
                    }
                }
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

/// Decides fresh or built for one step and does the work.
fn run_step(
    step: &dyn Step,
    deps: &[(StepId, Arc<ActionRecord>)],
    dep_digests: &[Arc<str>],
    cx: &RunContext<'_>,
    scratch: &Path,
) -> Result<StepResult, String> {
    let RunContext {
        store,
        target,
        remote,
        sink,
    } = *cx;
    let started = Instant::now();
    let id = step.id().clone();
    let mut fingerprint = String::new();
    let mut consulted = Vec::new();
    let outcome = (|| -> Result<(ActionRecord, Status, Option<String>), StepError> {
        let resolved = inputs::resolve(&step.inputs(), store.stats(), &mut consulted)
            .map_err(|e| StepError::context("reading inputs", e))?;
        consulted.extend(resolved.iter().map(|r| (r.path.clone(), Some(r.stat))));
        let mut fp = Fingerprint::new(&id.kind);
        fp.params(&step.params());
        for input in &resolved {
            fp.push(
                format!("file:{}", input.label),
                inputs::fingerprint_value(input),
            );
        }
        for ((dep, _), digest) in deps.iter().zip(dep_digests) {
            fp.push(format!("dep:{dep}"), digest.to_string());
        }
        fingerprint = fp.digest();
        let previous = store.load_state(&id);
        if step.cacheable() {
            let known = previous
                .as_ref()
                .filter(|p| p.fingerprint == fingerprint)
                .and_then(|p| p.record.clone());
            if let Some(record) = known.or_else(|| store.load_action(&fingerprint)) {
                if store.action_intact(&record) {
                    publish_current(target, &record, store)?;
                    if previous.as_ref().map(|p| p.fingerprint.as_str()) != Some(&fingerprint) {
                        save_state(store, &id, &fingerprint, fp.pairs(), Some(&record))?;
                    }
                    return Ok((record, Status::Fresh, None));
                }
            }
            if let Some(remote) = remote {
                let mut warn = |message| sink.event(Event::Warning { message });
                if let Lookup::Hit(record) =
                    remote.fetch(&id.to_string(), &fingerprint, store, &mut warn)
                {
                    // The tier verified every blob; check the record names this
                    // step and fingerprint before trusting it.
                    if record.fingerprint == fingerprint
                        && record.step == id.to_string()
                        && store.action_intact(&record)
                    {
                        store
                            .save_action(&record)
                            .map_err(|e| StepError::context("saving the action record", e))?;
                        publish_current(target, &record, store)?;
                        save_state(store, &id, &fingerprint, fp.pairs(), Some(&record))?;
                        return Ok((record, Status::Remote, None));
                    }
                }
            }
        }
        let why = explain(previous.as_ref().map(|p| p.inputs.as_slice()), fp.pairs());
        sink.event(Event::Started { id: id.clone() });
        fs::create_dir_all(scratch).map_err(|e| StepError::context("creating scratch dir", e))?;
        let cx = StepContext {
            inputs: &resolved,
            deps,
            scratch,
            store,
        };
        let output = step.run(&cx)?;
        let mut files = BTreeMap::new();
        for (name, path) in &output.files {
            let digest = store
                .ingest_move(path)
                .map_err(|e| StepError::context(format!("storing output {name}"), e))?;
            files.insert(name.clone(), digest);
        }
        for (name, digest) in &output.stored {
            files.insert(name.clone(), digest.clone());
        }
        let publish = resolve_publish(&output.publish, &files, store)?;
        let record = ActionRecord {
            step: id.to_string(),
            fingerprint: fingerprint.clone(),
            record: output.record,
            files,
            publish,
            info: output.info,
        };
        for entry in &record.publish {
            publish::publish(target, entry, store)
                .map_err(|e| StepError::context("publishing outputs", e))?;
        }
        let status = if step.cacheable() {
            store
                .save_action(&record)
                .map_err(|e| StepError::context("saving the action record", e))?;
            if let Some(remote) = remote {
                remote.offer(&record, store);
            }
            Status::Built
        } else if output.changed {
            Status::Built
        } else {
            Status::Fresh
        };
        let cached = step.cacheable().then_some(&record);
        save_state(store, &id, &fingerprint, fp.pairs(), cached)?;
        let _ = fs::remove_dir_all(scratch);
        Ok((record, status, (status == Status::Built).then_some(why)))
    })();
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((record, status, why)) => {
            consulted.extend(record.blob_digests().map(|d| (store.blob_path(d), None)));
            for entry in &record.publish {
                match entry {
                    Published::Dir { dir, files } => {
                        let root = target.join(dir);
                        for rel in files.keys() {
                            let path = root.join(rel);
                            let mut parent = path.parent();
                            while let Some(p) = parent {
                                if !p.starts_with(&root) {
                                    break;
                                }
                                consulted.push((p.to_path_buf(), None));
                                parent = p.parent();
                            }
                            consulted.push((path, None));
                        }
                    }
                    Published::File { path, .. } => consulted.push((target.join(path), None)),
                }
            }
            let mut outputs = record.record.clone();
            if let (Some(out), Some(info)) = (outputs.as_object_mut(), record.info.as_object()) {
                out.extend(info.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            sink.event(Event::Finished {
                id,
                status,
                fingerprint,
                outputs,
                why,
                ms,
            });
            let digest: Arc<str> = record.output_digest().into();
            Ok(StepResult {
                record: Arc::new(record),
                digest,
                status,
                consulted,
            })
        }
        Err(err) => {
            sink.event(Event::Finished {
                id,
                status: Status::Failed,
                fingerprint,
                outputs: serde_json::Value::Null,
                why: Some(err.message.clone()),
                ms,
            });
            Err(err.message)
        }
    }
}

/// Publishes a cached record's outputs that are not already in place.
fn publish_current(target: &Path, record: &ActionRecord, store: &Store) -> Result<(), StepError> {
    for entry in &record.publish {
        if !publish::is_current(target, entry, store) {
            publish::publish(target, entry, store)
                .map_err(|e| StepError::context("publishing outputs", e))?;
        }
    }
    Ok(())
}

fn save_state(
    store: &Store,
    id: &StepId,
    fingerprint: &str,
    pairs: &[(String, String)],
    record: Option<&ActionRecord>,
) -> Result<(), StepError> {
    let state = StepState {
        fingerprint: fingerprint.to_string(),
        inputs: pairs.to_vec(),
        record: record.cloned(),
    };
    store
        .save_state(id, &state)
        .map_err(|e| StepError::context("saving step state", e))
}

fn resolve_publish(
    publish: &[Publish],
    files: &BTreeMap<String, String>,
    store: &Store,
) -> Result<Vec<Published>, StepError> {
    let digest_of = |source: &BlobSource| -> Result<String, StepError> {
        match source {
            BlobSource::Own(name) => files.get(name).cloned().ok_or_else(|| {
                StepError::new(format!("internal: publishes unknown file `{name}`"))
            }),
            BlobSource::Stored(d) if store.blob_intact(d) => Ok(d.clone()),
            BlobSource::Stored(d) => Err(StepError::new(format!(
                "internal: publishes blob {d}, which is not in the store"
            ))),
        }
    };
    let mut out = Vec::new();
    for p in publish {
        out.push(match p {
            Publish::File { path, source } => Published::File {
                path: path.clone(),
                digest: digest_of(source)?,
            },
            Publish::Dir {
                dir,
                files: entries,
            } => {
                let mut map = BTreeMap::new();
                for f in entries {
                    map.insert(f.path.clone(), digest_of(&f.source)?);
                }
                Published::Dir {
                    dir: dir.clone(),
                    files: map,
                }
            }
        });
    }
    Ok(out)
}

/// For `scone clean -p`: forgets the cached results of these steps and removes
/// what they published. Returns the removed paths.
pub fn clean_steps(target: &Path, ids: &[StepId]) -> std::io::Result<Vec<PathBuf>> {
    let store = Store::open(target)?;
    let mut removed = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    for id in ids {
        let Some(state) = store.load_state(id) else {
            continue;
        };
        if let Some(record) = store.load_action(&state.fingerprint) {
            for entry in &record.publish {
                let path = match entry {
                    Published::Dir { dir, .. } => target.join(dir),
                    Published::File { path, .. } => target.join(path),
                };
                if seen
                    .insert(path.to_string_lossy().into_owned(), ())
                    .is_none()
                    && path.exists()
                {
                    crate::durable::remove_all(&path)?;
                    removed.push(path);
                }
            }
            store.remove_action(&state.fingerprint)?;
        }
        store.remove_state(id)?;
    }
    store.save_stats()?;
    Ok(removed)
}
