//! The command line, as clap types. The contract is `docs/cli.md` (design §4).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use super::cas::CasCommand;
use super::enclave::EnclaveCommand;

/// A cargo-style build tool for confidential container meshes.
#[derive(Debug, Parser)]
#[command(name = "scone", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images, enclaves, the policy and the chart under target/.
    Build(BuildArgs),
    /// Build, then upload the policy to CAS, push images, write the chart.
    Apply(ApplyArgs),
    /// Check that what is deployed is what these sources build, or check an image alone.
    Verify(VerifyArgs),
    /// Remove target/ (or one service's outputs with -p).
    Clean(CleanArgs),
    /// Validate the manifests and print a summary per mesh.
    Check(CommonArgs),
    /// Print the planned step graph.
    Graph(GraphArgs),
    /// Run one service locally in simulation mode (after applying to the local CAS).
    Run(RunArgs),
    /// Watch the inputs; rebuild, re-apply and restart what changed.
    Dev(DevArgs),
    /// Measure, sign and inspect SGX enclaves.
    #[command(subcommand)]
    Enclave(EnclaveCommand),
    /// The embedded local CAS.
    #[command(subcommand)]
    Cas(CasCommand),
    /// Print the command reference of docs/cli.md (generated from these definitions).
    #[command(name = "cli-reference", hide = true)]
    Reference,
}

impl Cli {
    /// The options every workspace command shares (the defaults for others).
    pub fn common(&self) -> CommonArgs {
        match &self.command {
            Command::Build(a) => a.common.clone(),
            Command::Apply(a) => a.build.common.clone(),
            Command::Verify(a) => a.build.common.clone(),
            Command::Clean(a) => a.common.clone(),
            Command::Check(a) => a.clone(),
            Command::Graph(a) => a.common.clone(),
            Command::Run(a) => a.common.clone(),
            Command::Dev(a) => a.common.clone(),
            Command::Enclave(_) | Command::Cas(_) | Command::Reference => CommonArgs::default(),
        }
    }
}

/// Options every workspace command shares.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// A Meshfile or service manifest (repeatable). Default: scone.toml members,
    /// else mesh.yml / Meshfile / Meshfile.yaml in the current folder (below
    /// a scone.toml: else in its folder).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Only this service (its mesh name or its build.name); repeatable.
    #[arg(short = 'p', long = "package", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Where outputs go (default: <root>/target).
    #[arg(long, value_name = "DIR", env = "SCONE_TARGET_DIR")]
    pub target_dir: Option<PathBuf>,
    /// Refuse to change scone.lock.
    #[arg(long)]
    pub locked: bool,
    /// --locked and --offline.
    #[arg(long)]
    pub frozen: bool,
    /// Never touch the network.
    #[arg(long)]
    pub offline: bool,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Say, for each step that runs, which input changed.
    #[arg(long)]
    pub explain: bool,
    /// More output (-v shows fresh steps).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct BuildArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Parallel steps (default: the number of cores).
    #[arg(short, long, value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,
    /// Enclave mode: `debug` sets the SGX DEBUG attribute.
    #[arg(long, value_enum)]
    pub mode: Option<EnclaveMode>,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip)]
    pub compression: LayerCompression,
    /// A folder of Helm chart templates overriding the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub helm_template: Option<PathBuf>,
    /// Also write plain Kubernetes manifests to target/manifests/.
    #[arg(long, value_enum)]
    pub output: Option<OutputExtra>,
    /// Reach this registry (`host[:port]`) over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// A shared cache behind the local one: `oci://HOST[:PORT]/REPO` or
    /// `http(s)://HOST[:PORT]/PREFIX` (Bazel HTTP cache). Overrides `[cache] remote`.
    #[arg(long, value_name = "URL", env = "SCONE_REMOTE_CACHE")]
    pub remote_cache: Option<String>,
    /// Upload what this build makes to the remote cache (CI writes, laptops read).
    #[arg(long)]
    pub remote_cache_write: bool,
    /// Ignore the remote cache of SCONE_REMOTE_CACHE or scone.toml for this
    /// build.
    // Not `conflicts_with` `remote_cache`: clap counts SCONE_REMOTE_CACHE as
    // the flag, and this flag must beat the variable. `--remote-cache URL`
    // given with it on the command line is refused by [`refuse_conflicts`].
    #[arg(long, conflicts_with = "remote_cache_write")]
    pub no_remote_cache: bool,
    /// Print each manifest with every default filled in, and do nothing else.
    #[arg(long)]
    pub print_defaults: bool,
    /// Write a page of when each step ran, the critical path and where the
    /// time went: target/scone-timings/scone-timing.html (and a timestamped
    /// copy); with --message-format json, also a `timings` message.
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnclaveMode {
    Debug,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LayerCompression {
    #[default]
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputExtra {
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CasKind {
    /// The embedded local CAS (default).
    #[default]
    Local,
    /// The mesh's `cas_url`, over HTTPS with a client certificate.
    Remote,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Push images to their registries (after the policy upload).
    #[arg(long)]
    pub push: bool,
    /// Load images into a Docker-API engine (DOCKER_HOST honoured).
    #[arg(long)]
    pub load: bool,
    /// Which CAS to upload the policy to.
    #[arg(long, value_enum, default_value_t = CasKind::Local)]
    pub cas: CasKind,
    /// CA certificate to trust for a remote CAS.
    #[arg(long, value_name = "PEM")]
    pub cas_ca: Option<PathBuf>,
    /// Replace the CAS session NAMESPACE as it is now, whoever made it: take
    /// over a local CAS session another project or a `scone cas serve` client
    /// created (the client's certificate loses its access), or accept a session
    /// that changed since this project's last apply (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    pub take_over: Vec<String>,
    /// Do nothing: build, then print what apply would change (the session diff
    /// against CAS, the images to push, the chart values that change).
    #[arg(long)]
    pub plan: bool,
    /// With --plan: exit as `terraform plan -detailed-exitcode` does: 0 when
    /// there is nothing to apply, 2 when there is, 1 for any error (a bad
    /// manifest or usage too).
    #[arg(long, requires = "plan")]
    pub detailed_exitcode: bool,
    /// Refuse to upload a session that no longer declares a secret CAS
    /// generated (its value would be deleted): `scone dev` sets it, so that
    /// a transient save loses no key. Not a flag.
    #[arg(skip)]
    pub keep_generated: bool,
}

/// `scone verify`: against the sources (rebuild, then compare with scone.lock,
/// CAS and, with --registry, the registry), or an image alone (--image).
#[derive(Debug, Args, Clone, Default)]
#[command(mut_arg("print_defaults", |a| a.conflicts_with("image")))]
pub struct VerifyArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Also compare with the images in their registries (by tag) and their
    /// attached SBOM and provenance.
    #[arg(long)]
    pub registry: bool,
    /// Which CAS holds the sessions.
    #[arg(long, value_enum, default_value_t = CasKind::Local)]
    pub cas: CasKind,
    /// CA certificate to trust for a remote CAS.
    #[arg(long, value_name = "PEM")]
    pub cas_ca: Option<PathBuf>,
    /// Verify this image alone instead: a registry reference, `oci:DIR[:TAG]`
    /// or `docker-daemon:NAME`. Its MRENCLAVE is recomputed (no SGX needed).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// With --image: the SIGSTRUCT to check (default: the one in the image's
    /// provenance).
    #[arg(long, value_name = "FILE", requires = "image")]
    pub sigstruct: Option<PathBuf>,
    /// With --image: the provenance envelope (DSSE JSON) to use (default: the
    /// one attached to the image in its registry).
    #[arg(long, value_name = "FILE", requires = "image")]
    pub provenance: Option<PathBuf>,
    /// The public key (PEM) the provenance must be signed with (checked only
    /// when given: `openssl pkey -in KEY.pem -pubout`).
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    /// With --image: a session that must list the image's MRENCLAVE and fspf
    /// tag: a YAML file, `cas:NAME` (the local CAS) or `cas://HOST[:PORT]/NAME`.
    #[arg(long, value_name = "FILE|cas:NAME", requires = "image")]
    pub session: Option<String>,
    /// With --image: the entry binary's path in the image (default: the
    /// provenance's, else the image's entrypoint).
    #[arg(long, value_name = "PATH", requires = "image")]
    pub binary: Option<String>,
}

/// `-p SERVICE`: the one service that runs (default: the workspace's only
/// mesh service).
#[derive(Debug, Args, Clone, Default)]
#[command(mut_arg("services", |a| a.help(
    "The service to run (its mesh name or its build.name); default: the workspace's only mesh service"
)))]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Run on this host in the unpacked rootfs instead of a Docker-API engine: the command's program is the host's (from PATH; `python3` is the host's interpreter running the image's files), not the image's.
    #[arg(long)]
    pub native: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct DevArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Run the services natively instead of in a Docker-API engine.
    #[arg(long)]
    pub native: bool,
    /// Quiet period after a change before rebuilding, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub debounce_ms: u64,
}

#[derive(Debug, Args, Clone, Default)]
pub struct CleanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Keep the outputs; remove the cached results (blobs, action records)
    /// that no step of the last builds refers to, and the base layers of the
    /// user cache that this workspace does not use and no project used lately.
    #[arg(long, conflicts_with = "services")]
    pub gc: bool,
    /// With --gc: how many days a base layer other projects used stays in
    /// the user cache.
    #[arg(long, value_name = "DAYS", default_value_t = 30, requires = "gc")]
    pub keep_days: u64,
}

#[derive(Debug, Args, Clone)]
pub struct GraphArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// With --format svg: one box per step, not one per service.
    #[arg(long)]
    pub expand: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
    /// A picture: step kinds coloured, one box per service (see --expand).
    Svg,
}

/// The environment variables the options read (`env = …` above).
pub fn option_variables() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|n| n.to_str()) {
                if !out.iter().any(|o| o == name) {
                    out.push(name.to_string());
                }
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// What clap cannot refuse by itself: `--no-remote-cache` with
/// `--remote-cache URL` both on the command line (the URL of
/// SCONE_REMOTE_CACHE is set aside by `--no-remote-cache`, see
/// [`Cli::settle`]).
pub fn refuse_conflicts(matches: &clap::ArgMatches) -> Result<(), clap::Error> {
    let Some((name @ ("build" | "apply" | "verify"), sub)) = matches.subcommand() else {
        return Ok(());
    };
    let given = |id: &str| sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    if given("remote_cache") && given("no_remote_cache") {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        cmd.build();
        let mut sub = cmd.find_subcommand(name).cloned().unwrap_or_default();
        return Err(sub.error(
            clap::error::ErrorKind::ArgumentConflict,
            "the argument '--no-remote-cache' cannot be used with '--remote-cache <URL>'",
        ));
    }
    Ok(())
}

impl Cli {
    /// After parsing: `--no-remote-cache` sets aside a URL that came from
    /// SCONE_REMOTE_CACHE (one given on the command line was refused).
    pub fn settle(&mut self) {
        let build = match &mut self.command {
            Command::Build(a) => a,
            Command::Apply(a) => &mut a.build,
            Command::Verify(a) => &mut a.build,
            _ => return,
        };
        if build.no_remote_cache {
            build.remote_cache = None;
        }
    }
}

/// `-j N`: one step at a time or more (0 would run none).
fn jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => {
            Err("0 would run no step: give 1 or more (without -j: the number of cores)".into())
        }
        Ok(n) => Ok(n),
        Err(e) => Err(format!(
            "{e}: give a whole number of parallel steps, 1 or more"
        )),
    }
}
