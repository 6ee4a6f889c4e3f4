//! `scone check`: load and validate the workspace (and read `scone.lock` as a
//! build would), then print one summary line per mesh and per service manifest
//! used alone. Problems are printed as
//! diagnostics (exit 2); nothing is written. With `--message-format json`,
//! every diagnostic, each summary line and the verdict are JSON objects.

use super::args::{CommonArgs, MessageFormat};
use super::output::Output;
use scone::manifest::{Diagnostic, ErrorKind, Level};
use scone::workspace::{load, LoadOptions, Workspace};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

/// Runs `scone check`; returns the exit code: 0, or 2 when a manifest is wrong.
pub fn run(args: &CommonArgs) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir()?;
    let opts = LoadOptions {
        files: args.files.clone(),
        cwd: cwd.clone(),
        target_dir: args.target_dir.clone(),
    };
    let out = Output::messages(args);
    let ws = match load(&opts) {
        Ok(ws) => ws,
        Err(diags) => {
            out.diagnostics(&diags.0);
            finished(args, &diags.0, &[]);
            return Ok(2);
        }
    };
    let mut errors = Vec::new();
    for name in &args.services {
        if let Err(d) = ws.find_service(name) {
            errors.push(d);
        }
    }
    errors.extend(
        scone::plan::entry::missing_entry_binaries(&ws, &[], &super::build::cache_dir(), &cwd)
            .missing,
    );
    // `scone.lock` as a build reads it (read only: check writes nothing): a
    // lock every build would refuse (conflict markers, another `version`) is
    // refused here first, with the build's own `lockfile` error.
    if let Err(lock) = scone::lockfile::Lockfile::load(&ws.root.join("scone.lock")) {
        errors.extend(lock.0);
    }
    let mut warnings = ws.warnings.clone();
    warnings.extend(missing_bases(&ws, &cwd));
    out.diagnostics(&warnings);
    out.diagnostics(&errors);
    if errors.is_empty() {
        let summaries = summary(&ws, &cwd);
        match args.message_format {
            MessageFormat::Json => {
                let mut stdout = std::io::stdout().lock();
                for s in &summaries {
                    let _ = writeln!(stdout, "{}", s.json);
                }
            }
            MessageFormat::Human if !args.quiet => {
                for s in &summaries {
                    eprintln!("{}", s.text);
                }
            }
            MessageFormat::Human => {}
        }
    }
    finished(args, &errors, &warnings);
    Ok(if errors.is_empty() { 0 } else { 2 })
}

/// The closing JSON message: `{"reason":"check-finished","success",…}`.
fn finished(args: &CommonArgs, errors: &[Diagnostic], warnings: &[Diagnostic]) {
    if args.message_format != MessageFormat::Json {
        return;
    }
    let count = |level| {
        errors
            .iter()
            .chain(warnings)
            .filter(|d| d.level == level)
            .count()
    };
    let msg = serde_json::json!({
        "reason": "check-finished",
        "success": count(Level::Error) == 0,
        "errors": count(Level::Error),
        "warnings": count(Level::Warning),
    });
    let _ = writeln!(std::io::stdout().lock(), "{msg}");
}

/// A warning for each service whose default base is not on this machine:
/// the check passes, the build would not.
fn missing_bases(ws: &Workspace, cwd: &Path) -> Vec<Diagnostic> {
    let cache = super::build::cache_dir();
    ws.services
        .iter()
        .filter(|u| {
            u.manifest.build.from.is_none()
                && !ws.config.base.contains_key(&u.manifest.build.kind.value)
        })
        .filter_map(|u| {
            let kind = &u.manifest.build.kind;
            let (dir, how) = scone::plan::missing_default_base(&kind.value, &cache)?;
            Some(
                Diagnostic::warning(
                    ErrorKind::MissingBase,
                    u.manifest
                        .path
                        .strip_prefix(cwd)
                        .unwrap_or(&u.manifest.path),
                    kind.pos,
                    format!(
                        "the default base image of build.kind `{}` is not on this machine \
                         ({} does not exist): a build fails until it is made",
                        kind.value,
                        dir.display()
                    ),
                )
                .with_hint(how),
            )
        })
        .collect()
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

/// One summary line, as text and as JSON.
pub struct Summary {
    pub text: String,
    pub json: serde_json::Value,
}

/// The summary lines, meshes first (in the order given), then the service
/// manifests that no mesh links (sorted by build.name).
pub fn summary(ws: &Workspace, cwd: &Path) -> Vec<Summary> {
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
        let file = shown(&m.mesh.path, cwd);
        lines.push(Summary {
            text: format!(
                "{:>12} {} ({}): {}, {}, {}",
                "Checked",
                m.namespace(),
                file,
                plural(m.services.len(), "service"),
                plural(secrets.len(), "secret"),
                plural(globals.len(), "global env"),
            ),
            json: serde_json::json!({
                "reason": "checked",
                "kind": "mesh",
                "name": m.namespace(),
                "file": file,
                "services": m.services.len(),
                "secrets": secrets.len(),
                "globals": globals.len(),
            }),
        });
    }
    for (i, unit) in ws.services.iter().enumerate() {
        if linked.contains(&i) {
            continue;
        }
        let man = &unit.manifest;
        let file = shown(&man.path, cwd);
        let secrets = man.secrets.global.len() + man.secrets.local.len();
        lines.push(Summary {
            text: format!(
                "{:>12} {} ({}): {}, {}, {}",
                "Checked",
                unit.name(),
                file,
                plural(man.build.copy.len(), "copy path"),
                plural(secrets, "secret"),
                plural(man.environment.global.len(), "global env"),
            ),
            json: serde_json::json!({
                "reason": "checked",
                "kind": "service",
                "name": unit.name(),
                "file": file,
                "copy": man.build.copy.len(),
                "secrets": secrets,
                "globals": man.environment.global.len(),
            }),
        });
    }
    lines
}
