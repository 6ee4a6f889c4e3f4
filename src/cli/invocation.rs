//! What identifies an invocation for the build state: its key — scone's
//! version, the working folder, the options that shape what a build makes
//! (not how it reports: `--message-format`, `-v`, `-q`, `--explain`, `-j`,
//! `--timings`)
//! and the environment variables that can change it. A build whose key
//! differs from the last one's loads and plans the workspace again.

use std::ffi::OsString;
use std::path::Path;

use super::args::{ApplyArgs, BuildArgs, CommonArgs, MessageFormat};

/// Environment variables that can change what a build makes.
fn shapes_the_build(name: &str) -> bool {
    name.starts_with("SCONE_")
        || name.starts_with("XDG_")
        || matches!(
            name,
            "HOME" | "SOURCE_DATE_EPOCH" | "DOCKER_HOST" | "DOCKER_CONFIG" | "PATH"
        )
}

/// The key of `scone build` (or `apply`) with `args`.
pub fn key(args: &BuildArgs, apply: Option<&ApplyArgs>) -> [u8; 32] {
    let mut shaping = args.clone();
    shaping.jobs = None;
    shaping.timings = false;
    shaping.common = CommonArgs {
        message_format: MessageFormat::Human,
        explain: false,
        verbose: 0,
        quiet: false,
        ..args.common.clone()
    };
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| shapes_the_build(k))
        .collect();
    env.sort();
    let cwd = std::env::current_dir().unwrap_or_default();
    let text = format!(
        "{}\n{}\n{shaping:?}\n{:?}\n{env:?}",
        scone::engine::fingerprint::tool_version(),
        cwd.display(),
        apply.map(|a| (a.push, a.load, a.cas, &a.cas_ca, &a.take_over)),
    );
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// The names scone writes into the workspace root besides `scone.lock`: the
/// target folder's, when it is in the root.
pub fn own_names(root: &Path, target: &Path) -> Vec<OsString> {
    target
        .strip_prefix(root)
        .ok()
        .and_then(|rel| rel.components().next())
        .map(|c| vec![c.as_os_str().to_os_string()])
        .unwrap_or_default()
}
