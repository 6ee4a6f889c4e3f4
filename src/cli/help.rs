//! Manifest-aware help: `scone apply -f FILE --help` reads FILE's kind and
//! shows the options and `scone.toml` keys that apply to it. A service
//! manifest alone builds an image and an enclave: the CAS and chart options
//! are left out. A Meshfile's help lists its services and the global
//! variables each takes, with the manifest's default and the mesh's value.

use clap::CommandFactory;
use scone::manifest::{discover, parse, MESH_KIND};
use scone::workspace::{LoadOptions, Workspace};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::args::Cli;

/// The commands that read manifests.
const WORKSPACE_COMMANDS: &[&str] = &["build", "apply", "check", "graph", "clean", "run", "dev"];

/// Options (clap ids) that only a Meshfile uses: the policy upload and the chart.
const MESH_ONLY: &[&str] = &["cas", "cas_ca", "take_over", "helm_template", "output"];

/// The `scone.toml` keys every workspace reads.
const CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "members",
        "globs of the manifests to build when no -f is given",
    ),
    ("target-dir", "where outputs go (default: target)"),
    (
        "[signing] key",
        "the enclave signing key (default: generated in the user's config folder)",
    ),
    ("[signing] mode", "`debug` (default) or `production`"),
    (
        "[provenance] key",
        "the provenance signing key (default: generated in the user's config folder)",
    ),
    (
        "[paths] allow",
        "folders outside the repository that manifests may name",
    ),
    (
        "[cache] remote",
        "a shared cache: oci://HOST/REPO or http(s)://HOST/PREFIX",
    ),
    ("[cache] remote-write", "upload build results to it"),
    (
        "[cache] timeout",
        "bound on one remote request, in seconds (default 30)",
    ),
    (
        "[cache] wait-ms",
        "how long a step waits for its remote result before building locally (default 2000)",
    ),
];

/// With `--help` and `-f FILE` on a workspace command, prints the help for
/// FILE's kind and returns the exit code; `None` otherwise (clap's help).
pub fn manifest_help(argv: &[OsString]) -> Option<u8> {
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = args.first()?.clone();
    if !WORKSPACE_COMMANDS.contains(&command.as_str()) {
        return None;
    }
    let before_dashes: Vec<&String> = args.iter().take_while(|a| *a != "--").collect();
    if !before_dashes.iter().any(|a| *a == "--help" || *a == "-h") {
        return None;
    }
    let files = file_args(&before_dashes);
    let first = files.first()?;
    let text = match parse::read_text(first) {
        Ok(text) => text,
        Err(d) => {
            eprintln!("warning: {d}");
            return None;
        }
    };
    let is_mesh = discover::sniff_kind(&text).as_deref() == Some(MESH_KIND);
    let cwd = std::env::current_dir().unwrap_or_default();
    let loaded = scone::workspace::load(&LoadOptions {
        files: files.clone(),
        cwd: cwd.clone(),
        target_dir: None,
    });
    let section = match &loaded {
        Ok(ws) => describe(ws, first, is_mesh, &cwd),
        Err(diags) => format!(
            "{}: {} (it has {} error(s): `scone check -f {}` shows them)",
            first.display(),
            if is_mesh {
                "a Meshfile"
            } else {
                "a service manifest"
            },
            diags.0.len(),
            first.display()
        ),
    };
    let mut cli = Cli::command().mut_subcommand(&command, |mut sub| {
        if !is_mesh {
            for id in MESH_ONLY {
                if sub.get_arguments().any(|a| a.get_id() == *id) {
                    sub = sub.mut_arg(*id, |a| a.hide(true));
                }
            }
        }
        sub.after_help(section)
    });
    let err = cli
        .try_get_matches_from_mut([
            OsString::from("scone"),
            OsString::from(&command),
            "--help".into(),
        ])
        .err()?;
    let _ = err.print();
    Some(0)
}

/// The `-f` values of `args` (`-f X`, `-fX`, `--file X`, `--file=X`).
fn file_args(args: &[&String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-f" || a == "--file" {
            if let Some(v) = args.get(i + 1) {
                out.push(PathBuf::from(v.as_str()));
            }
            i += 2;
            continue;
        }
        if let Some(v) = a.strip_prefix("--file=") {
            out.push(PathBuf::from(v));
        } else if let Some(v) = a
            .strip_prefix("-f")
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            out.push(PathBuf::from(v.trim_start_matches('=')));
        }
        i += 1;
    }
    out
}

/// The section after the options: what FILE is, its services and their
/// global variables, and the `scone.toml` keys that apply.
fn describe(ws: &Workspace, file: &Path, is_mesh: bool, cwd: &Path) -> String {
    let mut out = String::new();
    let shown = |p: &Path| p.strip_prefix(cwd).unwrap_or(p).display().to_string();
    let mut kinds: Vec<String> = Vec::new();
    if is_mesh {
        let target = cwd.join(file);
        let mesh = ws
            .meshes
            .iter()
            .find(|m| cwd.join(&m.mesh.path) == target)
            .or(ws.meshes.first());
        if let Some(mesh) = mesh {
            let _ = writeln!(
                out,
                "{}: a Meshfile: policy `{}` and a chart for {} service(s). Its services and the \
                 global variables they take (the value the mesh gives; else the manifest's default):",
                file.display(),
                mesh.namespace(),
                mesh.services.len()
            );
            for s in &mesh.services {
                let unit = &ws.services[s.unit];
                let m = &unit.manifest;
                kinds.push(m.build.kind.value.clone());
                let _ = writeln!(
                    out,
                    "  {} ({}, build.name {}, build.kind {})",
                    s.name,
                    shown(&m.path),
                    unit.name(),
                    m.build.kind.value
                );
                if m.environment.global.is_empty() {
                    let _ = writeln!(out, "      no global variables");
                }
                for g in &m.environment.global {
                    let value = s
                        .environment
                        .iter()
                        .find(|(k, _)| *k == g.name.value)
                        .map(|(_, v)| v.clone());
                    let default = g.value.as_ref().map(|v| v.value.clone());
                    let _ = writeln!(
                        out,
                        "      {} = {:?}  (default: {})",
                        g.name.value,
                        value.unwrap_or_default(),
                        default.map_or("none".to_string(), |d| format!("{d:?}"))
                    );
                }
            }
        }
    } else if let Some(unit) = ws.services.first() {
        let m = &unit.manifest;
        kinds.push(m.build.kind.value.clone());
        let _ = writeln!(
            out,
            "{}: a service manifest (build.name {}, build.kind {}). Alone it builds its image \
             and enclave: no policy, no chart, no CAS, so the options for those are left out \
             (they apply to a Meshfile).",
            file.display(),
            unit.name(),
            m.build.kind.value
        );
        if !m.environment.global.is_empty() {
            let _ = writeln!(out, "Global variables (a Meshfile sets them):");
            for g in &m.environment.global {
                let default = g.value.as_ref().map(|v| v.value.clone());
                let _ = writeln!(
                    out,
                    "      {}  (default: {})",
                    g.name.value,
                    default.map_or("none".to_string(), |d| format!("{d:?}"))
                );
            }
        }
    }
    kinds.sort();
    kinds.dedup();
    let _ = writeln!(out, "\nscone.toml keys that apply:");
    for kind in &kinds {
        let _ = writeln!(
            out,
            "  [base] {kind:<13} the base image of build.kind {kind}\n  {:<20} (default: {})",
            "",
            scone::plan::default_base(kind, &super::build::cache_dir())
                .unwrap_or_else(|| "none: set it or build.from".into())
        );
    }
    for (key, what) in CONFIG_KEYS {
        let _ = writeln!(out, "  {key:<20} {what}");
    }
    out
}
