//! What a build refuses of a loaded workspace before any step runs: a
//! production build's tolerated Meshfile settings, an unknown `-p`, a
//! default base missing from this machine, an entry binary surely missing
//! from its image, an unknown `--take-over` namespace. Each refusal names the
//! file, line and field, with what to do.

use anyhow::bail;
use scone::workspace::Workspace;
use std::path::{Path, PathBuf};

use super::args::BuildArgs;
use super::build::{cache_dir, selected};
use super::output::Output;
use super::setup::debug_mode;

/// What a build refuses of a loaded workspace before any step: a production
/// build's tolerated Meshfile settings, an unknown `-p`, a missing default
/// base or entry binary. Prints the load's warnings. Gives the services `-p`
/// selects (empty: all), and the paths the entry binaries were looked up at:
/// the build watches their kinds with the load's paths (`plan::entry`).
pub(super) fn checked(
    ws: &Workspace,
    args: &BuildArgs,
    cwd: &Path,
    out: &Output,
) -> anyhow::Result<(Vec<usize>, Vec<PathBuf>)> {
    let debug = debug_mode(&ws.config, args);
    if !debug {
        let refused: Vec<_> = ws
            .meshes
            .iter()
            .filter_map(|m| {
                let text = std::fs::read_to_string(&m.mesh.path).ok();
                let mut d = scone::manifest::tolerance::diagnostic(&m.mesh, true, text.as_deref())?;
                d.file = d
                    .file
                    .strip_prefix(cwd)
                    .map(Path::to_path_buf)
                    .unwrap_or(d.file);
                Some(d)
            })
            .collect();
        if !refused.is_empty() {
            return Err(scone::manifest::Diagnostics(refused).into());
        }
    }
    out.warn_all(&ws.warnings);
    let only = selected(ws, &args.common)?;
    check_default_bases(ws, &only)?;
    let entry = scone::plan::entry::missing_entry_binaries(ws, &only, &cache_dir(), cwd);
    if !entry.missing.is_empty() {
        return Err(scone::manifest::Diagnostics(entry.missing).into());
    }
    Ok((only, entry.looked))
}

/// `--take-over` names a mesh's namespace of this workspace (a usage error
/// otherwise, with did-you-mean).
pub(super) fn check_take_over(ws: &Workspace, names: &[String]) -> anyhow::Result<()> {
    let known: Vec<&str> = ws.meshes.iter().map(|m| m.namespace()).collect();
    for name in names {
        if !known.contains(&name.as_str()) {
            let hint = scone::manifest::suggest::hint(name, known.iter().copied())
                .unwrap_or_else(|| "no Meshfile of this workspace has a policy.namespace".into());
            return Err(super::UsageError::new(
                format!("--take-over {name}: no mesh of this workspace has the namespace `{name}`"),
                hint,
            )
            .into());
        }
    }
    Ok(())
}

/// `apply -p` of a service a mesh holds: a usage error. The mesh's session
/// holds every service's measurements, so an apply takes it whole; one of a
/// single service built it and uploaded nothing, and its plan said "No
/// changes". `-p` names services used alone (whose images `--push` pushes).
pub(super) fn check_apply_only(ws: &Workspace, only: &[usize]) -> anyhow::Result<()> {
    for &i in only {
        let held = ws.meshes.iter().find_map(|m| {
            let s = m.services.iter().find(|s| s.unit == i)?;
            Some((m, s))
        });
        if let Some((mesh, service)) = held {
            return Err(super::UsageError::new(
                format!(
                    "apply -p: `{}` is a service of the mesh `{}`, whose session holds every \
                     service's measurements: an apply takes a mesh whole",
                    service.name,
                    mesh.namespace()
                ),
                "run `scone apply`: only what changed is built, and only the sessions that \
                 changed are uploaded (`scone build -p NAME` builds one service)",
            )
            .into());
        }
    }
    Ok(())
}

/// Refuses a build whose services need a default base that is not on this
/// machine, saying how to make it.
fn check_default_bases(ws: &Workspace, only: &[usize]) -> anyhow::Result<()> {
    let cache = cache_dir();
    for (i, unit) in ws.services.iter().enumerate() {
        let b = &unit.manifest.build;
        if (!only.is_empty() && !only.contains(&i))
            || b.from.is_some()
            || ws.config.base.contains_key(&b.kind.value)
        {
            continue;
        }
        if let Some((dir, how)) = scone::plan::missing_default_base(&b.kind.value, &cache) {
            bail!(
                "{}: the default base image of build.kind `{}` is not on this machine: {} does not exist\n  help: {how}",
                unit.manifest.path.display(),
                b.kind.value,
                dir.display()
            );
        }
    }
    Ok(())
}
