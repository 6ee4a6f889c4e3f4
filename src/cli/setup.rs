//! What a plan needs besides the workspace ([`Setup`]: from `scone.toml`,
//! `scone.lock`, the arguments and the environment), and the plan the build
//! state keeps ([`kept_plan`], `scone::plan::stored`), which a dirty build
//! takes instead of loading the workspace when both are as they were.

use anyhow::{bail, Context};
use scone::engine::state::BuildState;
use scone::engine::{Node, Reuse, StepId};
use scone::lockfile::Lockfile;
use scone::oci::tar::Compression;
use scone::plan::{ApplySettings, Settings};
use scone::workspace::{Config, Location};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::args::{BuildArgs, EnclaveMode, LayerCompression, OutputExtra};
use super::build::cache_dir;
use super::output::Output;

/// What a plan needs besides the workspace.
pub struct Setup {
    /// The workspace root: `scone.lock` is here.
    pub root: PathBuf,
    /// Enclave DEBUG attribute.
    pub debug: bool,
    pub lock: Lockfile,
    /// The text of `scone.lock` as read (`None`: there is none), what
    /// `--locked` compares the text a build would write with.
    pub lock_text: Option<String>,
    pub remote: Option<Arc<scone::remote::Tier>>,
    offline: bool,
    epoch: u64,
    key_path: PathBuf,
    provenance_key_path: PathBuf,
}

impl Setup {
    /// Reads `scone.lock` and the environment, and finds (or makes) the keys.
    pub fn of(
        config: &Config,
        root: &Path,
        args: &BuildArgs,
        out: &Output,
    ) -> anyhow::Result<Setup> {
        let common = &args.common;
        let (lock, lock_text) = Lockfile::load_with_text(&root.join("scone.lock"))?;
        let offline = common.offline || common.frozen;
        Ok(Setup {
            root: root.to_path_buf(),
            debug: debug_mode(config, args),
            lock,
            lock_text,
            remote: remote_tier(config, args, offline)?,
            offline,
            epoch: source_date_epoch()?,
            key_path: signing_key(config, root, out)?,
            provenance_key_path: provenance_key(config, root, out)?,
        })
    }

    /// The settings of a plan of `only` (empty: all).
    pub fn settings(
        &self,
        target_dir: &Path,
        args: &BuildArgs,
        only: Vec<usize>,
        apply: Option<ApplySettings>,
    ) -> Settings {
        Settings {
            target_dir: target_dir.to_path_buf(),
            source_date_epoch: self.epoch,
            compression: match args.compression {
                LayerCompression::Gzip => Compression::Gzip,
                LayerCompression::Zstd => Compression::Zstd,
            },
            debug: self.debug,
            signing_key: self.key_path.clone(),
            provenance_key: self.provenance_key_path.clone(),
            cache_dir: cache_dir(),
            offline: self.offline,
            insecure_registries: args.insecure_registries.clone(),
            docker_host: std::env::var("DOCKER_HOST").ok(),
            pinned_bases: self
                .lock
                .base
                .iter()
                .map(|(k, v)| (k.clone(), v.digest.clone()))
                .collect(),
            known_sessions: self
                .lock
                .session
                .iter()
                .filter_map(|(k, v)| v.cas_hash.clone().map(|h| (k.clone(), h)))
                .collect(),
            only,
            helm_templates: args.helm_template.clone(),
            output_yaml: args.output == Some(OutputExtra::Yaml),
            apply,
        }
    }
}

/// Whether enclaves are signed for debugging: `--mode`, else `scone.toml`
/// `[signing] mode`, else yes.
pub fn debug_mode(config: &Config, args: &BuildArgs) -> bool {
    match args.mode {
        Some(EnclaveMode::Production) => false,
        Some(EnclaveMode::Debug) => true,
        None => config.signing.mode != Some(scone::workspace::SigningMode::Production),
    }
}

/// The last build's plan, taken by a dirty build instead of a load.
pub struct Kept {
    pub nodes: Vec<Node>,
    /// Its bytes, kept again by this build.
    pub plan: Arc<[u8]>,
    pub setup: Setup,
    /// The last build's load's warnings (`output::stored_warnings`).
    pub warnings: Vec<String>,
}

/// The plan `state` keeps, if the settings this build would plan with are
/// those it was made with. Only for a build whose check said its load holds
/// (a dirty verdict): then the workspace is the last build's. A production
/// build loads (its Meshfiles' tolerations are refused there).
pub fn kept_plan(
    state: &BuildState,
    reuse: &Reuse,
    location: &Location,
    target_dir: &Path,
    args: &BuildArgs,
    out: &Output,
) -> anyhow::Result<Option<Kept>> {
    let Some(last) = state.last.as_ref().filter(|l| !l.plan.is_empty()) else {
        return Ok(None);
    };
    let setup = Setup::of(&location.config(), &location.root, args, out)?;
    if !setup.debug {
        return Ok(None);
    }
    let digest = setup.settings(target_dir, args, Vec::new(), None).digest();
    let unaffected = |n: usize, id: &StepId| reuse.place(state, n, id).is_some();
    let Some(nodes) = scone::plan::stored::decode(&last.plan, &digest, unaffected) else {
        return Ok(None);
    };
    Ok(Some(Kept {
        nodes,
        plan: Arc::clone(&last.plan),
        setup,
        warnings: last.warnings.clone(),
    }))
}

/// The remote cache tier of `--remote-cache` or `[cache] remote`, unless
/// `--no-remote-cache` or `--offline`.
fn remote_tier(
    config: &Config,
    args: &BuildArgs,
    offline: bool,
) -> anyhow::Result<Option<std::sync::Arc<scone::remote::Tier>>> {
    let config = &config.cache;
    let (url, named_by) = match (&args.remote_cache, &config.remote) {
        (Some(url), _) => (Some(url.clone()), "--remote-cache"),
        (None, url) => (url.clone(), "scone.toml [cache] remote"),
    };
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
        wait: config
            .wait_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(scone::remote::DEFAULT_WAIT),
    })
    .map_err(|e| {
        super::UsageError::new(
            format!("{named_by}: {e}"),
            "a remote cache is oci://HOST[:PORT]/REPO (credentials from the Docker config) or \
             http(s)://[USER:TOKEN@]HOST[:PORT]/PREFIX; see docs/cache.md",
        )
    })?;
    Ok(Some(tier))
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

/// The signing key: `scone.toml` `[signing] key`, else the user's default key,
/// generated on first use (outside `target/`, mode 0600).
fn signing_key(config: &Config, root: &Path, out: &Output) -> anyhow::Result<PathBuf> {
    if let Some(key) = &config.signing.key {
        let path = root.join(key);
        if !path.exists() {
            bail!(
                "the signing key {} (scone.toml [signing] key) does not exist",
                path.display()
            );
        }
        key_is_a_file(&path, "signing key", "scone.toml [signing] key")?;
        return Ok(path);
    }
    let path = scone::sgx::keys::default_key_path()?;
    key_is_a_file(&path, "signing key", named_by(scone::sgx::keys::KEY_ENV))?;
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

/// What named a key found by default: `env` if it is set, else scone's own
/// place.
fn named_by(env: &'static str) -> &'static str {
    match std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
        true => env,
        false => "the default place",
    }
}

/// Refuses a key path that is there but is no file (a folder, a FIFO, a
/// device): the sign step would find out only after the images were built,
/// and say less. A path that is not there passes (a default key is made).
fn key_is_a_file(path: &Path, what: &str, named_by: &str) -> anyhow::Result<()> {
    let kind = match scone::regular_file::check(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(scone::regular_file::ReadError::Special { what }) => what,
        Err(e) => bail!("reading the {what} {} ({named_by}): {e}", path.display()),
    };
    bail!(
        "the {what} {} ({named_by}) is {kind}, not a key file\n  \
         help: name a PEM key file there",
        path.display()
    )
}

/// The provenance key: `scone.toml` `[provenance] key`, else
/// `$SCONE_PROVENANCE_KEY`, else the user's default key, generated on first
/// use (Ed25519, outside `target/`, mode 0600).
fn provenance_key(config: &Config, root: &Path, out: &Output) -> anyhow::Result<PathBuf> {
    if let Some(key) = &config.provenance.key {
        let path = root.join(key);
        if !path.exists() {
            bail!(
                "the provenance key {} (scone.toml [provenance] key) does not exist\n  \
                 help: make one with `openssl genpkey -algorithm ed25519 -out {}`",
                path.display(),
                path.display()
            );
        }
        key_is_a_file(&path, "provenance key", "scone.toml [provenance] key")?;
        return Ok(path);
    }
    let path = scone::attest::key::default_key_path()?;
    key_is_a_file(
        &path,
        "provenance key",
        named_by(scone::attest::key::KEY_ENV),
    )?;
    if !path.exists() {
        scone::attest::key::ProvenanceKey::generate_at(&path)
            .with_context(|| format!("generating a provenance key at {}", path.display()))?;
        out.status(
            "Generated",
            &format!(
                "a provenance signing key (Ed25519) at {}; its public key verifies your images' provenance",
                path.display()
            ),
        );
    }
    Ok(path)
}
