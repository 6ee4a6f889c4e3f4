//! Runs one step: resolves and hashes its inputs, computes its fingerprint,
//! looks it up in the local store and the remote tier, and on a miss calls
//! [`Step::run`], stores what it made and publishes it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::dep::Dep;
use super::events::{Event, EventSink, Ran, Status};
use super::fingerprint::{explain, Fingerprint};
use super::inputs;
use super::publish;
use super::remote::{Lookup, RemoteTier};
use super::state::Own;
use super::step::{BlobSource, Prepared, Publish, Step, StepContext, StepError};
use super::store::{ActionRecord, Published, Store};

/// A finished step, as its dependents and the report need it.
pub(super) struct StepResult {
    pub record: Arc<ActionRecord>,
    /// `record.output_digest()`, computed once on the worker, not once per dependent.
    pub digest: Arc<str>,
    pub status: Status,
    /// Every path it consulted, for the build state.
    pub consulted: Vec<Own>,
}

/// What every step run shares.
pub(super) struct RunContext<'a> {
    pub store: &'a Store,
    pub target: &'a Path,
    pub remote: Option<&'a dyn RemoteTier>,
    pub sink: &'a dyn EventSink,
}

/// What [`Step::prepare`] made: the run goes on from there.
pub(super) struct HeadStart(Prepared);

/// Runs [`Step::prepare`] with the deps that are done. `None`: nothing to
/// hand over (no prepare, or it failed: the run does it all, and reports
/// any error it meets).
pub(super) fn prepare_step(
    step: &dyn Step,
    deps: Vec<Dep<'_>>,
    store: &Store,
) -> Option<HeadStart> {
    // Never made: a prepare writes through the store only, and one that
    // tried a file of its own would fail rather than write anywhere else.
    let no_scratch = store.root().join("tmp").join("no-scratch-in-prepare");
    let cx = StepContext {
        inputs: &[],
        deps: &deps,
        step: step.id(),
        scratch: &no_scratch,
        store,
        prepared: Mutex::new(None),
    };
    step.prepare(&cx).ok()?.map(HeadStart)
}

/// Decides fresh or built for one step and does the work.
/// `params`: [`super::fingerprint::param_pairs`] of the step, if made ahead;
/// `head`: what its [`Step::prepare`] made, if it ran.
pub(super) fn run_step(
    step: &dyn Step,
    deps: Vec<Dep<'_>>,
    params: Option<Vec<(String, String)>>,
    head: Option<HeadStart>,
    cx: &RunContext<'_>,
    scratch: &Path,
) -> Result<StepResult, String> {
    let RunContext {
        store,
        target,
        remote,
        sink,
    } = *cx;
    let ran = Ran {
        started: Instant::now(),
        worker: rayon::current_thread_index(),
    };
    let started = ran.started;
    let id = step.id().clone();
    let mut fingerprint = String::new();
    let mut consulted = Vec::new();
    let outcome = (|| -> Result<(Arc<ActionRecord>, Status, Option<String>), StepError> {
        let resolved = inputs::resolve(&step.inputs(), store.paths(), &mut consulted)
            .map_err(|e| StepError::context("reading inputs", e))?;
        consulted.extend(resolved.iter().map(inputs::consult));
        let mut fp = Fingerprint::new(&id.kind);
        match params {
            Some(pairs) => fp.param_pairs(pairs),
            None => fp.param_pairs(step.param_pairs()),
        }
        for input in &resolved {
            fp.push(
                inputs::fingerprint_label(input),
                inputs::fingerprint_value(input),
            );
        }
        for dep in &deps {
            fp.push(format!("dep:{}", dep.id()), dep.digest().to_string());
        }
        fingerprint = fp.digest();
        let previous = store.previous(&id);
        if step.cacheable() {
            let known = previous
                .filter(|p| p.fingerprint == fingerprint)
                .and_then(|p| p.record(store.state()));
            let known = known.or_else(|| store.load_action(&fingerprint).map(Arc::new));
            if let Some(record) = known {
                if store.action_intact(&record) {
                    publish_current(target, &record, store)?;
                    return Ok((record, Status::Fresh, None));
                }
            }
            if let Some(remote) = remote {
                let mut warn = |message| sink.event(Event::Warning { message });
                if let Lookup::Hit(record) =
                    remote.fetch(&id.to_string(), &fingerprint, store, &mut warn)
                {
                    // The tier verified every blob; check the record names this
                    // step and fingerprint before trusting it. It is kept in the
                    // build state like a built step's, but not written to the
                    // action cache: a later build that needs it again finds it in
                    // the remote (a file per step was a fifth of filling a checkout).
                    if record.fingerprint == fingerprint
                        && record.step == id.to_string()
                        && store.action_intact(&record)
                    {
                        publish_current(target, &record, store)?;
                        return Ok((Arc::new(record), Status::Remote, None));
                    }
                }
            }
        }
        // Why it runs, if anyone will read it: the inputs of its last
        // fingerprint are in that fingerprint's action record.
        let why = if sink.wants_why() {
            let before = previous
                .and_then(|p| store.load_action(&p.fingerprint))
                .map(|r| r.inputs);
            explain(before.as_deref(), fp.pairs())
        } else {
            String::new()
        };
        sink.event(Event::Started { id: id.clone() });
        fs::create_dir_all(scratch).map_err(|e| StepError::context("creating scratch dir", e))?;
        let cx = StepContext {
            inputs: &resolved,
            deps: &deps,
            step: step.id(),
            scratch,
            store,
            prepared: Mutex::new(head.map(|h| h.0)),
        };
        let mut output = step.run(&cx)?;
        if let Some(path) = inputs::changed_since(&resolved) {
            return Err(StepError::new(format!(
                "{} changed while the build used it; build again",
                path.display()
            )));
        }
        for message in std::mem::take(&mut output.warnings) {
            sink.event(Event::Warning { message });
        }
        // In parallel: each new blob is fsynced, and fsyncs at the same time
        // share the filesystem's journal commits.
        let mut files: BTreeMap<String, String> = {
            use rayon::prelude::*;
            output
                .files
                .par_iter()
                .map(|(name, path)| {
                    let digest = store
                        .ingest_move(path)
                        .map_err(|e| StepError::context(format!("storing output {name}"), e))?;
                    Ok((name.clone(), digest))
                })
                .collect::<Result<_, StepError>>()?
        };
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
            inputs: fp.into_pairs(),
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
        let _ = fs::remove_dir_all(scratch);
        Ok((
            Arc::new(record),
            status,
            (status == Status::Built).then_some(why),
        ))
    })();
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((record, status, why)) => {
            made_paths(&record, target, store, &mut consulted);
            sink.event(Event::Finished {
                id,
                status,
                fingerprint,
                outputs: record.outputs(),
                why,
                ms,
                ran: Some(ran),
            });
            let digest: Arc<str> = record.output_digest().into();
            Ok(StepResult {
                record,
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
                ran: Some(ran),
            });
            Err(err.message)
        }
    }
}

/// What of a step's result the build state watches: every file it
/// published. Not watched: its blobs in the store (scone's own: they are
/// verified by digest whenever the step's result is checked, and a published
/// file is a hard link to its blob, so a byte changed in one shows in the
/// published file's stat), and the published folders themselves (a file no
/// step made inside one is removed when its step is checked; the output
/// folders' listings catch removed or foreign folders).
fn made_paths(record: &ActionRecord, target: &Path, store: &Store, out: &mut Vec<Own>) {
    for digest in record.files.values() {
        out.push(Own::Cached(store.blob_path(digest), digest.clone()));
    }
    for entry in &record.publish {
        match entry {
            Published::Dir { dir, files } => {
                let root = target.join(dir);
                for (rel, digest) in files {
                    out.push(Own::Made(root.join(rel), Some(digest.clone())));
                }
            }
            Published::File { path, digest } => {
                out.push(Own::Made(target.join(path), Some(digest.clone())))
            }
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
