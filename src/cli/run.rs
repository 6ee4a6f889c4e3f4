//! `scone run -p SERVICE`: apply to the embedded local CAS, then run the service
//! locally in simulation mode (see [`scone::run`]). Without `-p`, the
//! workspace's only mesh service (as `cargo run` runs the only binary). A
//! native service is stopped with scone (Ctrl-C, SIGTERM, SIGHUP, `kill -9`)
//! and its rootfs folder removed, now or at the next start.

use anyhow::Context;
use scone::cas::Cas;

use super::args::{ApplyArgs, BuildArgs, RunArgs};
use super::build::{load_workspace, run_apply};
use super::output::Output;

/// What to do when the Docker engine cannot be reached (`scone run`, `scone
/// dev` without `--native`).
pub(super) const DOCKER_HINT: &str = "is a Docker engine running? set DOCKER_HOST, or use --native";

/// The one mesh service of `ws`, for `scone run` without `-p`; with none or
/// several, a usage error that names them.
fn only_service(ws: &scone::workspace::Workspace) -> anyhow::Result<String> {
    let mut names: Vec<&str> = ws
        .meshes
        .iter()
        .flat_map(|m| m.services.iter().map(|s| s.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(super::UsageError::new(
            "`scone run` runs a service of a mesh, and this workspace has none",
            "give a Meshfile with -f mesh.yml, and the service with -p SERVICE",
        )
        .into()),
        many => Err(super::UsageError::new(
            format!(
                "`scone run` could not tell which service to run: the workspace has {} mesh services",
                many.len()
            ),
            format!(
                "give one with -p: {}",
                many.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into()),
    }
}

/// Runs `spec` natively on the unpacked image at `layout`: the rootfs folder
/// is named after this process (`scone-run-…`, as `scone dev`'s are), so the
/// next `scone run` or `scone dev` removes it if this one is killed; Ctrl-C,
/// SIGTERM and SIGHUP stop the service and remove it; the service dies with
/// scone even by `kill -9`.
fn native(
    spec: &scone::run::RunSpec,
    layout: &std::path::Path,
    tag: &str,
    out: &Output,
) -> anyhow::Result<i32> {
    let stale = scone::dev::rootfs::remove_stale();
    if !stale.is_empty() {
        out.status(
            "Removed",
            &format!(
                "{} rootfs folder(s) of runs or dev loops that no longer run",
                stale.len()
            ),
        );
    }
    let (tx, stop) = std::sync::mpsc::channel();
    super::dev::on_stop_signal(move |signal| {
        let _ = tx.send(signal);
    })
    .context("listening for Ctrl-C, SIGTERM and SIGHUP")?;
    let image = scone::oci::layout::read_layout(layout, Some(tag))?;
    let layers: Vec<_> = image.layers.iter().map(|l| l.path.clone()).collect();
    let rootfs = scone::dev::rootfs::tempdir(scone::dev::rootfs::Kind::Run)
        .context("creating a folder for the rootfs")?;
    scone::run::unpack(&layers, rootfs.path())?;
    let ended = match stop.try_recv() {
        Ok(signal) => scone::run::Ended::Stopped(signal),
        // Tied to this thread, the main one: it dies with scone.
        Err(_) => {
            let mut child = scone::run::start_native_tied(spec, rootfs.path())?;
            scone::run::wait_or_stop(&mut child, &stop)?
        }
    };
    drop(rootfs);
    match ended {
        scone::run::Ended::Exited(code) => Ok(code),
        scone::run::Ended::Stopped(signal) => {
            out.status("Stopped", &format!("{} (signal {signal})", spec.service));
            Ok(128 + signal)
        }
    }
}

/// Runs `scone run`.
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let mut common = args.common.clone();
    if common.services.len() > 1 {
        return Err(super::UsageError::new(
            format!(
                "`scone run` runs exactly one service, not {}",
                common.services.len()
            ),
            "give one: scone run -p SERVICE",
        )
        .into());
    }
    let given = common.services.pop();
    // The service is found before anything is built or applied: a misspelt
    // `-p` must not upload a session first.
    let ws = load_workspace(&common)?;
    let name = match given {
        Some(name) => name,
        None => only_service(&ws)?,
    };
    let unit = ws
        .find_service(&name)
        .map_err(scone::manifest::Diagnostics::from)?;
    // The mesh service of that name (it runs `unit`), else the first that
    // runs `unit` (`-p` gave its build.name).
    let in_meshes = |pick: &dyn Fn(&scone::workspace::LinkedService) -> bool| {
        ws.meshes
            .iter()
            .find_map(|m| m.services.iter().find(|s| pick(s)).map(|s| (m, s)))
    };
    let (mesh, service) = in_meshes(&|s| s.name == name && s.unit == unit)
        .or_else(|| in_meshes(&|s| s.unit == unit))
        .with_context(|| format!("`{name}` is in no mesh: `scone run` needs a Meshfile (-f mesh.yml) to resolve its environment"))?;
    // Build and apply the workspace to the local CAS (the session holds
    // every service of the mesh).
    common.quiet = true;
    let apply = ApplyArgs {
        build: BuildArgs {
            common: common.clone(),
            ..BuildArgs::default()
        },
        ..ApplyArgs::default()
    };
    let code = run_apply(&apply)?;
    if code != 0 {
        return Ok(code);
    }
    let ns = mesh.namespace();
    let cas = scone::cas::local::LocalCas::open(&scone::cas::local::default_dir()?)?;
    let session = cas
        .session(ns)?
        .with_context(|| format!("the local CAS has no session `{ns}`"))?;
    let secrets = cas.secret_values(ns)?;
    let spec = scone::run::resolve(&session.yaml, &service.name, &secrets)?;
    let out = Output::new(&args.common, 0);
    out.warn(&format!(
        "running {} in simulation mode: no SGX enclave, its secrets are visible to this host",
        service.name
    ));
    let target = ws.target_dir(common.target_dir.as_deref());
    let unit = &ws.services[service.unit];
    let layout = target.join("images").join(unit.name());
    let tag = &unit.manifest.build.to.value;
    if args.native {
        return native(&spec, &layout, tag, &out);
    }
    let host = std::env::var("DOCKER_HOST").ok();
    scone::oci::docker::load(&layout, tag, host.as_deref())
        .with_context(|| format!("loading {tag} ({DOCKER_HINT})"))?;
    let network = !unit.manifest.ports.is_empty();
    Ok(scone::run::run_docker(
        &spec,
        tag,
        host.as_deref(),
        network,
    )?)
}
