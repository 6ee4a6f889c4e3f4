//! `scone run -p SERVICE`: apply to the embedded local CAS, then run the service
//! locally in simulation mode (see [`scone::run`]).

use anyhow::Context;
use scone::cas::Cas;

use super::args::{ApplyArgs, BuildArgs, RunArgs};
use super::build::{load_workspace, run_apply};
use super::output::Output;

/// Runs `scone run`.
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let mut common = args.common.clone();
    if common.services.len() != 1 {
        return Err(super::UsageError::new(
            format!(
                "`scone run` runs exactly one service, not {}",
                common.services.len()
            ),
            "give one: scone run -p SERVICE",
        )
        .into());
    }
    let name = common.services[0].clone();
    // The service is found before anything is built or applied: a misspelt
    // `-p` must not upload a session first.
    common.services.clear();
    let ws = load_workspace(&common)?;
    let unit = ws
        .find_service(&name)
        .map_err(scone::manifest::Diagnostics::from)?;
    let (mesh, service) = ws
        .meshes
        .iter()
        .find_map(|m| {
            m.services
                .iter()
                .find(|s| s.name == name)
                .or_else(|| m.services.iter().find(|s| s.unit == unit))
                .map(|s| (m, s))
        })
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
        let image = scone::oci::layout::read_layout(&layout, Some(tag))?;
        let layers: Vec<_> = image.layers.iter().map(|l| l.path.clone()).collect();
        let rootfs = tempfile::Builder::new()
            .prefix("scone-run-")
            .tempdir()
            .context("creating a folder for the rootfs")?;
        scone::run::unpack(&layers, rootfs.path())?;
        return Ok(scone::run::run_native(&spec, rootfs.path())?);
    }
    let host = std::env::var("DOCKER_HOST").ok();
    scone::oci::docker::load(&layout, tag, host.as_deref()).with_context(|| {
        format!("loading {tag} (is a Docker engine running? set DOCKER_HOST, or use --native)")
    })?;
    let network = !unit.manifest.ports.is_empty();
    Ok(scone::run::run_docker(
        &spec,
        tag,
        host.as_deref(),
        network,
    )?)
}
