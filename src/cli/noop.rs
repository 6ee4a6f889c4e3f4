//! The CLI side of the no-op fast path (see [`scone::engine::noop`]): the key
//! of an invocation, the workspace files to watch besides the engine's, and
//! replaying the step messages.

use scone::engine::noop::{NoopRecord, Seen, StepMessage};
use scone::engine::store::StepState;
use scone::engine::{BuildReport, Event, EventSink, Status, StepId};
use scone::workspace::Workspace;
use std::path::{Path, PathBuf};

use super::output::Output;

/// Environment variables that can change what a build does.
fn shapes_the_build(name: &str) -> bool {
    name.starts_with("SCONE_")
        || name.starts_with("XDG_")
        || matches!(
            name,
            "HOME" | "SOURCE_DATE_EPOCH" | "DOCKER_HOST" | "DOCKER_CONFIG" | "PATH"
        )
}

/// The key: scone's version, the command line, the folder, the environment.
pub fn key() -> String {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| shapes_the_build(k))
        .collect();
    env.sort();
    let cwd = std::env::current_dir().unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "{}\n{}\n{:?}\n{:?}",
        scone::engine::fingerprint::tool_version(),
        cwd.display(),
        args,
        env
    )
}

/// Where the record of this key lives: in the user cache, so that it can be
/// found before the workspace (and so `target/`) is known.
pub fn record_dir(key: &str) -> PathBuf {
    let hash = blake3::hash(key.as_bytes()).to_hex().to_string();
    scone::oci::base::default_cache_dir()
        .join("noop")
        .join(&hash[..32])
}

/// Replays a fresh build if nothing changed; returns whether it did. The step
/// messages are decoded only when they are printed (JSON or `-v`).
pub fn try_fast_path(key: &str, out: &Output, replay: bool) -> bool {
    let started = std::time::Instant::now();
    let dir = record_dir(key);
    let (fresh, steps) = if replay {
        let Some((steps, target)) = NoopRecord::check(&dir, key) else {
            return false;
        };
        // The outputs to print come from the step index of that build.
        let index: std::collections::HashMap<String, StepState> = scone::engine::shards::load(
            &target.join(".scone").join("index"),
            scone::engine::store::INDEX_VERSION,
        );
        let mut messages = Vec::with_capacity(steps.len());
        for step in steps {
            let id = StepId::new(&step.kind, &step.unit);
            let Some(record) = index
                .get(&id.to_string())
                .filter(|s| s.fingerprint == step.fingerprint)
                .and_then(|s| s.record.as_ref())
            else {
                return false;
            };
            let mut outputs = record.record.clone();
            if let (Some(o), Some(info)) = (outputs.as_object_mut(), record.info.as_object()) {
                o.extend(info.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            messages.push((id, step.fingerprint, outputs));
        }
        (messages.len(), messages)
    } else {
        let Some(count) = NoopRecord::check_count(&dir, key) else {
            return false;
        };
        (count, Vec::new())
    };
    for (id, fingerprint, outputs) in steps {
        out.event(Event::Finished {
            id,
            status: Status::Fresh,
            fingerprint,
            outputs,
            why: None,
            ms: 0,
        });
    }
    out.finished(&BuildReport {
        fresh,
        all_cacheable: true,
        fast_path: true,
        ms: started.elapsed().as_millis() as u64,
        ..BuildReport::default()
    });
    true
}

/// Records a successful build for the next invocation with the same key.
/// Records the fast path after a successful build that started at `started_ns`
/// (before the workspace was loaded).
pub fn record(key: &str, ws: &Workspace, target: &Path, report: &BuildReport, started_ns: i64) {
    let dir = record_dir(key);
    if !report.all_cacheable || !report.success() {
        let _ = NoopRecord::invalidate(&dir);
        return;
    }
    // Blobs that are also published are the same inode (hard links): stat once.
    // Compared as bytes: path component parsing of 30k paths costs more than
    // the stats themselves.
    let mut published: Vec<&[u8]> = report
        .results
        .values()
        .flat_map(|r| r.publish.iter())
        .flat_map(|p| match p {
            scone::engine::Published::Dir { files, .. } => files.values().collect::<Vec<_>>(),
            scone::engine::Published::File { digest, .. } => vec![digest],
        })
        .map(|d| d.as_bytes())
        .collect();
    published.sort_unstable();
    published.dedup();
    let mut paths: Vec<(PathBuf, Seen)> = report
        .consulted
        .iter()
        .filter(|(p, _)| !is_published_blob(p, &published))
        .map(|(p, stat)| (p.clone(), stat.map_or(Seen::Own, Seen::Stat)))
        .collect();
    let manifests = ws
        .services
        .iter()
        .map(|s| s.manifest.path.clone())
        .chain(ws.meshes.iter().map(|m| m.mesh.path.clone()));
    let root = absolute(&ws.root);
    for m in manifests {
        let m = absolute(&m);
        // The root's listing changes when scone.lock is written: ours.
        if let Some(dir) = m.parent().filter(|d| *d != root) {
            paths.push((dir.to_path_buf(), Seen::Read));
        }
        paths.push((m, Seen::Read));
    }
    for dir in root.ancestors() {
        paths.push((dir.join(scone::manifest::discover::CONFIG_FILE), Seen::Read));
    }
    paths.push((root.join("scone.lock"), Seen::Own));
    paths.push((root, Seen::Own));
    let steps = report
        .results
        .iter()
        .map(|(id, rec)| StepMessage {
            kind: id.kind.clone(),
            unit: id.unit.clone(),
            fingerprint: rec.fingerprint.clone(),
        })
        .collect();
    match NoopRecord::capture(key.to_string(), absolute(target), paths, steps, started_ns) {
        Some(record) => {
            let _ = record.save(&dir);
        }
        None => {
            let _ = NoopRecord::invalidate(&dir);
        }
    }
}

/// Whether `path` is `…/.scone/blobs/<fan-out>/<digest>` with a published digest
/// (`published` is sorted).
fn is_published_blob(path: &Path, published: &[&[u8]]) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    let Some(slash) = bytes.iter().rposition(|&b| b == b'/') else {
        return false;
    };
    let (dir, name) = (&bytes[..slash], &bytes[slash + 1..]);
    let Some(fan) = dir.iter().rposition(|&b| b == b'/') else {
        return false;
    };
    // The cheap test first: most consulted paths are no blobs at all.
    dir[..fan].ends_with(b"/.scone/blobs") && published.binary_search(&name).is_ok()
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_blobs_of_the_store_are_left_out() {
        let d = "ab".repeat(32);
        let published = [d.as_bytes()];
        let blob = PathBuf::from(format!("/w/target/.scone/blobs/ab/{d}"));
        assert!(is_published_blob(&blob, &published));
        let other = "cd".repeat(32);
        let unpublished = PathBuf::from(format!("/w/target/.scone/blobs/cd/{other}"));
        assert!(!is_published_blob(&unpublished, &published));
        let not_a_blob = PathBuf::from(format!("/w/target/images/x/blobs/sha256/{d}"));
        assert!(!is_published_blob(&not_a_blob, &published));
        assert!(!is_published_blob(Path::new(&d), &published));
    }
}
