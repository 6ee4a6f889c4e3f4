//! `scone check`: validate the manifests and print a summary per mesh.

use super::args::CommonArgs;

/// Runs `scone check`; returns the exit code.
pub fn run(_args: &CommonArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`scone check` is not implemented yet")
}
