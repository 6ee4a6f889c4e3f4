//! `load`: from `-f` files (or `scone.toml` members, or the default Meshfile)
//! to a validated, linked [`Workspace`], or every problem found as
//! [`Diagnostics`]. Nothing is written.

use super::{Config, LinkedMesh, LinkedService, LoadOptions, ServiceUnit, Workspace};
use crate::manifest::link::{self, Member};
use crate::manifest::link_secrets;
use crate::manifest::template::{self, Variables};
use crate::manifest::{
    parse, validate, Diagnostic, Diagnostics, ErrorKind, Mesh, Pos, ServiceManifest,
};
use crate::manifest::{MESH_KIND, SERVICE_KINDS};
use std::path::{Path, PathBuf};

mod bases;
mod confine;
mod inputs;
mod link_service;
mod names;
pub mod parse_cache;
mod prefetch;
mod resolve;

/// Loads, validates and links the workspace described by `opts`.
pub fn load(opts: &LoadOptions) -> Result<Workspace, Diagnostics> {
    let mut loader = Loader::new(cwd_of(opts));
    let result = loader.run(opts);
    match result {
        Some(mut ws) if loader.diags.is_empty() => {
            for w in &mut ws.warnings {
                w.file = relative(&w.file, &loader.cwd);
            }
            Ok(ws)
        }
        _ => Err(loader.into_diagnostics()),
    }
}

/// The files a load of `opts` starts from (`-f`, else `scone.toml`
/// members, else the default Meshfile), without reading them; or what a load
/// would report of them (no manifest to load, a broken `scone.toml`, a
/// `members` glob that matches nothing). A build that has no state yet asks
/// this before it makes `target/`, so that scone run in the wrong folder
/// leaves nothing behind.
pub fn inputs(opts: &LoadOptions) -> Result<Vec<PathBuf>, Diagnostics> {
    let mut loader = Loader::new(cwd_of(opts));
    match loader.files(opts) {
        // A file given that is not there: the load tells it as it would.
        Some((files, _)) if files.iter().any(|f| std::fs::symlink_metadata(f).is_err()) => {
            load(opts).map(|_| files)
        }
        Some((files, _)) if loader.diags.is_empty() => Ok(files),
        _ => Err(loader.into_diagnostics()),
    }
}

fn cwd_of(opts: &LoadOptions) -> PathBuf {
    if opts.cwd.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        opts.cwd.clone()
    }
}

/// `path` as the user would write it from `cwd`: relative where it is
/// under it (`.` for `cwd` itself: a diagnostic always names its file).
fn relative(path: &Path, cwd: &Path) -> PathBuf {
    match path.strip_prefix(cwd) {
        Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from("."),
        Ok(rest) => rest.to_path_buf(),
        Err(_) => path.to_path_buf(),
    }
}

/// A service manifest loaded once, whatever links to it.
struct Unit {
    manifest: ServiceManifest,
    dir: PathBuf,
    rendered: String,
    /// The Meshfile values `rendered` holds as tokens (see [`template::Values`]).
    values: template::Values,
    /// The Meshfile whose variables rendered it (None: used alone).
    mesh: Option<PathBuf>,
}

/// A Meshfile with its services' links (in Meshfile order) and its env.
struct LoadedMesh {
    mesh: Mesh,
    links: Vec<(String, Link)>,
    env: link::MeshEnv,
}

/// How a mesh service linked.
enum Link {
    Unit(usize),
    /// Already reported (the manifest is broken).
    Failed,
}

struct Loader {
    cwd: PathBuf,
    root: PathBuf,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    units: Vec<Unit>,
    /// `Unit::key` → index into `units`.
    unit_index: std::collections::HashMap<PathBuf, usize>,
    candidates: Option<Vec<(PathBuf, String)>>,
    /// Parsed manifests by rendered text (see [`parse_cache`]).
    cache: parse_cache::ParseCache,
    /// The current Meshfile's manifests, prepared in parallel (see [`prefetch`]).
    prepared: std::collections::HashMap<PathBuf, prefetch::Prepared>,
    /// Canonical paths, folders remembered (see [`resolve`]).
    resolver: resolve::Resolver,
    /// What the load read (see [`Workspace::watched`]).
    watched: crate::watch::Watched,
    /// Walks of `copy:` folders taken while validating (see `watched::add_validated`).
    walks: std::collections::HashMap<PathBuf, super::watched::Walk>,
    /// `scone.toml` and its text, when there is one (for positions).
    config_text: Option<(PathBuf, String)>,
    /// `[paths] allow` of `scone.toml`.
    allow: Vec<PathBuf>,
    /// Where manifests' paths may lead (see [`confine`]), made on first use.
    boundary: Option<crate::workspace::boundary::Boundary>,
    /// The target dir was refused: nothing is written there.
    target_refused: bool,
    /// Where the target dir was given: `--target-dir`, or the key of
    /// `scone.toml` (`None`: the default), for a refusal found later.
    target_cli: bool,
    target_at: Option<&'static str>,
}

impl Loader {
    /// What the load found wrong, sorted, each once, files relative to the
    /// current folder. A mesh service that no manifest builds comes after
    /// everything else: its likely cause is a manifest that did not read
    /// (its hint says so), and a reader takes the first error for the cause.
    fn into_diagnostics(self) -> Diagnostics {
        let Loader { cwd, mut diags, .. } = self;
        for d in &mut diags {
            d.file = relative(&d.file, &cwd);
        }
        let follows = |d: &Diagnostic| d.kind == ErrorKind::UnlinkedService;
        diags.sort_by(|a, b| (follows(a), &a.file, a.pos).cmp(&(follows(b), &b.file, b.pos)));
        diags.dedup();
        Diagnostics(diags)
    }

    fn new(cwd: PathBuf) -> Self {
        Loader {
            root: cwd.clone(),
            cwd,
            diags: Vec::new(),
            warnings: Vec::new(),
            units: Vec::new(),
            unit_index: std::collections::HashMap::new(),
            candidates: None,
            cache: parse_cache::ParseCache::default(),
            prepared: std::collections::HashMap::new(),
            resolver: resolve::Resolver::default(),
            watched: Vec::new(),
            walks: std::collections::HashMap::new(),
            config_text: None,
            allow: Vec::new(),
            boundary: None,
            target_refused: false,
            target_cli: false,
            target_at: None,
        }
    }

    fn run(&mut self, opts: &LoadOptions) -> Option<Workspace> {
        let (files, config) = self.files(opts)?;
        self.allow = config.paths.allow.clone();
        self.check_config(&config);
        let target = self.settle_target(opts.target_dir.as_deref(), &config, &files);
        if !self.target_refused {
            self.cache = parse_cache::ParseCache::open(&target.join(".scone"));
        }
        let mut meshes = Vec::new();
        let mut alone = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in files {
            let key = self
                .resolver
                .canonical(&file)
                .unwrap_or_else(|_| file.clone());
            if !seen.insert(key) {
                continue;
            }
            let text = match parse::read_text(&file) {
                Ok(t) => t,
                Err(d) => {
                    self.diags.push(d);
                    continue;
                }
            };
            match self.kind_of(&file, &text) {
                Some(true) => meshes.push((file, text)),
                Some(false) => alone.push((file, text)),
                None => {}
            }
        }
        let mut linked = Vec::new();
        for (file, text) in meshes {
            if let Some(m) = self.mesh(&file, &text) {
                linked.push(m);
            }
        }
        for (file, text) in alone {
            let key = self
                .resolver
                .canonical(&file)
                .unwrap_or_else(|_| file.clone());
            if !self.unit_index.contains_key(&key) {
                self.unit(&file, Some(text), &Variables::new(), None);
            }
        }
        self.duplicate_names();
        self.bases(&config);
        self.duplicate_namespaces(&linked);
        self.mesh_names_of_other_builds(&linked);
        self.check_target_holds_no_manifest(&target);
        self.check_target_outside_inputs(&target, &config);
        if !self.target_refused {
            std::mem::take(&mut self.cache).save();
        }
        Some(self.finish(config, linked))
    }

    /// `Some(true)` for a Meshfile, `Some(false)` for a service manifest.
    fn kind_of(&mut self, file: &Path, text: &str) -> Option<bool> {
        if self.cache.knows_mesh(text) {
            return Some(true);
        }
        let kind = match parse::parse_header(text, file) {
            Ok(h) => h.kind,
            Err(d) => match crate::manifest::suspect::sniff_kind_at(text) {
                Some(k) if text.contains("{{") => Some(k),
                _ => {
                    self.diags.push(d);
                    return None;
                }
            },
        };
        let Some(kind) = kind else {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::MissingField,
                    file,
                    Pos { line: 1, column: 1 },
                    "missing required field `kind`",
                )
                .with_hint("`kind: genImage` for a service manifest, `kind: mesh` for a Meshfile"),
            );
            return None;
        };
        if kind.value == MESH_KIND {
            Some(true)
        } else if SERVICE_KINDS.contains(&kind.value.as_str()) {
            Some(false)
        } else {
            self.diags.push(validate::kind_error(&kind, file));
            None
        }
    }

    /// Loads (once) the service manifest at `path`, rendered with `vars`.
    fn unit(
        &mut self,
        path: &Path,
        text: Option<String>,
        vars: &Variables,
        mesh: Option<&Path>,
    ) -> Option<usize> {
        let (prepared, text) = match self.prepared.remove(path) {
            Some(mut p) if text.is_none() || text.as_deref() == Some(p.text.as_str()) => {
                let text = std::mem::take(&mut p.text);
                (Some(p), Some(text))
            }
            _ => (None, text),
        };
        let key = match &prepared {
            Some(p) => p.key.clone(),
            None => self
                .resolver
                .canonical(path)
                .unwrap_or_else(|_| path.to_path_buf()),
        };
        let text = match text.map(Ok).unwrap_or_else(|| parse::read_text(path)) {
            Ok(t) => t,
            Err(d) => return self.fail(d),
        };
        let (rendered, checked) = match prepared {
            Some(p) => (p.rendered, p.checked),
            None => (
                template::render_service(&text, vars, path)
                    .map(|r| (r.text.into_owned(), r.values)),
                None,
            ),
        };
        let (rendered, values) = match rendered {
            Ok(r) => r,
            Err(d) => return self.fail(d),
        };
        if let Some(&i) = self.unit_index.get(&key) {
            let first = &self.units[i];
            let differs = (first.rendered != rendered || first.values != values)
                && first.values.expand(&first.rendered) != values.expand(&rendered);
            if differs {
                let other = self.units[i]
                    .mesh
                    .as_ref()
                    .map(|p| relative(p, &self.cwd).display().to_string())
                    .unwrap_or_default();
                let this = mesh
                    .map(|p| relative(p, &self.cwd).display().to_string())
                    .unwrap_or_default();
                self.diags.push(
                    Diagnostic::new(ErrorKind::Template, path, Pos { line: 1, column: 1 }, format!("this manifest renders differently for {other} and {this}"))
                        .with_hint("a service manifest shared by meshes must render the same: give the variables it uses the same values"),
                );
            }
            return Some(i);
        }
        let (manifest, dir) = match checked {
            Some(Ok(c)) => {
                self.diags.extend(c.diags);
                self.warnings.extend(c.warnings);
                self.walks.extend(c.walks);
                (c.manifest, c.dir)
            }
            Some(Err(d)) => return self.fail(d),
            None => {
                let manifest = match self.cache.service(&rendered, path) {
                    Ok(mut m) => {
                        values.fill(&mut m);
                        m
                    }
                    Err(d) => return self.fail(values.explain(d)),
                };
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| self.cwd.clone());
                let canonical_dir = if manifest.build.copy.is_empty() {
                    None
                } else {
                    self.resolver.folder(&dir).ok()
                };
                validate::check_service_in(
                    &manifest,
                    &dir,
                    canonical_dir.as_deref(),
                    &mut self.diags,
                    &mut self.warnings,
                );
                (manifest, dir)
            }
        };
        self.check_manifest_paths(&manifest, &dir);
        self.unit_index.insert(key.clone(), self.units.len());
        self.units.push(Unit {
            manifest,
            dir,
            rendered,
            values,
            mesh: mesh.map(Path::to_path_buf),
        });
        Some(self.units.len() - 1)
    }

    fn fail(&mut self, d: Diagnostic) -> Option<usize> {
        self.diags.push(d);
        None
    }

    fn mesh(&mut self, file: &Path, text: &str) -> Option<LoadedMesh> {
        let (mesh, vars) = match self.cache.mesh(text, file) {
            Ok(m) => m,
            Err(d) => {
                self.diags.push(d);
                return None;
            }
        };
        validate::check_mesh(&mesh, &mut self.diags);
        crate::manifest::unimplemented::mesh(&mesh, &mut self.warnings);
        self.warnings.extend(crate::manifest::tolerance::diagnostic(
            &mesh,
            false,
            Some(text),
        ));
        self.warnings
            .extend(crate::manifest::tolerance::near_misses(&mesh, Some(text)));
        let env = link::mesh_env(&mesh, &mut self.diags);
        self.prefetch(&mesh, &vars);
        let mut links = Vec::new();
        for svc in &mesh.services {
            if let Some(l) = self.link(&mesh, svc, &vars) {
                links.push((svc.name.value.clone(), l));
            }
        }
        self.prepared.clear();
        Some(LoadedMesh { mesh, links, env })
    }

    /// Cross-manifest checks, environment resolution, sorting by build.name.
    fn finish(&mut self, config: Config, linked: Vec<LoadedMesh>) -> Workspace {
        let mut order: Vec<usize> = (0..self.units.len()).collect();
        order.sort_by(|a, b| {
            self.units[*a]
                .manifest
                .build
                .name
                .value
                .cmp(&self.units[*b].manifest.build.name.value)
        });
        let mut new_index = vec![0; self.units.len()];
        for (new, old) in order.iter().enumerate() {
            new_index[*old] = new;
        }
        let mut meshes = Vec::new();
        for LoadedMesh { mesh, links, env } in linked {
            let complete = links.len() == mesh.services.len()
                && links.iter().all(|(_, l)| matches!(l, Link::Unit(_)));
            let members: Vec<Member<'_>> = links
                .iter()
                .filter_map(|(name, l)| match l {
                    Link::Unit(i) => Some(Member {
                        name,
                        manifest: &self.units[*i].manifest,
                    }),
                    Link::Failed => None,
                })
                .collect();
            let mut services = Vec::new();
            for (member, (_, l)) in members
                .iter()
                .zip(links.iter().filter(|(_, l)| matches!(l, Link::Unit(_))))
            {
                let Link::Unit(i) = l else { continue };
                let environment = link::resolve_environment(&mesh, &env, member, &mut self.diags);
                services.push(LinkedService {
                    name: member.name.to_string(),
                    unit: new_index[*i],
                    environment,
                });
            }
            link::check_env(&mesh, &env, &members, &mut self.diags, &mut self.warnings);
            let cwd = &self.cwd;
            let shown = |p: &Path| relative(p, cwd).display().to_string();
            link_secrets::check_local_secrets(&mesh, &members, &shown, &mut self.diags);
            link_secrets::check_session_secret_bytes(&mesh, &members, &shown, &mut self.diags);
            if complete {
                link::check_imports(&mesh, &members, &mut self.diags);
            }
            meshes.push(LinkedMesh { mesh, services });
        }
        let mut units: Vec<Option<Unit>> = std::mem::take(&mut self.units)
            .into_iter()
            .map(Some)
            .collect();
        let services = order
            .iter()
            .filter_map(|i| units[*i].take())
            .map(|u| ServiceUnit {
                manifest: u.manifest,
                dir: u.dir,
            })
            .collect();
        let mut ws = Workspace {
            root: self.root.clone(),
            config,
            services,
            warnings: std::mem::take(&mut self.warnings),
            meshes,
            watched: std::mem::take(&mut self.watched),
        };
        super::watched::add_validated(&mut ws, std::mem::take(&mut self.walks));
        ws
    }
}

#[cfg(test)]
mod cache_tests;
