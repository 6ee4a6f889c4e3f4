//! The CLI side of the no-op fast path (see [`scone::engine::noop`]): the key
//! of an invocation, the workspace files to watch besides the engine's, and
//! replaying the step messages.

use scone::engine::index::StepIndex;
use scone::engine::noop::{Consulted, NoopRecord, Previous, Ran, Seen, StepMessage, Verdict};
use scone::engine::{BuildReport, Event, EventSink, Status, StepId};
use scone::workspace::snapshot::Snapshot;
use scone::workspace::Workspace;
use std::collections::HashMap;
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

/// Where a build starts, by what changed since the last one with this key.
pub enum Start {
    /// Nothing changed: the fresh build was replayed.
    Done,
    /// Only what some steps consulted changed: the others can be reused.
    Incremental(Box<Previous>),
    /// Anything else: the full build.
    Full,
}

/// Replays a fresh build if nothing changed. The step messages are decoded
/// only when they are printed (JSON or `-v`).
pub fn try_fast_path(key: &str, out: &Output, replay: bool) -> Start {
    let started = std::time::Instant::now();
    let dir = record_dir(key);
    let (count, steps, target) = match NoopRecord::check(&dir, key, replay) {
        Verdict::Unchanged {
            count,
            steps,
            target,
        } => (count, steps, target),
        Verdict::Dirty(previous) => return Start::Incremental(previous),
        Verdict::Full => return Start::Full,
    };
    let mut messages = Vec::new();
    if let Some(steps) = steps {
        // The outputs to print come from the step index of that build.
        let index = StepIndex::load(&target.join(".scone").join("index"));
        for step in steps {
            let id = StepId::new(&step.kind, &step.unit);
            let Some(record) = index
                .get(&id.to_string())
                .filter(|s| s.fingerprint == step.fingerprint)
                .and_then(|s| s.record())
            else {
                return Start::Full;
            };
            messages.push((id, step.fingerprint, record.outputs()));
        }
    }
    for (id, fingerprint, outputs) in messages {
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
        fresh: count,
        all_cacheable: true,
        fast_path: true,
        ms: started.elapsed().as_millis() as u64,
        ..BuildReport::default()
    });
    Start::Done
}

fn snapshot_path(key: &str) -> PathBuf {
    record_dir(key).join(".scone").join("workspace.bin")
}

/// The bytes of the snapshot the last build wrote, if `previous` names one
/// (not checked yet: see [`open_snapshot`]).
pub fn snapshot_bytes(key: &str, previous: &Previous) -> Option<Vec<u8>> {
    previous.record.workspace?;
    std::fs::read(snapshot_path(key)).ok()
}

/// The snapshot of [`snapshot_bytes`], if it is the one `previous` names and
/// the checks of the services whose steps must run again (their copied files
/// may have changed) still pass.
pub fn open_snapshot(bytes: Vec<u8>, previous: &Previous) -> Option<Snapshot> {
    let snapshot = Snapshot::open(bytes, &previous.record.workspace?)?;
    let dirty: std::collections::HashSet<&str> = previous
        .record
        .steps
        .iter()
        .zip(&previous.dirty)
        .filter(|(_, d)| **d)
        .map(|(s, _)| s.unit.as_str())
        .collect();
    snapshot.revalidate(&dirty).then_some(snapshot)
}

/// The snapshot a new record goes with.
pub enum Stored<'w> {
    /// The last build's, whose stored plan this build used (by its digest).
    Kept([u8; 32]),
    /// This workspace, with the plan made from it (`None`: a plan that is
    /// not stored).
    New(&'w Workspace, Option<Vec<u8>>),
}

/// A record of the fast paths, ready but for the workspace files the build
/// writes last (`scone.lock`, and so the root's listing): see [`prepare`].
pub struct Pending {
    dir: PathBuf,
    /// `None`: no record can be made (it is removed).
    record: Option<NoopRecord>,
    own: Vec<PathBuf>,
    started_ns: i64,
}

impl Pending {
    /// Writes the record once `scone.lock` is written (`saved`), or removes
    /// the last one if it was not.
    pub fn finish(self, saved: bool) {
        let record = self.record.filter(|_| saved).and_then(|mut r| {
            r.own_written(&self.own, self.started_ns)?;
            Some(r)
        });
        let _ = match record {
            Some(record) => record.save(&self.dir),
            None => NoopRecord::invalidate(&self.dir),
        };
    }
}

/// Records the fast path after a successful build that started at `started_ns`
/// (before the workspace was loaded). Steps the engine reused keep what the
/// `previous` record had of them. The record is finished by
/// [`Pending::finish`] after `scone.lock` is saved, which can happen meanwhile.
pub fn prepare(
    key: &str,
    root: &Path,
    target: &Path,
    report: &BuildReport,
    started_ns: i64,
    previous: Option<Previous>,
    snapshot: Stored<'_>,
) -> Pending {
    let root = absolute(root);
    let own = vec![root.join("scone.lock"), root.clone()];
    let pending = |record| Pending {
        dir: record_dir(key),
        record,
        own: own.clone(),
        started_ns,
    };
    if !report.all_cacheable || !report.success() {
        return pending(None);
    }
    // Blobs that are also published are the same inode (hard links): stat
    // once, by the published path, which the step that read the blob then
    // consulted too (a damaged published file is a damaged blob). Compared as
    // bytes: path component parsing of 30k paths costs more than the stats.
    fn links_of<'r>(
        rec: &'r scone::engine::ActionRecord,
        target: &Path,
    ) -> HashMap<&'r [u8], Vec<PathBuf>> {
        let mut links: HashMap<&[u8], Vec<PathBuf>> = HashMap::new();
        for p in &rec.publish {
            match p {
                scone::engine::Published::Dir { dir, files } => {
                    let root = target.join(dir);
                    for (rel, digest) in files {
                        links
                            .entry(digest.as_bytes())
                            .or_default()
                            .push(root.join(rel));
                    }
                }
                scone::engine::Published::File { path, digest } => links
                    .entry(digest.as_bytes())
                    .or_default()
                    .push(target.join(path)),
            }
        }
        links
    }
    // Per step that ran: its message, its own published copies, what it consulted.
    let ran_steps: Vec<_> = report
        .consulted
        .iter()
        .filter_map(|(id, consulted)| {
            let rec = report.results.get(id)?;
            Some((id, rec, links_of(rec, target), consulted))
        })
        .collect();
    let mut published: HashMap<&[u8], Vec<PathBuf>> = HashMap::new();
    for (_, _, own, _) in &ran_steps {
        for (digest, links) in own {
            published
                .entry(digest)
                .or_default()
                .extend(links.iter().cloned());
        }
    }
    let ran: Vec<Ran> = ran_steps
        .iter()
        .map(|(id, rec, own, consulted)| {
            let mut paths = Vec::with_capacity(consulted.len());
            for (p, stat) in consulted.iter() {
                // A step's own published copy of a blob stands for it; a blob
                // it only read stands for all of them.
                match published_as(p, own).or_else(|| published_as(p, &published)) {
                    Some(links) => paths.extend(links.iter().map(|l| (l.clone(), Seen::Own))),
                    None => paths.push((p.clone(), stat.map_or(Seen::Own, Seen::Stat))),
                }
            }
            Ran {
                step: StepMessage {
                    kind: id.kind.clone(),
                    unit: id.unit.clone(),
                    fingerprint: rec.fingerprint.clone(),
                    files: Vec::new(),
                },
                consulted: paths,
            }
        })
        .collect();
    if let Some(previous) = previous {
        // The incremental path: the last record, with the steps that ran
        // recorded again, and a new snapshot if this build made one.
        let expected = report.reused + ran.len();
        let record = previous
            .record
            .patched(ran, started_ns)
            .filter(|r| r.steps.len() == expected)
            .map(|mut r| {
                r.workspace = match snapshot {
                    Stored::Kept(digest) => Some(digest),
                    Stored::New(ws, plan) => write_snapshot(key, ws, plan.as_deref()),
                };
                r
            });
        return pending(record);
    }
    let Stored::New(ws, plan) = snapshot else {
        return pending(None);
    };
    let mut steps = Vec::with_capacity(ran.len());
    let mut paths: Vec<Consulted> = Vec::new();
    for (i, r) in ran.into_iter().enumerate() {
        steps.push(r.step);
        paths.extend(r.consulted.into_iter().map(|(path, seen)| Consulted {
            path,
            seen,
            owner: Some(i as u32),
        }));
    }
    let global = |path, seen| Consulted {
        path,
        seen,
        owner: None,
    };
    let manifests = ws
        .services
        .iter()
        .map(|s| s.manifest.path.clone())
        .chain(ws.meshes.iter().map(|m| m.mesh.path.clone()));
    for m in manifests {
        let m = absolute(&m);
        // The root's listing changes when scone.lock is written: ours.
        if let Some(dir) = m.parent().filter(|d| *d != root) {
            paths.push(global(dir.to_path_buf(), Seen::Read));
        }
        paths.push(global(m, Seen::Read));
    }
    for dir in root.ancestors() {
        paths.push(global(
            dir.join(scone::manifest::discover::CONFIG_FILE),
            Seen::Read,
        ));
    }
    for path in &own {
        paths.push(global(path.clone(), Seen::Own));
    }
    // The target as the engine was given it: the next incremental build opens
    // it before it knows the workspace (see `build::execute`).
    let captured = NoopRecord::capture(
        key.to_string(),
        target.to_path_buf(),
        paths,
        steps,
        started_ns,
    );
    pending(captured.map(|mut record| {
        record.workspace = write_snapshot(key, ws, plan.as_deref());
        record
    }))
}

/// Writes the snapshot of `ws` and its plan for the record of `key`; its
/// blake3, if it was written. (Before the record: a record never names a
/// snapshot that is not there.)
fn write_snapshot(key: &str, ws: &Workspace, plan: Option<&[u8]>) -> Option<[u8; 32]> {
    let bytes = scone::workspace::snapshot::encode(ws, plan.unwrap_or_default());
    scone::durable::write_checked(&snapshot_path(key), &bytes)
        .ok()
        .map(|()| *blake3::hash(&bytes).as_bytes())
}

/// Where `path`, if it is a store blob (`…/.scone/blobs/<fan-out>/<digest>`),
/// is published.
fn published_as<'a>(
    path: &Path,
    published: &'a HashMap<&[u8], Vec<PathBuf>>,
) -> Option<&'a Vec<PathBuf>> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let slash = bytes.iter().rposition(|&b| b == b'/')?;
    let (dir, name) = (&bytes[..slash], &bytes[slash + 1..]);
    let fan = dir.iter().rposition(|&b| b == b'/')?;
    // The cheap test first: most consulted paths are no blobs at all.
    if !dir[..fan].ends_with(b"/.scone/blobs") {
        return None;
    }
    published.get(name)
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
    fn only_published_blobs_of_the_store_are_replaced_by_their_links() {
        let d = "ab".repeat(32);
        let link = PathBuf::from(format!("/w/target/images/x/blobs/sha256/{d}"));
        let published = HashMap::from([(d.as_bytes(), vec![link.clone()])]);
        let blob = PathBuf::from(format!("/w/target/.scone/blobs/ab/{d}"));
        assert_eq!(published_as(&blob, &published), Some(&vec![link.clone()]));
        let other = "cd".repeat(32);
        let unpublished = PathBuf::from(format!("/w/target/.scone/blobs/cd/{other}"));
        assert_eq!(published_as(&unpublished, &published), None);
        assert_eq!(published_as(&link, &published), None, "not a store blob");
        assert_eq!(published_as(Path::new(&d), &published), None);
    }
}
