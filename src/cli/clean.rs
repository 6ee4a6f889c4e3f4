//! `scone clean`: remove `target/`, or with `-p` one service's outputs and
//! cache entries only.

use anyhow::Context;
use scone::engine::{lock::TargetLock, scheduler::clean_steps, StepId};

use super::args::CleanArgs;
use super::build::{load_workspace, selected};
use super::output::Output;

/// The step kinds that belong to one service.
const SERVICE_STEPS: &[&str] = &["copy", "layer", "image", "sign", "push"];

/// Runs `scone clean`.
pub fn run(args: &CleanArgs) -> anyhow::Result<i32> {
    let ws = load_workspace(&args.common)?;
    let only = selected(&ws, &args.common)?;
    let target = ws.target_dir(args.common.target_dir.as_deref());
    let out = Output::new(&args.common, 0);
    if !target.exists() {
        return Ok(0);
    }
    let _lock = TargetLock::acquire(&target, || {
        out.status("Blocking", "waiting for file lock on build directory")
    })
    .with_context(|| format!("locking {}", target.display()))?;
    if only.is_empty() {
        for entry in
            std::fs::read_dir(&target).with_context(|| format!("reading {}", target.display()))?
        {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == ".scone") {
                // Keep the lock file we hold; remove the rest of the cache.
                for inner in std::fs::read_dir(&path)? {
                    let inner = inner?.path();
                    if inner.file_name().is_some_and(|n| n != "lock") {
                        scone::durable::remove_all(&inner)?;
                    }
                }
            } else {
                scone::durable::remove_all(&path)?;
            }
        }
        out.status("Removed", &target.display().to_string());
        return Ok(0);
    }
    for i in only {
        let name = ws.services[i].name();
        let ids: Vec<StepId> = SERVICE_STEPS.iter().map(|k| StepId::new(k, name)).collect();
        let removed = clean_steps(&target, &ids)?;
        out.status(
            "Removed",
            &format!(
                "{name}: {} output folder(s) and its cache entries",
                removed.len()
            ),
        );
    }
    Ok(0)
}
