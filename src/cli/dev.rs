//! `scone dev`: watch every input, rebuild what changed, re-apply the policy to
//! the local CAS, restart only the services whose image or policy changed, and
//! print one line per cycle. Only a change to a path the last load read or a
//! step declares as input starts a cycle (never one to the file the loop's
//! output goes to); while the manifests are broken, any change does. A broken
//! manifest is reported and the loop goes on; a service that ends is told
//! (`Exited other with status 3`), once; Ctrl-C, SIGTERM or SIGHUP stops
//! every service it started and removes their rootfs folders, and a native
//! service dies with the loop even when it is killed (`kill -9`).

use anyhow::Context;
use scone::cas::Cas;
use scone::dev::{describe, watch, Change, DevEvent, OwnOutput, Relevance};
use scone::run::{DockerRun, RunSpec};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::args::{ApplyArgs, BuildArgs, DevArgs};
use super::build::{execute, Outcome};
use super::output::Output;

/// A service the loop started.
enum Running {
    Native(Child, tempfile::TempDir),
    Docker(DockerRun),
}

impl Running {
    fn stop(self) {
        match self {
            Running::Native(mut child, _rootfs) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Docker(run) => run.stop(),
        }
    }

    /// How it ended, if it has (`with status 3`, `killed by signal 9`);
    /// `None` while it runs. Never waits.
    fn ended(&mut self) -> Option<String> {
        match self {
            Running::Native(child, _) => match child.try_wait() {
                Ok(Some(status)) => Some(match (status.code(), status.signal()) {
                    (Some(code), _) => format!("with status {code}"),
                    (None, Some(signal)) => format!("killed by signal {signal}"),
                    (None, None) => format!("{status}"),
                }),
                Ok(None) => None,
                Err(e) => Some(format!("(waiting for it failed: {e})")),
            },
            Running::Docker(run) => run.exited().map(|code| match code {
                Ok(code) => format!("with status {code}"),
                Err(e) => format!("(the engine could not say how: {e})"),
            }),
        }
    }
}

/// A service the loop started, and what it was started from.
struct Started {
    fingerprint: Fingerprint,
    running: Running,
    /// Its end was told (once: see [`tell_ends`]).
    told: bool,
}

/// How often the loop looks whether a service it started has ended, while
/// it waits for changes.
const END_POLL: Duration = Duration::from_millis(200);

/// Tells, once each, the services that ended since the last look: a
/// service that exits is not started again until what it runs changes, and
/// a user in the edit loop must not take its silence for running.
fn tell_ends(running: &mut BTreeMap<String, Started>, out: &Output) {
    for (name, started) in running.iter_mut().filter(|(_, s)| !s.told) {
        if let Some(how) = started.running.ended() {
            started.told = true;
            out.status(
                "Exited",
                &format!("{name} {how} (it starts again when its image or policy changes)"),
            );
        }
    }
}

/// One service's identity for restarts: what it runs and with what.
#[derive(PartialEq, Eq)]
struct Fingerprint {
    spec: RunSpec,
    image: String,
}

/// Runs `scone dev`.
pub fn run(args: &DevArgs) -> anyhow::Result<i32> {
    let out = Output::new(&args.common, 0);
    let mut common = args.common.clone();
    let only = std::mem::take(&mut common.services);
    let apply = ApplyArgs {
        build: BuildArgs {
            common,
            ..BuildArgs::default()
        },
        // A save of a half-edited Meshfile must not delete a generated
        // secret's value: the cycle is not applied (`scone apply` drops it).
        keep_generated: true,
        ..ApplyArgs::default()
    };
    let (tx, rx) = mpsc::channel();
    stop_on_signals(tx.clone()).context("listening for Ctrl-C, SIGTERM and SIGHUP")?;
    let stale = scone::dev::rootfs::remove_stale();
    if !stale.is_empty() {
        out.status(
            "Removed",
            &format!(
                "{} rootfs folder(s) of dev loops that no longer run, in {}",
                stale.len(),
                std::env::temp_dir().display()
            ),
        );
    }

    let mut running: BTreeMap<String, Started> = BTreeMap::new();
    let mut watcher = None;
    let mut pending: Option<(Vec<Change>, Instant)> = None;
    let own = OwnOutput::of_this_process();
    // What the last good cycle depends on (`None`: nothing loaded yet, or
    // broken: any change may be the fix).
    let mut relevance: Option<Relevance>;
    loop {
        let current = pending.take();
        let started = current.as_ref().map_or_else(Instant::now, |p| p.1);
        match cycle(&apply, &only, args.native, &mut running, &out) {
            Ok(Some((outcome, restarted))) => {
                relevance = outcome
                    .workspace
                    .as_ref()
                    .map(|ws| Relevance::new(&ws.watched, &outcome.inputs));
                let root = outcome
                    .workspace
                    .as_ref()
                    .map(|ws| ws.root.canonicalize().unwrap_or_else(|_| ws.root.clone()));
                if let (None, Some(ws), Some(root)) =
                    (&watcher, outcome.workspace.as_ref(), root.as_ref())
                {
                    let target = ws.target_dir(apply.build.common.target_dir.as_deref());
                    let target = target.canonicalize().unwrap_or(target);
                    watcher = Some(
                        watch(
                            root,
                            &target,
                            Duration::from_millis(args.debounce_ms),
                            tx.clone(),
                        )
                        .context("watching the workspace")?,
                    );
                    out.status("Watching", &format!("{} (Ctrl-C to stop)", root.display()));
                }
                let built = outcome.report.as_ref().map(|r| r.built).unwrap_or_default();
                let changed = current
                    .map(|(changes, _)| {
                        describe(&changes, root.as_deref().unwrap_or(Path::new("")))
                    })
                    .unwrap_or_else(|| "initial build".into());
                let restarted = if restarted.is_empty() {
                    "none".to_string()
                } else {
                    restarted.join(", ")
                };
                out.status(
                    "Cycle",
                    &format!(
                        "changed: {changed}; rebuilt {built} step(s); restarted: {restarted}; {:.2}s from save to running",
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            Ok(None) => relevance = None,
            Err(err) => {
                relevance = None;
                if let Some(diags) = err.downcast_ref::<scone::manifest::Diagnostics>() {
                    out.diagnostics(&diags.0);
                    out.status("Watching", "for a fix");
                } else {
                    // Not the manifests (a Docker engine that is not there,
                    // a CAS that cannot be read): the next change tries again.
                    out.error(&scone::cause::with_causes(err.as_ref()));
                    out.status("Watching", "for a change, then trying again");
                }
                if watcher.is_none() {
                    // Nothing could be loaded yet: watch the current folder.
                    let cwd = std::env::current_dir()?;
                    watcher = Some(watch(
                        &cwd,
                        &cwd.join("target"),
                        Duration::from_millis(args.debounce_ms),
                        tx.clone(),
                    )?);
                }
            }
        }
        let mut idle = || tell_ends(&mut running, &out);
        match next_change(&rx, &own, relevance.as_ref(), &mut idle) {
            Ok(change) => pending = Some(change),
            Err(signal) => break stopped(signal, running, &out),
        }
    }
}

/// Stops every service (removing their rootfs folders) on `signal`; the
/// exit code: 0 on Ctrl-C, the loop's usual end, else 128 + the signal's
/// number, as a shell says a process it ended (143 for SIGTERM, 129 for
/// SIGHUP).
fn stopped(signal: i32, running: BTreeMap<String, Started>, out: &Output) -> anyhow::Result<i32> {
    for (_, started) in running {
        started.running.stop();
    }
    if signal == libc::SIGINT {
        out.status("Stopped", "every service scone dev started");
        return Ok(0);
    }
    let name = if signal == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGHUP"
    };
    out.status(
        "Stopped",
        &format!("every service scone dev started ({name})"),
    );
    Ok(128 + signal)
}

/// Sends [`DevEvent::Stop`] to `tx` on the first Ctrl-C (SIGINT), SIGTERM
/// or SIGHUP. The handlers are in place when it returns (before any service
/// starts); a thread waits for them.
fn stop_on_signals(tx: mpsc::Sender<DevEvent>) -> std::io::Result<()> {
    on_stop_signal(move |signal| {
        let _ = tx.send(DevEvent::Stop { signal });
    })
}

/// Calls `stop` with the first Ctrl-C (SIGINT), SIGTERM or SIGHUP that comes
/// (its number), instead of ending the process: the handlers are in place
/// when it returns; a thread waits for them. `scone dev` and `scone run`
/// stop their native services with it.
pub(super) fn on_stop_signal(stop: impl FnOnce(i32) + Send + 'static) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term, mut hup) = {
        let _in = rt.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::spawn(move || {
        let signal = rt.block_on(async {
            tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            }
        });
        stop(signal);
    });
    Ok(())
}

/// Waits for changes that can matter (everything that arrived meanwhile
/// coalesced), calling `idle` every [`END_POLL`] while none comes; `Err`
/// with the signal that stops the loop.
fn next_change(
    rx: &mpsc::Receiver<DevEvent>,
    own: &OwnOutput,
    relevance: Option<&Relevance>,
    idle: &mut dyn FnMut(),
) -> Result<(Vec<Change>, Instant), i32> {
    let matters = |c: &Change| !own.is_ours(&c.path) && relevance.is_none_or(|r| r.matters(c));
    loop {
        let (changes, at) = match rx.recv_timeout(END_POLL) {
            Ok(DevEvent::Changed { changes, at }) => (changes, at),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                idle();
                continue;
            }
            Ok(DevEvent::Stop { signal }) => return Err(signal),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(libc::SIGINT),
        };
        let mut all: Vec<Change> = changes.into_iter().filter(|c| matters(c)).collect();
        let mut first = (!all.is_empty()).then_some(at);
        loop {
            match rx.try_recv() {
                Ok(DevEvent::Changed { changes, at }) => {
                    let before = all.len();
                    all.extend(changes.into_iter().filter(|c| matters(c)));
                    if all.len() > before {
                        first = Some(first.map_or(at, |f| f.min(at)));
                    }
                }
                Ok(DevEvent::Stop { signal }) => return Err(signal),
                Err(_) => break,
            }
        }
        if let Some(first) = first {
            return Ok((all, first));
        }
    }
}

/// One build + apply + restart. `Ok(None)`: the build failed (reported).
fn cycle(
    apply: &ApplyArgs,
    only: &[String],
    native: bool,
    running: &mut BTreeMap<String, Started>,
    out: &Output,
) -> anyhow::Result<Option<(Outcome, Vec<String>)>> {
    let outcome = execute(&apply.build, Some(apply))?;
    if outcome.code != 0 {
        return Ok(None);
    }
    let Some(ws) = outcome.workspace.as_ref() else {
        anyhow::bail!("internal: an apply plans from its workspace");
    };
    let target = ws.target_dir(apply.build.common.target_dir.as_deref());
    let cas = scone::cas::local::LocalCas::open(&scone::cas::local::default_dir()?)?;
    let mut restarted = Vec::new();
    let mut wanted = Vec::new();
    for mesh in &ws.meshes {
        let ns = mesh.namespace();
        let Some(session) = cas.session(ns)? else {
            continue;
        };
        let secrets = cas.secret_values(ns)?;
        for service in &mesh.services {
            let unit = &ws.services[service.unit];
            if !only.is_empty() && !only.iter().any(|n| n == &service.name || n == unit.name()) {
                continue;
            }
            wanted.push(service.name.clone());
            let spec = scone::run::resolve(&session.yaml, &service.name, &secrets)?;
            let image = outcome
                .report
                .as_ref()
                .and_then(|r| {
                    r.results
                        .get(&scone::engine::StepId::new("image", unit.name()))
                })
                .map(|r| r.record["manifest_digest"].to_string())
                .unwrap_or_default();
            let fp = Fingerprint { spec, image };
            if running
                .get(&service.name)
                .is_some_and(|old| old.fingerprint == fp)
            {
                continue;
            }
            if let Some(old) = running.remove(&service.name) {
                old.running.stop();
            }
            let layout = target.join("images").join(unit.name());
            let tag = &unit.manifest.build.to.value;
            let handle = if native {
                let image = scone::oci::layout::read_layout(&layout, Some(tag))?;
                let layers: Vec<_> = image.layers.iter().map(|l| l.path.clone()).collect();
                let rootfs = scone::dev::rootfs::tempdir(scone::dev::rootfs::Kind::Dev)?;
                scone::run::unpack(&layers, rootfs.path())?;
                // Tied to this thread, the main one: it dies with the loop.
                Running::Native(
                    scone::run::start_native_tied(&fp.spec, rootfs.path())?,
                    rootfs,
                )
            } else {
                let host = std::env::var("DOCKER_HOST").ok();
                scone::oci::docker::load(&layout, tag, host.as_deref())
                    .with_context(|| format!("loading {tag} ({})", super::run::DOCKER_HINT))?;
                let network = !unit.manifest.ports.is_empty();
                Running::Docker(scone::run::start_docker(
                    &fp.spec,
                    tag,
                    host.as_deref(),
                    network,
                )?)
            };
            restarted.push(service.name.clone());
            running.insert(
                service.name.clone(),
                Started {
                    fingerprint: fp,
                    running: handle,
                    told: false,
                },
            );
        }
    }
    let mut stopped = Vec::new();
    for name in running
        .keys()
        .filter(|n| !wanted.contains(n))
        .cloned()
        .collect::<Vec<_>>()
    {
        if let Some(started) = running.remove(&name) {
            started.running.stop();
            stopped.push(name);
        }
    }
    if !stopped.is_empty() {
        out.status(
            "Stopped",
            &format!("{} (no longer in the mesh)", stopped.join(", ")),
        );
    }
    // A cycle that restarted nothing may still have changed the session
    // (a service or a secret left the mesh): it says so.
    let uploaded = uploaded_sessions(&outcome);
    if restarted.is_empty() && !uploaded.is_empty() {
        out.status(
            "Applied",
            &format!(
                "session {} to the local CAS (no running service's image or policy changed)",
                uploaded.join(", ")
            ),
        );
    } else if restarted.is_empty()
        && stopped.is_empty()
        && outcome.report.as_ref().is_some_and(|r| r.built > 0)
    {
        out.status("Unchanged", "no service's image or policy changed");
    }
    Ok(Some((outcome, restarted)))
}

/// The sessions this cycle's apply uploaded (a changed session), by namespace.
fn uploaded_sessions(outcome: &Outcome) -> Vec<String> {
    let Some(report) = outcome.report.as_ref() else {
        return Vec::new();
    };
    report
        .results
        .iter()
        .filter(|(id, r)| id.kind == "upload" && r.info["uploaded"] == serde_json::json!(true))
        .map(|(id, _)| id.unit.to_string())
        .collect()
}
