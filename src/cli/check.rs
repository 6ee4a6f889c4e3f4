//! `scone check`: load and validate the workspace, then print one summary line
//! per mesh and per service manifest used alone. Problems come back as
//! [`Diagnostics`] (the binary prints them and exits 2); nothing is written.

use super::args::CommonArgs;
use scone::manifest::Diagnostics;
use scone::workspace::{load, LoadOptions, Workspace};
use std::collections::BTreeSet;
use std::path::Path;

/// Runs `scone check`; returns the exit code (0) or the diagnostics as error.
pub fn run(args: &CommonArgs) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir()?;
    let opts = LoadOptions {
        files: args.files.clone(),
        cwd: cwd.clone(),
        target_dir: args.target_dir.clone(),
    };
    let ws = load(&opts).map_err(anyhow::Error::new)?;
    let mut unknown = Vec::new();
    for name in &args.services {
        if let Err(d) = ws.find_service(name) {
            unknown.push(d);
        }
    }
    if !unknown.is_empty() {
        return Err(anyhow::Error::new(Diagnostics(unknown)));
    }
    if !args.quiet {
        for w in &ws.warnings {
            eprintln!("warning: {w}");
        }
        for line in summary(&ws, &cwd) {
            eprintln!("{line}");
        }
    }
    Ok(0)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn shown(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// The summary lines, meshes first (in the order given), then the service
/// manifests that no mesh links (sorted by build.name).
pub fn summary(ws: &Workspace, cwd: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut linked = BTreeSet::new();
    for m in &ws.meshes {
        let units: BTreeSet<usize> = m.services.iter().map(|s| s.unit).collect();
        linked.extend(units.iter().copied());
        let mut secrets = BTreeSet::new();
        let mut globals = BTreeSet::new();
        for &u in &units {
            let man = &ws.services[u].manifest;
            secrets.extend(
                man.secrets
                    .global
                    .iter()
                    .chain(&man.secrets.local)
                    .map(|s| s.name.value.clone()),
            );
            globals.extend(man.environment.global.iter().map(|g| g.name.value.clone()));
        }
        lines.push(format!(
            "{:>12} {} ({}): {}, {}, {}",
            "Checked",
            m.namespace(),
            shown(&m.mesh.path, cwd),
            plural(m.services.len(), "service"),
            plural(secrets.len(), "secret"),
            plural(globals.len(), "global env"),
        ));
    }
    for (i, unit) in ws.services.iter().enumerate() {
        if linked.contains(&i) {
            continue;
        }
        let man = &unit.manifest;
        lines.push(format!(
            "{:>12} {} ({}): {}, {}, {}",
            "Checked",
            unit.name(),
            shown(&man.path, cwd),
            plural(man.build.copy.len(), "copy path"),
            plural(man.secrets.global.len() + man.secrets.local.len(), "secret"),
            plural(man.environment.global.len(), "global env"),
        ));
    }
    lines
}
