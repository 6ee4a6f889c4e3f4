//! `--timings`: the clock of one build. It marks the phases of
//! `build::execute` (load, plan, run, record), hears every step that ran
//! through [`Tee`] (which passes each event on to the output), and at the
//! end writes `target/scone-timings/scone-timing.html` and a timestamped
//! copy (as cargo does), and a `timings` JSON message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use scone::engine::{BuildReport, Event, EventSink, Node, Ran, Session, Status, StepId};
use scone::timings::{micros, Phase, StepTime, Timings};

use super::args::MessageFormat;
use super::output::Output;

/// Where the pages go, under the target folder.
pub const FOLDER: &str = "scone-timings";
/// The latest page.
pub const LATEST: &str = "scone-timing.html";

/// A step that ran, as heard.
struct Heard {
    id: StepId,
    status: Status,
    ms: u64,
    ran: Ran,
    why: Option<String>,
}

/// The clock of a build with `--timings`.
struct Inner {
    command: &'static str,
    start: Instant,
    wall: SystemTime,
    jobs: usize,
    /// The most step workers a run of this build had.
    workers: usize,
    phase: Option<(String, Instant)>,
    phases: Vec<Phase>,
    heard: Mutex<Vec<Heard>>,
    /// Per step heard, by its place in `heard`: its deps that ran (ids).
    deps: BTreeMap<usize, Vec<StepId>>,
    /// Where the last run's steps begin in `heard`.
    run_from: usize,
    written: BTreeSet<String>,
    written_bytes: u64,
    hashed: (u64, u64),
    reused: usize,
    fast_path: bool,
}

/// See the module documentation. Without `--timings` it does nothing (and
/// costs nothing): `build::execute` marks its phases either way.
pub struct Clock(Option<Inner>);

impl Clock {
    /// Starts the clock of `scone <command>` with `-j jobs` (0: the cores),
    /// in phase `load`, if `on` (`--timings`).
    pub fn start(on: bool, command: &'static str, jobs: usize) -> Clock {
        Clock(on.then(|| Inner::start(command, jobs)))
    }

    /// Ends the current phase; `name` begins.
    pub fn phase(&mut self, name: &str) {
        if let Some(inner) = &mut self.0 {
            inner.phase(Some(name));
        }
    }

    /// The sink of a run: passes every event on to `out`, and hears what
    /// ran if the clock is on.
    pub fn tee<'a>(&'a self, out: &'a Output) -> Tee<'a> {
        Tee {
            clock: self.0.as_ref(),
            out,
        }
    }

    /// After a run of `nodes` (see [`Inner::ran`]).
    pub fn ran(&mut self, nodes: &[Node], report: &BuildReport, session: &Session) {
        if let Some(inner) = &mut self.0 {
            inner.ran(nodes, report, session);
        }
    }

    /// The last build was replayed: `steps` of it, none run.
    pub fn replayed(&mut self, steps: usize) {
        if let Some(inner) = &mut self.0 {
            inner.fast_path = true;
            inner.reused = steps;
        }
    }

    /// Stops the clock and, if it is on, writes the page into `target` and
    /// reports it (see [`save`]). A page that cannot be written is a warning:
    /// the build it times is done, and has said so (`build-finished`).
    pub fn save(self, success: bool, target: &Path, out: &Output, format: MessageFormat) {
        if let Some(inner) = self.0 {
            if let Err(e) = save(&inner.finish(success), target, out, format) {
                out.warn(&scone::cause::with_causes(e.as_ref()));
            }
        }
    }
}

impl Inner {
    fn start(command: &'static str, jobs: usize) -> Inner {
        let jobs = if jobs == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            jobs
        };
        let start = Instant::now();
        Inner {
            command,
            start,
            wall: SystemTime::now(),
            jobs,
            workers: 0,
            phase: Some(("load".into(), start)),
            phases: Vec::new(),
            heard: Mutex::new(Vec::new()),
            deps: BTreeMap::new(),
            run_from: 0,
            written: BTreeSet::new(),
            written_bytes: 0,
            hashed: (0, 0),
            reused: 0,
            fast_path: false,
        }
    }

    /// Milliseconds from the start to `at`.
    fn ms(&self, at: Instant) -> f64 {
        micros(at.saturating_duration_since(self.start).as_secs_f64() * 1000.0)
    }

    /// Ends the current phase; `name` begins (none: the build is over).
    fn phase(&mut self, name: Option<&str>) {
        let now = Instant::now();
        if let Some((done, since)) = self.phase.take() {
            self.phases.push(Phase {
                name: done,
                start_ms: self.ms(since),
                end_ms: self.ms(now),
            });
        }
        self.phase = name.map(|n| (n.to_string(), now));
    }

    /// After a run of `nodes`: links each step heard to its deps, and adds
    /// what the built steps stored and what was hashed.
    fn ran(&mut self, nodes: &[Node], report: &BuildReport, session: &Session) {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let of_id: BTreeMap<&StepId, usize> = heard[self.run_from..]
            .iter()
            .enumerate()
            .map(|(i, h)| (&h.id, self.run_from + i))
            .collect();
        let mut deps = Vec::new();
        for node in nodes {
            if let Some(&at) = of_id.get(node.step.id()) {
                let ids = node
                    .deps
                    .iter()
                    .map(|&d| nodes[d].step.id().clone())
                    .collect();
                deps.push((at, ids));
            }
        }
        let store = session.store();
        let mut written = 0;
        for h in heard[self.run_from..]
            .iter()
            .filter(|h| h.status == Status::Built)
        {
            let Some(record) = report.results.get(&h.id) else {
                continue;
            };
            for digest in record.files.values() {
                if self.written.insert(digest.clone()) {
                    written += std::fs::metadata(store.blob_path(digest)).map_or(0, |m| m.len());
                }
            }
        }
        let run_end = heard.len();
        drop(heard);
        self.deps.extend(deps);
        self.run_from = run_end;
        self.written_bytes += written;
        self.hashed = (store.paths().hashed_files(), store.paths().hashed_bytes());
        self.reused += report.reused.len();
        self.workers = self
            .workers
            .max(scone::engine::workers(self.jobs, nodes.len()));
    }

    /// Stops the clock: the timings of the build.
    fn finish(mut self, success: bool) -> Timings {
        self.phase(None);
        let total_ms = self.ms(Instant::now());
        let heard = self.heard.into_inner().unwrap_or_else(|e| e.into_inner());
        // A dep is the latest step heard before with its id (apply --locked
        // runs the graph twice).
        let mut steps: Vec<StepTime> = Vec::with_capacity(heard.len());
        let mut last_of: BTreeMap<StepId, usize> = BTreeMap::new();
        for (i, h) in heard.into_iter().enumerate() {
            let deps = self
                .deps
                .get(&i)
                .map(|ids| ids.iter().filter_map(|d| last_of.get(d).copied()).collect())
                .unwrap_or_default();
            steps.push(StepTime {
                step: h.id.kind.clone(),
                unit: h.id.unit.clone(),
                status: h.status.as_str().to_string(),
                start_ms: micros(
                    h.ran
                        .started
                        .saturating_duration_since(self.start)
                        .as_secs_f64()
                        * 1000.0,
                ),
                ms: h.ms,
                worker: h.ran.worker,
                why: h.why,
                deps,
            });
            last_of.insert(h.id, i);
        }
        let started = self
            .wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let second = scone::oci::image::rfc3339(started / 1000);
        Timings {
            command: self.command.to_string(),
            started: format!("{}.{:03}Z", second.trim_end_matches('Z'), started % 1000),
            jobs: self.jobs,
            workers: self.workers,
            total_ms,
            success,
            fast_path: self.fast_path,
            phases: self.phases,
            steps,
            reused: self.reused,
            hashed_files: self.hashed.0,
            hashed_bytes: self.hashed.1,
            written_bytes: self.written_bytes,
        }
    }
}

/// Writes the page of `timings` into `target/scone-timings/` (the latest,
/// and one named by the build's start, to keep) and reports it: a
/// `timings` JSON message, or a status line.
pub fn save(
    timings: &Timings,
    target: &Path,
    out: &Output,
    format: MessageFormat,
) -> anyhow::Result<PathBuf> {
    let folder = target.join(FOLDER);
    let page = scone::timings::html::page(timings);
    let stamp: String = timings
        .started
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let kept = folder.join(format!("scone-timing-{stamp}.html"));
    let latest = folder.join(LATEST);
    for path in [&kept, &latest] {
        scone::durable::write(path, page.as_bytes())
            .with_context(|| format!("writing the timings page {}", path.display()))?;
    }
    match format {
        MessageFormat::Json => out.json_message(timings.to_json()),
        MessageFormat::Human => out.status("Timings", &format!("saved to {}", latest.display())),
    }
    Ok(latest)
}

/// Passes events on to the output, keeping the times of the steps that ran
/// (if the clock is on).
pub struct Tee<'a> {
    clock: Option<&'a Inner>,
    out: &'a Output,
}

impl EventSink for Tee<'_> {
    fn event(&self, event: Event) {
        if let (
            Some(clock),
            Event::Finished {
                id,
                status,
                why,
                ms,
                ran: Some(ran),
                ..
            },
        ) = (self.clock, &event)
        {
            let heard = Heard {
                id: id.clone(),
                status: *status,
                ms: *ms,
                ran: *ran,
                why: why.clone(),
            };
            clock
                .heard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(heard);
        }
        self.out.event(event);
    }

    fn wants_reused(&self) -> bool {
        self.out.wants_reused()
    }

    fn wants_outputs(&self) -> bool {
        self.out.wants_outputs()
    }

    /// The page shows why each step was built.
    fn wants_why(&self) -> bool {
        self.clock.is_some() || self.out.wants_why()
    }
}
