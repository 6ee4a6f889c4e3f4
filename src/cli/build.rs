//! `scone build` and `scone apply`, as four steps: **load** (the build state,
//! and — unless it says nothing changed — the workspace), **plan**, **run**
//! (the engine, reusing the steps the state knows are unaffected), and
//! **record** (`scone.lock`, then the next build state, under the target
//! lock). `apply` adds the policy upload, pushes and loads.

use anyhow::{bail, Context};
use scone::engine::state::{LastLoad, Look, NextState, Verdict};
use scone::engine::{self, EngineOptions, Session, StepId};
use scone::plan::{self, ApplySettings, CasChoice};
use scone::workspace::{LoadOptions, Workspace};
use std::path::{Path, PathBuf};

use super::args::{ApplyArgs, BuildArgs, CasKind, CommonArgs};
use super::folders::{local_cas_dir, refuse_cas_in_target, refuses_target, unmake_target};
use super::invocation;
use super::output::Output;
use super::refusals::{check_apply_only, check_take_over, checked};
use super::replay::replayed;
use super::setup::{kept_plan, Kept, Setup};
use super::timings::Clock;

/// Loads and validates the workspace of the common arguments.
pub fn load_workspace(common: &CommonArgs) -> anyhow::Result<Workspace> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let ws = scone::workspace::load(&scone::workspace::LoadOptions {
        files: common.files.clone(),
        cwd,
        target_dir: common.target_dir.clone(),
    })?;
    Ok(ws)
}

/// The services `-p` names, as indices; empty = all.
pub fn selected(ws: &Workspace, common: &CommonArgs) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for name in &common.services {
        let i = ws
            .find_service(name)
            .map_err(scone::manifest::Diagnostics::from)?;
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

/// The user cache (base images): `$SCONE_CACHE_DIR`, else the platform cache dir.
pub fn cache_dir() -> PathBuf {
    scone::oci::base::default_cache_dir()
}

/// Runs `scone build`.
pub fn run_build(args: &BuildArgs) -> anyhow::Result<i32> {
    if args.print_defaults {
        return super::defaults::run(args);
    }
    let outcome = execute(args, None)?;
    let code = outcome.code;
    // The process exits next: freeing the workspace and report of a big repo
    // one allocation at a time would only delay that.
    std::mem::forget(outcome);
    Ok(code)
}

/// Runs `scone apply`.
pub fn run_apply(args: &ApplyArgs) -> anyhow::Result<i32> {
    // As with `build`: print, build nothing, upload and push nothing.
    if args.build.print_defaults {
        return super::defaults::run(&args.build);
    }
    if args.plan {
        return super::plan::run(args);
    }
    let outcome = execute_with(&args.build, Some(args), Leaves::Applied)?;
    Ok(outcome.code)
}

/// What one build or apply did.
pub struct Outcome {
    pub code: i32,
    /// The workspace, unless the build state said nothing changed.
    pub workspace: Option<Workspace>,
    /// The report of the last engine run.
    pub report: Option<engine::BuildReport>,
    /// The inputs the planned steps declare (`(path, is a folder)`), for
    /// `scone dev` to tell what a change touches: an apply's only (a build's
    /// are empty: listing them costs a `stat` per `copy:` entry).
    pub inputs: Vec<(PathBuf, bool)>,
    /// The build states, freed when the outcome is dropped (`scone dev`);
    /// `scone build` forgets them, as it ends the process next.
    #[allow(dead_code)] // held only to be dropped (or not) with the outcome
    pub spent: Option<scone::engine::state::Spent>,
}

/// Builds (and with `apply`, applies) once: load → plan → run → record.
pub fn execute(args: &BuildArgs, apply: Option<&ApplyArgs>) -> anyhow::Result<Outcome> {
    execute_with(args, apply, Leaves::Lock)
}

/// Builds like `scone build` but leaves `scone.lock` as it is (`scone verify`
/// and `apply --plan` compare it with what is deployed, and change nothing
/// but `target/`). The state it leaves is never replayed, so the next build
/// writes the lock.
pub fn build_keeping_lock(args: &BuildArgs) -> anyhow::Result<Outcome> {
    execute_with(args, None, Leaves::Nothing)
}

/// What a build writes beside `target/`'s outputs and state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaves {
    /// `scone.lock` (`scone build`, `scone dev`).
    Lock,
    /// Nothing: `scone.lock` stays as it is (`verify`, `apply --plan`).
    Nothing,
    /// `scone.lock`, and the chart values applied (`scone apply`).
    Applied,
}

fn execute_with(
    args: &BuildArgs,
    apply: Option<&ApplyArgs>,
    leaves: Leaves,
) -> anyhow::Result<Outcome> {
    let keep_lock = leaves == Leaves::Nothing;
    let records_applied = leaves == Leaves::Applied;
    // Anything read after this that changes later is caught by the next
    // build (see `engine::state`).
    // When the load's stats count as taken (see `LOAD_TICK_NS`).
    let started_ns = scone::engine::stat::now_ns() - scone::engine::stat::LOAD_TICK_NS;
    let common = &args.common;
    let command = if apply.is_some() { "apply" } else { "build" };
    let mut clock = Clock::start(args.timings, command, args.jobs.unwrap_or(0));
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let location = scone::workspace::locate(&LoadOptions {
        files: common.files.clone(),
        cwd: cwd.clone(),
        target_dir: None,
    });
    // Before the lock, which marks the folder as scone's (docs/security.md).
    if let Some(refused) = location.target_refusal(common.target_dir.as_deref(), &cwd) {
        return Err(scone::manifest::Diagnostics::from(refused).into());
    }
    let target_dir = scone::workspace::target_dir(
        &location.root,
        &location.config(),
        common.target_dir.as_deref(),
    );
    refuse_cas_in_target(&target_dir, &cwd)?;
    // A first build makes `target/` only for a workspace it can start to
    // load: scone run in the wrong folder leaves nothing behind.
    if !target_dir.join(".scone").exists() {
        scone::workspace::inputs(&LoadOptions {
            files: common.files.clone(),
            cwd: cwd.clone(),
            target_dir: None,
        })?;
    }
    // Made by this build: a load that then refuses it (a target inside what
    // the build reads) takes it away again, so that nothing is left there.
    let existed = target_dir.exists();
    let made = std::fs::read_dir(&target_dir).map_or(true, |mut e| e.next().is_none());
    let probe = Output::new(common, 0);
    let session = Session::open(&target_dir, || {
        probe.status("Blocking", "waiting for file lock on build directory")
    })?;

    // Load: the state first; the workspace only if something changed.
    let key = invocation::key(args, apply);
    let own_names = invocation::own_names(&location.root, &target_dir);
    let own: Vec<&std::ffi::OsStr> = own_names.iter().map(|n| n.as_os_str()).collect();
    let mut taken = None;
    if apply.is_none() {
        // A replay that lists its steps reads them from the rest of the state.
        let listed = || !probe.lists_fresh() || session.state().last.is_some();
        match session.fresh(&key, &own) {
            Look::Holds(fresh) if listed() => {
                return replayed(&session, &fresh, &probe, clock, &target_dir, common)
            }
            Look::Moved(stats) => taken = Some(stats),
            Look::Holds(_) | Look::Unknown => {}
        }
    }
    let verdict = match apply {
        None => session.state().check_with(&key, &own, taken),
        Some(_) => Verdict::Full {
            reason: "apply always runs its effects".into(),
        },
    };
    let mut prune = true;
    let mut seen = scone::engine::state::Seen::default();
    let reuse = match verdict {
        Verdict::Fresh => {
            let last = session.state().last.as_ref();
            let fresh = scone::engine::state::FreshBuild {
                steps: last.map_or(0, |l| l.steps.len()),
                warnings: last.map(|l| l.warnings.clone()).unwrap_or_default(),
            };
            return replayed(&session, &fresh, &probe, clock, &target_dir, common);
        }
        Verdict::Dirty {
            dirty,
            reason,
            prune: output_changed,
            seen: check_seen,
        } => {
            seen = check_seen;
            if common.explain || common.verbose > 0 {
                probe.status("Dirty", &relative_to_here(&reason));
            }
            prune = output_changed;
            Some(std::sync::Arc::new(engine::Reuse::new(dirty)))
        }
        Verdict::Full { reason } => {
            if common.explain || common.verbose > 0 {
                probe.status(
                    "Dirty",
                    &format!("{}: every step is checked", relative_to_here(&reason)),
                );
            }
            None
        }
    };
    let root_listing = scone::engine::stat::listing_digest(&location.root, |n| {
        scone::engine::state::is_own_name(n, &own)
    });
    let root = root_listing.map(|d| (location.root.as_path(), d));
    let observe = |paths: &scone::watch::Watched| {
        scone::engine::state::observe(paths, root, |path| seen.get(session.state(), path))
    };

    // A dirty build's load holds (the check said so): the workspace is the
    // last build's, and so is its plan if the settings are (`plan::stored`).
    let kept = match (&reuse, apply) {
        (Some(reuse), None) if common.services.is_empty() => {
            kept_plan(session.state(), reuse, &location, &target_dir, args, &probe)?
        }
        _ => None,
    };
    let mut kept_nodes = None;
    let (ws, watched, setup, only, kept_bytes, warnings) = match kept {
        Some(Kept {
            nodes,
            plan,
            setup,
            warnings,
        }) => {
            if common.explain || common.verbose > 0 {
                probe.status("Planned", "as the last build (its load holds)");
            }
            probe.warn_all(&super::output::read_stored_warnings(&warnings));
            kept_nodes = Some(nodes);
            let lock = setup.root.join("scone.lock");
            let load = scone::engine::state::observe_load(session.state(), &lock, root, &seen);
            (None, load, setup, Vec::new(), Some(plan), warnings)
        }
        None => {
            let ws = load_workspace(common).inspect_err(|e| {
                if made && refuses_target(e) {
                    unmake_target(&target_dir, existed);
                }
            })?;
            let (only, looked) = checked(&ws, args, &cwd, &probe)?;
            let mut paths = ws.watched.clone();
            paths.extend(looked.into_iter().map(|p| (p, scone::watch::Watch::Kind)));
            let watched = observe(&paths);
            let setup = Setup::of(&ws.config, &ws.root, args, &probe)?;
            let warnings = super::output::stored_warnings(&ws.warnings);
            (Some(ws), watched, setup, only, None, warnings)
        }
    };
    let workspace = || {
        ws.as_ref()
            .ok_or_else(|| anyhow::anyhow!("internal: no workspace for a plan kept"))
    };

    // Plan.
    clock.phase("plan");
    let Setup {
        root,
        lock,
        lock_text,
        remote,
        ..
    } = &setup;
    let lock_path = root.join("scone.lock");
    let locked = common.locked || common.frozen;
    let settings = |apply| setup.settings(&target_dir, args, only.clone(), apply);
    // With --locked, an apply first builds without effects and checks the
    // lock, so that nothing is uploaded or pushed from a build that changes it.
    let phases: Vec<Option<ApplySettings>> = match apply {
        None => vec![None],
        Some(a) => {
            check_take_over(workspace()?, &a.take_over)?;
            check_apply_only(workspace()?, &only)?;
            let effects = ApplySettings {
                push: a.push,
                cas: match a.cas {
                    CasKind::Local => CasChoice::Local {
                        dir: local_cas_dir(&probe)?,
                        project: project_of(workspace()?),
                    },
                    CasKind::Remote => CasChoice::Remote,
                },
                ca_file: a.cas_ca.clone(),
                take_over: a.take_over.clone(),
                keep_generated: a.keep_generated,
            };
            if locked {
                vec![None, Some(effects)]
            } else {
                vec![Some(effects)]
            }
        }
    };
    // A whole build prunes what no step of it made (outputs, `scone.lock`
    // entries). `-p` narrows it to some services; so does `-f` naming some
    // of a workspace's `members` (a CI job per mesh, run with `--locked`,
    // must not drop the other meshes' entries), as cargo's
    // `--manifest-path member/Cargo.toml` keeps the workspace's lock whole.
    let narrowed_by_files = !common.files.is_empty()
        && match &ws {
            Some(ws) => !ws.config.members.is_empty(),
            None => !location.config().members.is_empty(),
        };
    let whole = only.is_empty() && !narrowed_by_files;
    let mut last = None;
    let mut index = None;
    let mut inputs = Vec::new();
    for phase in phases {
        let effects = phase.is_some();
        if last.is_some() {
            clock.phase("plan");
        }
        let made = settings(phase);
        let nodes = match kept_nodes.take() {
            Some(nodes) => nodes,
            None => plan::plan(workspace()?, &made)?.nodes,
        };
        let planned: Vec<StepId> = nodes.iter().map(|n| n.step.id().clone()).collect();
        if apply.is_some() {
            inputs = declared_inputs(&nodes);
        }
        clock.phase("run");

        // Run.
        let out = Output::new(common, nodes.len());
        let opts = EngineOptions {
            jobs: args.jobs.unwrap_or(0),
            remote: remote
                .clone()
                .map(|t| t as std::sync::Arc<dyn engine::RemoteTier>),
            // Only the first phase: the second sees the first's outputs.
            reuse: if last.is_none() { reuse.clone() } else { None },
        };
        if let Some(tier) = remote.as_ref().filter(|_| last.is_none()) {
            tier.begin(&planned, session.store().root());
        }
        let mut report = session.run(&nodes, &opts, &clock.tee(&out))?;
        clock.ran(&nodes, &report, &session);
        out.ran(&report);
        if !report.success() {
            clock.phase("record");
            let next = next_state(&mut report, planned, whole, None);
            let spent = session.finish(next)?;
            upload_rest(remote.as_deref(), None, &target_dir, common, &probe);
            out.finished(&report);
            clock.save(false, &target_dir, &probe, common.message_format);
            return Ok(Outcome {
                code: 1,
                workspace: ws,
                report: Some(report),
                inputs,
                spent: Some(spent),
            });
        }
        let updated = scone::lockfile::updated(lock, &report.results, whole.then_some(&planned));
        // Byte for byte: a lock that reads the same but is not what this
        // build writes (hand-edited, another format) is a change too.
        let text = locked.then(|| updated.to_text());
        if let Some(text) = text.filter(|t| lock_text.as_deref() != Some(t.as_str())) {
            let diff =
                scone::lockfile::diff(lock_text.as_deref().unwrap_or_default(), &text).join("\n");
            let next = next_state(&mut report, planned, whole, None);
            drop(session.finish(next)?);
            return Err(crate::cli::Refused {
                message: format!("scone.lock needs to be updated but --locked was given:\n{diff}"),
                hint: "run without --locked to update scone.lock".into(),
            }
            .into());
        }
        index = remote
            .as_ref()
            .filter(|t| t.writes())
            .and_then(|_| index_records(&nodes, &report, &session))
            .map(|records| (planned.clone(), records));
        // The plan the state keeps: the one kept, or this one if a later
        // dirty build could take it (a whole build, no effects, a state
        // that is replayed: see `load` below).
        let plan: std::sync::Arc<[u8]> = match &kept_bytes {
            Some(plan) => std::sync::Arc::clone(plan),
            None if whole && apply.is_none() && !keep_lock => {
                plan::stored::encode(&nodes, &made.digest())
                    .map(Into::into)
                    .unwrap_or_default()
            }
            None => Default::default(),
        };
        last = Some((report, planned, updated, effects, plan, out));
    }
    let Some((mut report, planned, new_lock, effects, plan, out)) = last else {
        bail!("internal: a build without a phase");
    };

    // Record: outputs no step of a whole build made go (unless the state
    // knows the output folders are as the last build left them), then
    // scone.lock, then the state (the last file, under the lock).
    clock.phase("record");
    if whole && prune {
        let state = session.state();
        let reused: Vec<_> = report
            .reused
            .iter()
            .filter_map(|&at| session.store().record(state.steps.get(at)?))
            .collect();
        let published = report
            .results
            .values()
            .chain(reused.iter())
            .flat_map(|r| r.publish.iter());
        engine::publish::prune(&target_dir, published, session.store().paths())
            .with_context(|| format!("removing stale outputs from {}", target_dir.display()))?;
    }
    let updated = !keep_lock
        && new_lock
            .save(&lock_path)
            .with_context(|| format!("writing {}", lock_path.display()))?;
    if updated && common.verbose > 0 {
        probe.status("Updated", &lock_path.display().to_string());
    }
    let load = (!effects && !keep_lock && report.all_cacheable).then(|| LastLoad {
        key,
        started_ns,
        watched,
        own_names,
        lock: lock_path.clone(),
        outputs: engine::publish::OUTPUT_FOLDERS
            .iter()
            .map(|d| target_dir.join(d))
            .collect(),
        warnings,
        plan,
    });
    let spent = session.finish(next_state(&mut report, planned, whole, load))?;
    upload_rest(remote.as_deref(), index, &target_dir, common, &probe);
    if let Some(a) = apply {
        if a.load {
            clock.phase("docker load");
            load_images(workspace()?, &only, &target_dir, &probe)?;
        }
        // What the next `apply --plan` compares the chart with: each mesh
        // applied whole (`-f` naming some members applies those meshes whole).
        if records_applied && only.is_empty() {
            super::plan::record_applied(workspace()?, &target_dir)?;
        }
    }
    out.finished(&report);
    clock.save(true, &target_dir, &probe, common.message_format);
    Ok(Outcome {
        code: 0,
        workspace: ws,
        report: Some(report),
        inputs,
        spent: Some(spent),
    })
}

/// The paths the steps of `nodes` declare as inputs: `(path, is a folder)`.
fn declared_inputs(nodes: &[engine::Node]) -> Vec<(PathBuf, bool)> {
    nodes
        .iter()
        .flat_map(|n| n.step.inputs())
        .map(|input| match input {
            engine::Input::File { path, .. } | engine::Input::Read { path, .. } => (path, false),
            engine::Input::Tree { path, .. } | engine::Input::Rootfs { path, .. } => (path, true),
        })
        .collect()
}

/// The project a local CAS session belongs to: the canonical workspace root.
pub(super) fn project_of(ws: &Workspace) -> String {
    ws.root
        .canonicalize()
        .unwrap_or_else(|_| ws.root.clone())
        .display()
        .to_string()
}

/// The state a build leaves (`load`: `None` when it cannot be replayed).
/// The next build state; the consults move out of `report` (nothing reads
/// them after: at 10,000 services a copy was tens of MB).
fn next_state(
    report: &mut engine::BuildReport,
    planned: Vec<StepId>,
    whole: bool,
    load: Option<LastLoad>,
) -> NextState {
    NextState {
        ran: std::mem::take(&mut report.consulted)
            .into_iter()
            .filter_map(|(id, own)| {
                let record = report.results.get(&id)?;
                Some((id, std::sync::Arc::clone(record), own))
            })
            .collect(),
        reused: report.reused.clone(),
        planned,
        whole,
        last: load,
        dropped: Vec::new(),
    }
}

/// Every cacheable result of the build just run, for its build index (`None` if a
/// reused step's record cannot be read: no index then).
fn index_records(
    nodes: &[engine::Node],
    report: &engine::BuildReport,
    session: &Session,
) -> Option<Vec<engine::ActionRecord>> {
    let cacheable: std::collections::HashSet<StepId> = nodes
        .iter()
        .filter(|n| n.step.cacheable())
        .map(|n| n.step.id().clone())
        .collect();
    let state = session.state();
    let reused: Vec<_> = report
        .reused
        .iter()
        .filter_map(|&at| state.steps.get(at))
        .map(|s| (s.id.clone(), s.record(state)))
        .collect();
    scone::remote::tier::index_records(&cacheable, &report.results, &reused)
}

/// After the build's result is out: the uploads still under way, the build index
/// (`index`: the plan and every cacheable result) if given, and the remote's
/// warnings and counts.
fn upload_rest(
    remote: Option<&scone::remote::Tier>,
    index: Option<(Vec<StepId>, Vec<engine::ActionRecord>)>,
    target_dir: &Path,
    common: &CommonArgs,
    out: &Output,
) {
    let Some(tier) = remote else {
        return;
    };
    let index = index.as_ref().map(|(p, r)| (p.as_slice(), r.clone()));
    for warning in tier.complete(index, &target_dir.join(".scone")) {
        out.warn(&warning);
    }
    if common.verbose == 0 {
        return;
    }
    let st = tier.stats();
    out.status(
        "Remote",
        &format!(
            "{}: {} hits, {} misses{}, {} found in the build index, {} late, {:.1} MB downloaded, {} entries and {} blobs uploaded",
            tier.url(),
            st.hits,
            st.misses,
            if st.unasked > 0 {
                format!(
                    ", {} not asked (the remote was off after a transport error)",
                    st.unasked
                )
            } else {
                String::new()
            },
            st.indexed,
            st.late,
            st.downloaded_bytes as f64 / 1e6,
            st.uploaded_entries,
            st.uploaded_blobs
        ),
    );
}

fn load_images(ws: &Workspace, only: &[usize], target: &Path, out: &Output) -> anyhow::Result<()> {
    let host = std::env::var("DOCKER_HOST").ok();
    for (i, unit) in ws.services.iter().enumerate() {
        if !only.is_empty() && !only.contains(&i) {
            continue;
        }
        let layout = target.join("images").join(unit.name());
        let tag = &unit.manifest.build.to.value;
        scone::oci::docker::load(&layout, tag, host.as_deref())
            .with_context(|| format!("loading {tag} into the Docker engine"))?;
        out.status("Loaded", tag);
    }
    Ok(())
}

/// `reason` with the paths under the current folder shown relative to it, as
/// the user typed them (`services/a/main.cfg changed`).
fn relative_to_here(reason: &str) -> String {
    let Ok(here) = std::env::current_dir().and_then(std::fs::canonicalize) else {
        return reason.to_string();
    };
    let prefix = format!("{}/", here.display());
    reason.replace(&prefix, "")
}
