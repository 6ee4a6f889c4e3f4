//! Workspace discovery: the root, `scone.toml`, the manifests that take part, and
//! how mesh services link to service manifests.
//!
//! `-f FILE` (repeatable) names Meshfiles or service manifests; without it, the
//! `members` globs of `scone.toml`; without that, `mesh.yml`, `Meshfile` or
//! `Meshfile.yaml` in the current folder. The root is the folder of the nearest
//! `scone.toml` above the first file, else the folder of the first file.

use crate::manifest::{Mesh, ServiceManifest};
use crate::watch::{Watch, Watched};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod load;
mod watched;
pub use load::load;

/// `scone.toml` at the workspace root. Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Globs (relative to the root) of the Meshfiles / service manifests to build.
    #[serde(default)]
    pub members: Vec<String>,
    /// Where outputs go, relative to the root (default `target`).
    #[serde(default)]
    pub target_dir: Option<PathBuf>,
    /// Default base image per `build.kind` (e.g. `python = "dir:rootfs/python"`).
    #[serde(default)]
    pub base: BTreeMap<String, String>,
    #[serde(default)]
    pub signing: SigningConfig,
    #[serde(default)]
    pub cache: CacheConfig,
}

/// `[signing]` of `scone.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SigningConfig {
    /// Enclave signing key (relative to the root).
    pub key: Option<PathBuf>,
    /// `debug` (default) or `production`.
    pub mode: Option<String>,
}

/// `[cache]` of `scone.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// The remote cache URL (`oci://…` or `http(s)://…`).
    pub remote: Option<String>,
    /// Upload build results to it.
    #[serde(default)]
    pub remote_write: bool,
    /// Bound on one remote request, in seconds (default 30).
    pub timeout: Option<u64>,
}

/// Everything one invocation works on, parsed, validated and linked.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The root: `target/` and `scone.lock` live here.
    pub root: PathBuf,
    /// `scone.toml`, or the defaults.
    pub config: Config,
    /// Every service manifest taking part, sorted by `build.name`, each once.
    pub services: Vec<ServiceUnit>,
    /// Warnings found while loading (deprecated kinds, renamed names…).
    pub warnings: Vec<String>,
    /// Every Meshfile taking part, in the order given.
    pub meshes: Vec<LinkedMesh>,
    /// Every path the load read, and what of it this workspace depends on
    /// (see [`crate::watch`]).
    pub watched: Watched,
}

/// A service manifest and the folder its `copy:` paths are relative to.
#[derive(Clone, Debug)]
pub struct ServiceUnit {
    pub manifest: ServiceManifest,
    /// The manifest's folder.
    pub dir: PathBuf,
}

impl ServiceUnit {
    /// `build.name`: names the image-side steps and outputs.
    pub fn name(&self) -> &str {
        &self.manifest.build.name.value
    }
}

/// A Meshfile with each of its services linked to a service manifest.
#[derive(Clone, Debug)]
pub struct LinkedMesh {
    pub mesh: Mesh,
    pub services: Vec<LinkedService>,
}

impl LinkedMesh {
    /// `policy.namespace`: names the mesh's policy and chart steps.
    pub fn namespace(&self) -> &str {
        &self.mesh.policy.namespace.value
    }
}

/// One service of a mesh, linked and with its environment resolved.
#[derive(Clone, Debug)]
pub struct LinkedService {
    /// The service's name in the Meshfile (policy and chart name).
    pub name: String,
    /// Index into [`Workspace::services`].
    pub unit: usize,
    /// The environment CAS gives the program: the manifest's locals in order,
    /// then its globals with values resolved from the Meshfile (the service's own
    /// entry beats `helm`, which beats `global`/seed form, which beats the
    /// manifest's default). Secret references are kept as written.
    pub environment: Vec<(String, String)>,
}

/// What to load: the `-f` files (may be empty) and the folder to start from.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub files: Vec<PathBuf>,
    pub cwd: PathBuf,
}

/// Where a workspace is, found before anything is parsed: its root and its
/// `scone.toml`.
#[derive(Clone, Debug)]
pub struct Location {
    /// The folder of `scone.toml`, else of the first file, else the
    /// current folder.
    pub root: PathBuf,
    pub config_file: Option<PathBuf>,
    /// Every `scone.toml` looked for (the last one found, if any).
    pub probed: Vec<PathBuf>,
}

/// Finds the root and `scone.toml` of `opts`: the nearest `scone.toml` in
/// the folder of the first `-f` file (or the current folder) or above it.
pub fn locate(opts: &LoadOptions) -> Location {
    let start = match opts.files.first() {
        Some(f) => opts
            .cwd
            .join(f)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.cwd.clone()),
        None => opts.cwd.clone(),
    };
    let mut probed = Vec::new();
    let mut config_file = None;
    for dir in start.ancestors() {
        let candidate = dir.join(crate::manifest::discover::CONFIG_FILE);
        probed.push(candidate.clone());
        if candidate.is_file() {
            config_file = Some(candidate);
            break;
        }
    }
    let root = config_file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(start);
    Location {
        root,
        config_file,
        probed,
    }
}

impl Location {
    /// `scone.toml` read without diagnostics (a broken one reads as the
    /// defaults here; loading the workspace reports it).
    pub fn config(&self) -> Config {
        self.config_file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The `scone.toml` files looked for, watched.
    pub fn watched(&self) -> impl Iterator<Item = (PathBuf, Watch)> + '_ {
        self.probed.iter().map(|p| (p.clone(), Watch::Content))
    }
}

impl Workspace {
    /// The service named `name`: a mesh service name (of any mesh) or a
    /// `build.name`. Returns the index into [`Workspace::services`]; an unknown
    /// name is an [`ErrorKind::UnknownService`](crate::manifest::ErrorKind)
    /// diagnostic with did-you-mean.
    pub fn find_service(&self, name: &str) -> Result<usize, crate::manifest::Diagnostic> {
        if let Some(i) = self.services.iter().position(|u| u.name() == name) {
            return Ok(i);
        }
        if let Some(s) = self
            .meshes
            .iter()
            .flat_map(|m| &m.services)
            .find(|s| s.name == name)
        {
            return Ok(s.unit);
        }
        let known: Vec<&str> = self
            .services
            .iter()
            .map(ServiceUnit::name)
            .chain(
                self.meshes
                    .iter()
                    .flat_map(|m| m.services.iter().map(|s| s.name.as_str())),
            )
            .collect();
        let hint = crate::manifest::suggest::hint(name, known)
            .unwrap_or_else(|| "the workspace has no services".into());
        Err(crate::manifest::Diagnostic::new(
            crate::manifest::ErrorKind::UnknownService,
            "-p",
            crate::manifest::Pos::default(),
            format!("no service named `{name}` (neither a mesh service nor a build.name)"),
        )
        .with_hint(hint))
    }

    /// The target directory: `--target-dir`, else `scone.toml`'s `target-dir`
    /// (relative to the root), else `<root>/target`.
    pub fn target_dir(&self, cli: Option<&std::path::Path>) -> PathBuf {
        target_dir(&self.root, &self.config, cli)
    }
}

/// See [`Workspace::target_dir`].
pub fn target_dir(
    root: &std::path::Path,
    config: &Config,
    cli: Option<&std::path::Path>,
) -> PathBuf {
    match (cli, &config.target_dir) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) => root.join(dir),
        (None, None) => root.join("target"),
    }
}
