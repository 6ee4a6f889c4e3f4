//! `scone build` and `scone apply`: load the workspace, plan, run the engine,
//! update `scone.lock`; `apply` adds the policy upload, pushes and loads.

use anyhow::{bail, Context};
use scone::engine::{self, EngineOptions};
use scone::lockfile::{BaseLock, ImageLock, Lockfile, Pins};
use scone::oci::tar::Compression;
use scone::plan::{self, ApplySettings, CasChoice, Settings};
use scone::steps::base::BaseRecord;
use scone::steps::image::ImageRecord;
use scone::steps::policy::PolicyRecord;
use scone::steps::sign::SignRecord;
use scone::steps::upload::UploadRecord;
use scone::workspace::{Config, Workspace};
use std::path::{Path, PathBuf};

use super::args::{
    ApplyArgs, BuildArgs, CasKind, CommonArgs, EnclaveMode, LayerCompression, OutputExtra,
};
use super::noop::Stored;
use super::output::Output;
use super::source::{Head, Source};

/// The remote cache tier of `--remote-cache` or `[cache] remote`, unless
/// `--no-remote-cache` or `--offline`.
fn remote_tier(
    config: &Config,
    args: &BuildArgs,
    offline: bool,
) -> anyhow::Result<Option<std::sync::Arc<scone::remote::Tier>>> {
    let config = &config.cache;
    let url = args.remote_cache.clone().or_else(|| config.remote.clone());
    let Some(url) = url.filter(|_| !args.no_remote_cache && !offline) else {
        return Ok(None);
    };
    let tier = scone::remote::open(&scone::remote::RemoteOptions {
        url,
        write: args.remote_cache_write || config.remote_write,
        timeout: config
            .timeout
            .map(std::time::Duration::from_secs)
            .unwrap_or(scone::remote::DEFAULT_TIMEOUT),
        insecure: args.insecure_registries.clone(),
    })?;
    Ok(Some(tier))
}

/// Loads and validates the workspace of the common arguments.
pub fn load_workspace(common: &CommonArgs) -> anyhow::Result<Workspace> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let ws = scone::workspace::load(&scone::workspace::LoadOptions {
        files: common.files.clone(),
        cwd,
    })?;
    Ok(ws)
}

/// The services `-p` names, as indices; empty = all.
pub fn selected(ws: &Workspace, common: &CommonArgs) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for name in &common.services {
        let i = ws
            .find_service(name)
            .map_err(scone::manifest::Diagnostics::from)?;
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

fn source_date_epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(0),
    }
}

/// The user cache (base images): `$SCONE_CACHE_DIR`, else the platform cache dir.
pub fn cache_dir() -> PathBuf {
    scone::oci::base::default_cache_dir()
}

/// The signing key: `scone.toml` `[signing] key`, else the user's default key,
/// generated on first use (outside `target/`, mode 0600).
fn signing_key(head: &Head<'_>, out: &Output) -> anyhow::Result<PathBuf> {
    if let Some(key) = &head.config.signing.key {
        let path = head.root.join(key);
        if !path.exists() {
            bail!(
                "the signing key {} (scone.toml [signing] key) does not exist",
                path.display()
            );
        }
        return Ok(path);
    }
    let path = scone::sgx::keys::default_key_path()?;
    if !path.exists() {
        scone::sgx::keys::SigningKey::generate_at(&path)
            .with_context(|| format!("generating a signing key at {}", path.display()))?;
        out.status(
            "Generated",
            &format!(
                "an enclave signing key (RSA-3072, e=3) at {}; keep it: it decides MRSIGNER",
                path.display()
            ),
        );
    }
    Ok(path)
}

/// Runs `scone build`: the no-op fast path when nothing changed since the last
/// successful build with the same command line, else a full build.
pub fn run_build(args: &BuildArgs) -> anyhow::Result<i32> {
    let key = super::noop::key();
    let replay =
        args.common.message_format == super::args::MessageFormat::Json || args.common.verbose > 0;
    let previous = match super::noop::try_fast_path(&key, &Output::new(&args.common, 0), replay) {
        super::noop::Start::Done => return Ok(0),
        super::noop::Start::Incremental(previous) => Some(*previous),
        super::noop::Start::Full => None,
    };
    let outcome = execute(args, None, previous)?;
    let code = outcome.code;
    // The process exits next: freeing the workspace and report of a big repo
    // one allocation at a time would only delay that.
    std::mem::forget(outcome);
    Ok(code)
}

/// Runs `scone apply`.
pub fn run_apply(args: &ApplyArgs) -> anyhow::Result<i32> {
    Ok(execute(&args.build, Some(args), None)?.code)
}

/// What one build or apply did.
pub struct Outcome {
    pub code: i32,
    /// The workspace, unless the build used the plan stored with the last
    /// one's snapshot (never with `apply`).
    pub workspace: Option<Workspace>,
    /// The report of the last engine run.
    pub report: Option<engine::BuildReport>,
}

/// Builds (and with `apply`, applies) once. With `previous` (a build only,
/// see [`super::noop::Start`]), the steps nothing they consulted changed since
/// are reused.
pub fn execute(
    args: &BuildArgs,
    apply: Option<&ApplyArgs>,
    previous: Option<scone::engine::noop::Previous>,
) -> anyhow::Result<Outcome> {
    // Shared with the engine (which reads what it may reuse from it), then
    // patched into the next record.
    let previous = previous.map(std::sync::Arc::new);
    let reuse = previous
        .as_ref()
        .filter(|_| apply.is_none())
        .map(|p| std::sync::Arc::new(engine::Reuse::new(std::sync::Arc::clone(p))));
    let common = &args.common;
    // Anything the build reads and that changes after this is not recorded as fresh.
    let started_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let fast_key = apply.is_none().then(super::noop::key);
    // On the incremental path the build directory is the last build's: it is
    // opened (its lock, its step index) while the workspace is planned.
    let mut opening = reuse.as_ref().and(previous.as_ref()).map(|p| {
        let dir = p.record.target.clone();
        std::thread::spawn(move || engine::Session::try_open(&dir))
    });
    // On the incremental path the last build's workspace is this one's, and
    // its `scone.lock` is read while the snapshot is opened.
    let snapshot = fast_key
        .as_deref()
        .zip(previous.as_deref())
        .and_then(|(key, p)| Some((super::noop::snapshot_bytes(key, p)?, p)));
    let early_lock = snapshot
        .as_ref()
        .and_then(|(bytes, _)| scone::workspace::snapshot::root(bytes))
        .map(|root| {
            let path = root.join("scone.lock");
            (root, Lockfile::read_in_background(path))
        });
    let snapshot = snapshot.and_then(|(bytes, p)| super::noop::open_snapshot(bytes, p));
    let mut source = match snapshot {
        Some(snapshot) => Source::Snapshot(snapshot),
        None => Source::Loaded(load_workspace(common)?),
    };
    // `-p` names are looked up in a workspace loaded anyway (a stored plan
    // was made for the same ones).
    let mut only = match source.loaded() {
        Some(ws) => Some(selected(ws, common)?),
        None => None,
    };
    let head = source.head();
    let probe = Output::new(common, 0);
    probe.warn_all(head.warnings);
    let target_dir =
        scone::workspace::target_dir(head.root, head.config, common.target_dir.as_deref());
    let root = head.root.to_path_buf();
    let lock_path = root.join("scone.lock");
    // The plan needs the lock's pins; the rest (its image table) is read
    // meanwhile, and needed once the engine is done.
    let (pins, mut lock) = match early_lock {
        Some((early, reading)) if early == root => match reading.pins() {
            Some(pins) => (pins, Lock::Reading(Some(reading))),
            None => {
                let lock = reading.finish(&lock_path, None)?;
                (lock.pins(), Lock::Read(lock))
            }
        },
        _ => {
            let lock = Lockfile::load(&lock_path)?;
            (lock.pins(), Lock::Read(lock))
        }
    };
    let locked = common.locked || common.frozen;
    let offline = common.offline || common.frozen;
    let remote = remote_tier(head.config, args, offline)?;
    let debug = match args.mode {
        Some(EnclaveMode::Production) => false,
        Some(EnclaveMode::Debug) => true,
        None => head.config.signing.mode.as_deref() != Some("production"),
    };
    let settings = |apply: Option<ApplySettings>, key: PathBuf| Settings {
        target_dir: target_dir.clone(),
        source_date_epoch: 0,
        compression: match args.compression {
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
        },
        debug,
        signing_key: key,
        cache_dir: cache_dir(),
        offline,
        insecure_registries: args.insecure_registries.clone(),
        docker_host: std::env::var("DOCKER_HOST").ok(),
        pinned_bases: pins
            .base
            .iter()
            .map(|(k, v)| (k.clone(), v.digest.clone()))
            .collect(),
        known_sessions: pins
            .session
            .iter()
            .filter_map(|(k, v)| v.cas_hash.clone().map(|h| (k.clone(), h)))
            .collect(),
        only: Vec::new(),
        helm_templates: args.helm_template.clone(),
        output_yaml: args.output == Some(OutputExtra::Yaml),
        apply,
    };
    let epoch = source_date_epoch()?;
    let key = signing_key(&head, &probe)?;

    // With --locked, an apply first builds without effects and checks the lock,
    // so that nothing is uploaded or pushed from a build that changes it.
    let phases: Vec<Option<ApplySettings>> = match apply {
        None => vec![None],
        Some(a) => {
            let effects = ApplySettings {
                push: a.push,
                cas: match a.cas {
                    CasKind::Local => CasChoice::Local(scone::cas::local::default_dir()?),
                    CasKind::Remote => CasChoice::Remote,
                },
                ca_file: a.cas_ca.clone(),
            };
            if locked {
                vec![None, Some(effects)]
            } else {
                vec![Some(effects)]
            }
        }
    };
    let mut new_lock = None;
    let mut last = None;
    // The plan stored with the snapshot (its digest), or the one made now
    // and stored with the next (built only for a build with a record).
    let mut kept = None;
    let mut stored = None;
    for phase in phases {
        let effects = phase.is_some();
        let mut s = settings(phase, key.clone());
        s.source_date_epoch = epoch;
        let nodes = match source.stored_plan(&s) {
            Some((nodes, digest)) => {
                kept = Some(digest);
                nodes
            }
            None => {
                let ws = source.workspace(common)?;
                if only.is_none() {
                    only = Some(selected(ws, common)?);
                }
                s.only = only.clone().unwrap_or_default();
                if fast_key.is_some() && s.apply.is_none() {
                    let (planned, plan) = plan::plan_stored(ws, &s)?;
                    stored = plan;
                    planned.nodes
                } else {
                    plan::plan(ws, &s)?.nodes
                }
            }
        };
        let out = Output::new(common, nodes.len());
        let opts = EngineOptions {
            target_dir: target_dir.clone(),
            jobs: args.jobs.unwrap_or(0),
            remote: remote
                .clone()
                .map(|t| t as std::sync::Arc<dyn engine::RemoteTier>),
            reuse: reuse.clone(),
            // Only `scone build` comes without `apply` (`scone dev` applies,
            // and builds again in the same process).
            exits_after: apply.is_none(),
        };
        let session = opening
            .take()
            .and_then(|o| o.join().ok().flatten())
            .filter(|s| s.dir() == target_dir);
        let mut report = match session {
            Some(session) => engine::build_in(session, nodes, &opts, &out)?,
            None => engine::build(nodes, &opts, &out, || {
                out.status("Blocking", "waiting for file lock on build directory")
            })?,
        };
        report.stored_plan = kept.is_some();
        out.finished(&report);
        if let Some(tier) = remote.as_deref().filter(|_| common.verbose > 0) {
            let st = tier.stats();
            out.status(
                "Remote",
                &format!(
                    "{}: {} hits, {} misses, {:.1} MB downloaded, {} entries and {} blobs uploaded",
                    tier.url(),
                    st.hits,
                    st.misses,
                    st.downloaded_bytes as f64 / 1e6,
                    st.uploaded_entries,
                    st.uploaded_blobs
                ),
            );
        }
        if !report.success() {
            return Ok(Outcome {
                code: 1,
                workspace: source.into_loaded(),
                report: Some(report),
            });
        }
        let lock = lock.whole(&lock_path, &pins)?;
        let updated = updated_lock(lock, &report);
        last = Some(report);
        if locked && updated != *lock {
            let diff = lock.diff(&updated).join("\n");
            bail!(
                "scone.lock needs to be updated but --locked was given:\n{diff}\nhelp: run without --locked to update scone.lock"
            );
        }
        new_lock = Some(updated);
        if !effects && apply.is_some() {
            continue;
        }
    }
    // The engine is done with the last record: it is this build's to patch.
    drop(reuse);
    let previous = previous.and_then(|p| std::sync::Arc::try_unwrap(p).ok());
    let new_lock = match new_lock {
        Some(lock) => lock,
        None => lock.whole(&lock_path, &pins)?.clone(),
    };
    // The lock is saved (an fsync) while the fast-path record is made.
    let updated = std::thread::scope(|s| {
        let saving = s.spawn(|| new_lock.save(&lock_path));
        let snapshot = match (kept, source.loaded()) {
            (Some(digest), _) => Some(Stored::Kept(digest)),
            (None, Some(ws)) => Some(Stored::New(ws, stored)),
            (None, None) => None,
        };
        let pending = match (&fast_key, &last, snapshot) {
            (Some(key), Some(report), Some(snapshot)) => Some(super::noop::prepare(
                key,
                &root,
                &target_dir,
                report,
                started_ns,
                previous,
                snapshot,
            )),
            _ => None,
        };
        let updated = saving
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("saving scone.lock panicked")));
        if let Some(pending) = pending {
            pending.finish(updated.is_ok());
        }
        updated
    })?;
    if let Some(report) = last.as_mut() {
        report.saving.wait()?;
    }
    if updated && common.verbose > 0 {
        probe.status("Updated", &lock_path.display().to_string());
    }
    if let Some(a) = apply {
        if let (true, Some(ws)) = (a.load, source.loaded()) {
            load_images(ws, &only.unwrap_or_default(), &target_dir, &probe)?;
        }
    }
    Ok(Outcome {
        code: 0,
        workspace: source.into_loaded(),
        report: last,
    })
}

fn load_images(ws: &Workspace, only: &[usize], target: &Path, out: &Output) -> anyhow::Result<()> {
    let host = std::env::var("DOCKER_HOST").ok();
    for (i, unit) in ws.services.iter().enumerate() {
        if !only.is_empty() && !only.contains(&i) {
            continue;
        }
        let layout = target.join("images").join(unit.name());
        let tag = &unit.manifest.build.to.value;
        scone::oci::docker::load(&layout, tag, host.as_deref())
            .with_context(|| format!("loading {tag} into the Docker engine"))?;
        out.status("Loaded", tag);
    }
    Ok(())
}

/// `scone.lock` as a build reads it: whole, or its pins first and the rest
/// on another thread.
enum Lock {
    Read(Lockfile),
    Reading(Option<scone::lockfile::Reading>),
}

impl Lock {
    /// The whole lock, which must have the `pins` the build planned with.
    fn whole(&mut self, path: &Path, pins: &Pins) -> anyhow::Result<&Lockfile> {
        if let Lock::Reading(reading) = self {
            let reading = reading
                .take()
                .context("internal: scone.lock was read before, and failed")?;
            *self = Lock::Read(reading.finish(path, Some(pins))?);
        }
        match self {
            Lock::Read(lock) => Ok(lock),
            Lock::Reading(_) => anyhow::bail!("internal: scone.lock was not read"),
        }
    }
}

/// The lock after a build: this build's entries over the old ones.
fn updated_lock(old: &Lockfile, report: &engine::BuildReport) -> Lockfile {
    let mut lock = old.clone();
    let record = |kind: &str, unit: &str| {
        report
            .results
            .get(&engine::StepId::new(kind, unit))
            .map(|r| r.record.clone())
    };
    for (id, rec) in &report.results {
        if id.kind == "base" {
            if let Ok(base) = serde_json::from_value::<BaseRecord>(rec.record.clone()) {
                if base.reference.starts_with("dir:") || base.reference == "scratch" {
                    continue;
                }
                lock.base.insert(
                    base.reference,
                    BaseLock {
                        digest: base.digest,
                    },
                );
            }
        }
    }
    // Only services whose steps ran can have changed (on the incremental path,
    // a handful of a thousand): those whose image or sign step has a result.
    let ran: std::collections::BTreeSet<&str> = report
        .results
        .keys()
        .filter(|id| id.kind == "image" || id.kind == "sign")
        .map(|id| id.unit.as_str())
        .collect();
    for name in ran {
        let image =
            record("image", name).and_then(|r| serde_json::from_value::<ImageRecord>(r).ok());
        let sign = record("sign", name).and_then(|r| serde_json::from_value::<SignRecord>(r).ok());
        // A step reused from the last build (an image, when only the signing
        // key changed) left the fields it decides as that build wrote them.
        let old = lock.image.get(name);
        let entry = match (image, sign) {
            (Some(image), Some(sign)) => ImageLock {
                reference: image.reference,
                digest: image.manifest_digest,
                mrenclave: sign.mrenclave,
                mrsigner: sign.mrsigner,
                fspf_tag: sign.fspf_tag,
            },
            (Some(image), None) => match old {
                Some(old) => ImageLock {
                    reference: image.reference,
                    digest: image.manifest_digest,
                    ..old.clone()
                },
                None => continue,
            },
            (None, Some(sign)) => match old {
                Some(old) => ImageLock {
                    mrenclave: sign.mrenclave,
                    mrsigner: sign.mrsigner,
                    fspf_tag: sign.fspf_tag,
                    ..old.clone()
                },
                None => continue,
            },
            (None, None) => continue,
        };
        lock.image.insert(name.to_string(), entry);
    }
    let namespaces = report
        .results
        .keys()
        .filter(|id| id.kind == "policy")
        .map(|id| id.unit.as_str());
    for ns in namespaces {
        let Some(Ok(policy)) = record("policy", ns).map(serde_json::from_value::<PolicyRecord>)
        else {
            continue;
        };
        let entry = lock.session.entry(ns.to_string()).or_default();
        entry.content = policy.hash;
        if let Some(Ok(upload)) = record("upload", ns).map(serde_json::from_value::<UploadRecord>) {
            entry.cas_hash = Some(upload.hash);
        }
    }
    lock
}
