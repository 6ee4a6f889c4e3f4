//! Workspace discovery: the root, `scone.toml`, the manifests that take part, and
//! how mesh services link to service manifests.
//!
//! `-f FILE` (repeatable) names Meshfiles or service manifests; without it, the
//! `members` globs of `scone.toml`; without that, `mesh.yml`, `Meshfile` or
//! `Meshfile.yaml` in the current folder. The root is the folder of the nearest
//! `scone.toml` at or above the first file's folder (never above the repository
//! root, see [`crate::manifest::discover::config_folders`]), else the folder of
//! the first file.

use crate::manifest::{Mesh, ServiceManifest};
use crate::watch::{Watch, Watched};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod boundary;
mod load;
pub mod target;
mod watched;
pub use load::parse_cache::FILE_NAME as PARSE_CACHE;
pub use load::{inputs, load};

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
    pub provenance: ProvenanceConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub paths: PathsConfig,
}

impl Config {
    /// The keys of scone.toml's top level, as written (a test holds them to
    /// the fields above).
    pub const TOP_KEYS: [&'static str; 7] = [
        "members",
        "target-dir",
        "base",
        "signing",
        "provenance",
        "cache",
        "paths",
    ];
}

/// `[paths]` of `scone.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PathsConfig {
    /// Folders outside the repository (relative to the root) that manifests may
    /// name: `dir:`/`oci:` bases, signing keys, `manifest:` (docs/security.md).
    #[serde(default)]
    pub allow: Vec<PathBuf>,
}

/// `[signing]` of `scone.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SigningConfig {
    /// Enclave signing key (relative to the root).
    pub key: Option<PathBuf>,
    /// `debug` (default) or `production`: any other word is refused where it
    /// is (a `mode = "prod"` taken as debug would sign debug enclaves).
    pub mode: Option<SigningMode>,
}

/// `[signing] mode` of `scone.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningMode {
    Debug,
    Production,
}

/// `[provenance]` of `scone.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProvenanceConfig {
    /// The key that signs each image's provenance (relative to the root): an
    /// Ed25519 or ECDSA P-256 private key, PKCS#8 PEM. Not the enclave key.
    pub key: Option<PathBuf>,
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
    /// How long a step waits for its remote result before it builds locally, in
    /// milliseconds (default 2000).
    pub wait_ms: Option<u64>,
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
    /// Warnings found while loading (deprecated kinds, unimplemented
    /// fields…), with their place.
    pub warnings: Vec<crate::manifest::Diagnostic>,
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

/// What to load: the `-f` files (may be empty), the folder to start from, and
/// `--target-dir` (checked with the rest: see [`target`]).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub files: Vec<PathBuf>,
    pub cwd: PathBuf,
    /// `--target-dir`, relative to `cwd`.
    pub target_dir: Option<PathBuf>,
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
    /// The repository markers (`.git`, …) whose presence decided where the
    /// search for `scone.toml` stopped: in every folder from the first up to
    /// the repository root (to `/` outside a repository).
    pub markers: Vec<PathBuf>,
}

/// Finds the root and `scone.toml` of `opts`: the nearest `scone.toml` in
/// the folder of the first `-f` file (or the current folder) or above it, up
/// to the repository root ([`crate::manifest::discover::config_folders`]).
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
    for dir in crate::manifest::discover::config_folders(&start) {
        let candidate = dir.join(crate::manifest::discover::CONFIG_FILE);
        probed.push(candidate.clone());
        // Found whatever it is: a FIFO or a device is then refused, not
        // passed over for a scone.toml further up.
        if std::fs::symlink_metadata(&candidate).is_ok() {
            config_file = Some(candidate);
            break;
        }
    }
    let repository = crate::manifest::discover::repository_root(&start);
    let markers = start
        .ancestors()
        .take_while(|d| repository.as_deref().is_none_or(|r| d.starts_with(r)))
        .flat_map(|d| {
            crate::manifest::discover::VCS_MARKERS
                .iter()
                .map(move |m| d.join(m))
        })
        .collect();
    let root = config_file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(start);
    Location {
        root,
        config_file,
        probed,
        markers,
    }
}

impl Location {
    /// Why the target dir (`cli`, relative to `cwd`, else `target-dir` of
    /// `scone.toml`, else `<root>/target`) may not be used, as a diagnostic; a
    /// build asks before it locks the folder (which marks it as scone's).
    /// Loading the workspace asks again, with its manifests
    /// ([`target::refusal`]).
    pub fn target_refusal(
        &self,
        cli: Option<&Path>,
        cwd: &Path,
    ) -> Option<crate::manifest::Diagnostic> {
        let text = self.config_file.as_deref().and_then(|f| {
            crate::regular_file::read_text(f, crate::regular_file::MAX_MANIFEST_BYTES).ok()
        });
        let config: Config = text
            .as_deref()
            .and_then(|t| toml::from_str(t).ok())
            .unwrap_or_default();
        let target = match (cli, &config.target_dir) {
            (Some(dir), _) => cwd.join(dir),
            (None, Some(dir)) => self.root.join(dir),
            (None, None) => self.root.join("target"),
        };
        let files: Vec<PathBuf> = self.config_file.iter().cloned().collect();
        let given = cli.is_some() || config.target_dir.is_some();
        let refused = target::refusal(&target, &self.root, &files, given)?;
        let (file, pos) = match (cli, &config.target_dir, &self.config_file, &text) {
            (Some(_), ..) => (PathBuf::from("--target-dir"), Default::default()),
            (None, Some(_), Some(file), Some(text)) => {
                (file.clone(), key_pos(text, None, "target-dir"))
            }
            _ => (target.clone(), Default::default()),
        };
        let file = file
            .strip_prefix(cwd)
            .map(Path::to_path_buf)
            .unwrap_or(file);
        Some(target::diagnostic(&target, &refused, file, pos))
    }

    /// `scone.toml` read without diagnostics (a broken one reads as the
    /// defaults here; loading the workspace reports it).
    pub fn config(&self) -> Config {
        self.config_file
            .as_deref()
            .and_then(|f| {
                crate::regular_file::read_text(f, crate::regular_file::MAX_MANIFEST_BYTES).ok()
            })
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The `scone.toml` files looked for, watched.
    pub fn watched(&self) -> impl Iterator<Item = (PathBuf, Watch)> + '_ {
        self.probed
            .iter()
            .map(|p| (p.clone(), Watch::Content))
            .chain(self.markers.iter().map(|m| (m.clone(), Watch::Kind)))
    }
}

impl Workspace {
    /// The service named `name`: a mesh service name (of any mesh) or a
    /// `build.name`, the one rule of every command's `-p`. Returns the index
    /// into [`Workspace::services`]; an unknown name is an
    /// [`ErrorKind::UnknownService`](crate::manifest::ErrorKind) diagnostic
    /// with did-you-mean. A name that is a mesh service name and another
    /// service's `build.name` is refused by the load; one that names
    /// different services in two meshes is a `duplicate-service` here, the
    /// hint giving their `build.name`s, which are unique.
    pub fn find_service(&self, name: &str) -> Result<usize, crate::manifest::Diagnostic> {
        let mut found: Vec<usize> = Vec::new();
        let by_build = self.services.iter().position(|u| u.name() == name);
        let by_mesh = self
            .meshes
            .iter()
            .flat_map(|m| &m.services)
            .filter(|s| s.name == name)
            .map(|s| s.unit);
        for unit in by_build.into_iter().chain(by_mesh) {
            if !found.contains(&unit) {
                found.push(unit);
            }
        }
        match found[..] {
            [unit] => return Ok(unit),
            [] => {}
            _ => {
                let builds: Vec<String> = found
                    .iter()
                    .map(|&u| format!("-p {}", self.services[u].name()))
                    .collect();
                return Err(crate::manifest::Diagnostic::new(
                    crate::manifest::ErrorKind::DuplicateService,
                    "",
                    crate::manifest::Pos::default(),
                    format!(
                        "-p {name}: `{name}` is a mesh service of {} meshes that run different services",
                        found.len()
                    ),
                )
                .with_hint(format!(
                    "name the service by its build.name: {}",
                    builds.join(" or ")
                )));
            }
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
            "",
            crate::manifest::Pos::default(),
            format!(
                "-p {name}: no service named `{name}` (neither a mesh service nor a build.name)"
            ),
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

/// The line:column of `key = …` in `[section]` of a TOML `text` (1:1 if absent).
pub(crate) fn key_pos(text: &str, section: Option<&str>, key: &str) -> crate::manifest::Pos {
    let mut current: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.split(']').next().map(str::trim);
            continue;
        }
        let is_key = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_key && current == section {
            let column = line.len() - trimmed.len() + 1;
            return crate::manifest::Pos {
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
            };
        }
    }
    crate::manifest::Pos { line: 1, column: 1 }
}

#[cfg(test)]
mod tests {
    use super::key_pos;
    use crate::manifest::Pos;

    #[test]
    fn keys_are_found_in_their_section() {
        let text = "target-dir = \"t\"\n[signing]\n  key = \"k.pem\"\n[paths]\nkey = 1\n";
        assert_eq!(
            key_pos(text, None, "target-dir"),
            Pos { line: 1, column: 1 }
        );
        assert_eq!(
            key_pos(text, Some("signing"), "key"),
            Pos { line: 3, column: 3 }
        );
        assert_eq!(
            key_pos(text, Some("paths"), "key"),
            Pos { line: 5, column: 1 }
        );
        assert_eq!(
            key_pos(text, Some("base"), "python"),
            Pos { line: 1, column: 1 }
        );
    }
}
