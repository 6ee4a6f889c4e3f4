//! `scone clean`: remove `target/`'s outputs and its whole build state, or
//! with `-p` one service's outputs and its steps' results; with `--gc`, the
//! blobs and action records no step of the build state refers to. Only a
//! target dir scone made is cleaned: loading the workspace refuses any other
//! (see `scone::workspace::target`), and its mark is looked at again here
//! before anything is removed.

use anyhow::Context;
use scone::engine::state::NextState;
use scone::engine::{Session, StepId};
use scone::steps::base::BaseRecord;

use super::args::CleanArgs;
use super::build::{load_workspace, selected};
use super::output::Output;

/// The step kinds that belong to one service.
const SERVICE_STEPS: &[&str] = &[
    "copy",
    "layer",
    "image",
    "sign",
    "sbom",
    "provenance",
    "push",
];

/// The user-cache digests the bases of the last builds use: manifests, their
/// configs, layers.
fn base_digests(session: &Session) -> std::collections::HashSet<String> {
    let state = session.state();
    let cache = super::build::cache_dir().join("blobs");
    let mut keep = std::collections::HashSet::new();
    for step in state.steps.iter().filter(|s| s.id.kind == "base") {
        let Some(record) = step.record(state) else {
            continue;
        };
        let Ok(base) = serde_json::from_value::<BaseRecord>(record.record.clone()) else {
            continue;
        };
        // A registry manifest names its config.
        let config = scone::oci::digest::blob_path(&cache, &base.digest)
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m.pointer("/config/digest")?.as_str().map(String::from));
        keep.extend(config);
        keep.insert(base.digest);
        keep.extend(base.layers.into_iter().map(|l| l.digest));
    }
    keep
}

/// Runs `scone clean`.
pub fn run(args: &CleanArgs) -> anyhow::Result<i32> {
    let ws = load_workspace(&args.common)?;
    let only = selected(&ws, &args.common)?;
    let target = ws.target_dir(args.common.target_dir.as_deref());
    let cwd = std::env::current_dir().context("reading the current folder")?;
    super::folders::refuse_cas_in_target(&target, &cwd)?;
    let out = Output::new(&args.common, 0);
    let mut done = Cleaned::new(&target, args.gc, only.is_empty());
    // Nothing there: nothing is removed, and nothing is made (locking the
    // folder would write scone's `.scone/` into it).
    let empty = match std::fs::read_dir(&target) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("reading {}", target.display())),
    };
    if empty {
        out.status(
            "Removed",
            &format!(
                "nothing: {} holds no outputs or build state",
                target.display()
            ),
        );
        done.finish(&out);
        return Ok(0);
    }
    if !scone::workspace::target::is_tagged(&target) {
        anyhow::bail!(
            "{} has no `.scone/` folder: scone did not make it, so it does not clean it",
            target.display()
        );
    }
    let session = Session::open(&target, || {
        out.status("Blocking", "waiting for file lock on build directory")
    })
    .with_context(|| format!("locking {}", target.display()))?;
    if args.gc {
        let freed = scone::engine::gc::collect(session.store())
            .with_context(|| format!("collecting garbage in {}", target.display()))?;
        scone::engine::state::BuildState::compact(&target)
            .with_context(|| format!("compacting the build state in {}", target.display()))?;
        out.status(
            "Removed",
            &format!(
                "{} blobs and {} action records no step refers to ({:.1} MB)",
                freed.blobs,
                freed.actions,
                freed.bytes as f64 / 1e6
            ),
        );
        done.blobs = Some(freed.blobs);
        done.actions = Some(freed.actions);
        done.bytes = Some(freed.bytes);
        let cache = super::build::cache_dir();
        let cutoff = std::time::SystemTime::now()
            - std::time::Duration::from_secs(args.keep_days.saturating_mul(86_400));
        let user = scone::oci::base::collect_user_cache(&cache, &base_digests(&session), cutoff)
            .with_context(|| format!("collecting garbage in {}", cache.display()))?;
        out.status(
            "Removed",
            &format!(
                "{} files of base images from {} ({:.1} MB): unused here and by anyone for {} days",
                user.files,
                cache.display(),
                user.bytes as f64 / 1e6,
                args.keep_days
            ),
        );
        done.cache_files = Some(user.files);
        done.cache_bytes = Some(user.bytes);
        done.finish(&out);
        return Ok(0);
    }
    if only.is_empty() {
        // Whether anything went but scone's own marks: the empty `blobs/`
        // and `actions/` the lock makes, and the parse cache this clean's
        // own load writes. Else nothing was there.
        let mut removed = false;
        let mut remove = |path: &std::path::Path| -> anyhow::Result<()> {
            let parse_cache = path.parent().and_then(|p| p.file_name()) == Some(".scone".as_ref())
                && path
                    .file_name()
                    .is_some_and(|n| n == scone::workspace::PARSE_CACHE);
            removed |= !(parse_cache || is_empty_folder(path));
            scone::durable::remove_all(path)?;
            Ok(())
        };
        for entry in
            std::fs::read_dir(&target).with_context(|| format!("reading {}", target.display()))?
        {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == ".scone") {
                // Keep the lock file we hold and the tag; remove the rest of
                // the state.
                for inner in std::fs::read_dir(&path)? {
                    let inner = inner?.path();
                    if inner
                        .file_name()
                        .is_some_and(|n| n != "lock" && n != "CACHEDIR.TAG")
                    {
                        remove(&inner)?;
                    }
                }
            } else {
                remove(&path)?;
            }
        }
        if removed {
            out.status("Removed", &target.display().to_string());
        } else {
            out.status(
                "Removed",
                &format!(
                    "nothing: {} holds no outputs or build state",
                    target.display()
                ),
            );
        }
        done.removed = removed;
        done.finish(&out);
        return Ok(0);
    }
    let mut dropped = Vec::new();
    for i in only {
        let name = ws.services[i].name();
        let ids: Vec<StepId> = SERVICE_STEPS.iter().map(|k| StepId::new(k, name)).collect();
        let removed = scone::engine::gc::forget(session.store(), &target, &ids)?;
        out.status(
            "Removed",
            &format!(
                "{name}: {} output folder(s) and its cache entries",
                removed.len()
            ),
        );
        dropped.extend(ids);
        done.services.push((name.to_string(), removed.len()));
    }
    drop(session.finish(NextState {
        dropped,
        ..NextState::default()
    })?);
    done.finish(&out);
    Ok(0)
}

/// Whether `path` is a folder with nothing in it (not a link to one).
fn is_empty_folder(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && std::fs::read_dir(path).is_ok_and(|mut e| e.next().is_none())
}

/// What a clean removed, for its closing JSON message (`--message-format
/// json`): `{"reason":"clean-finished",…}`, as docs/cli.md shows it.
struct Cleaned {
    target: String,
    scope: &'static str,
    /// The whole target dir's outputs and state were removed.
    removed: bool,
    /// With `-p`: each service and how many output folders it had.
    services: Vec<(String, usize)>,
    /// With `--gc`: what left the target's store and the user cache.
    blobs: Option<usize>,
    actions: Option<usize>,
    bytes: Option<u64>,
    cache_files: Option<usize>,
    cache_bytes: Option<u64>,
}

impl Cleaned {
    fn new(target: &std::path::Path, gc: bool, all: bool) -> Cleaned {
        Cleaned {
            target: target.display().to_string(),
            scope: match (gc, all) {
                (true, _) => "gc",
                (false, true) => "all",
                (false, false) => "services",
            },
            removed: false,
            services: Vec::new(),
            blobs: None,
            actions: None,
            bytes: None,
            cache_files: None,
            cache_bytes: None,
        }
    }

    fn finish(&self, out: &Output) {
        if !out.is_json() {
            return;
        }
        let services: Vec<_> = self
            .services
            .iter()
            .map(|(name, outputs)| serde_json::json!({ "name": name, "outputs": outputs }))
            .collect();
        out.json_message(serde_json::json!({
            "reason": "clean-finished",
            "success": true,
            "target": self.target,
            "scope": self.scope,
            "removed": self.removed,
            "services": services,
            "blobs": self.blobs,
            "actions": self.actions,
            "bytes": self.bytes,
            "cache_files": self.cache_files,
            "cache_bytes": self.cache_bytes,
        }));
    }
}
