//! Prefetching a Meshfile's service manifests in parallel: reading, rendering,
//! parsing (through the [`ParseCache`](super::parse_cache::ParseCache)) and
//! validating every `manifest:` it names, before the (sequential) linking uses
//! the results in Meshfile order, so diagnostics and warnings come out exactly
//! as without it.

use super::Loader;
use crate::manifest::template::{self, Variables};
use crate::manifest::SERVICE_KINDS;
use crate::manifest::{discover, validate, Diagnostic, Mesh, ServiceManifest};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A service manifest read, rendered and (if that worked) parsed and validated.
pub(super) struct Prepared {
    pub text: String,
    /// The canonical path (how units are told apart).
    pub key: PathBuf,
    /// The rendered text and the Meshfile values it holds as tokens.
    pub rendered: Result<(String, template::Values), Diagnostic>,
    /// `None` when rendering failed.
    pub checked: Option<Result<Checked, Diagnostic>>,
}

/// A parsed manifest with what validating it found.
pub(super) struct Checked {
    pub manifest: ServiceManifest,
    pub dir: PathBuf,
    pub diags: Vec<Diagnostic>,
    pub warnings: Vec<crate::manifest::Diagnostic>,
    /// The walks of its `copy:` entries, for [`Workspace::watched`](crate::workspace::Workspace::watched).
    pub walks: Vec<(PathBuf, crate::workspace::watched::Walk)>,
}

impl Loader {
    /// Prepares every `manifest:` of `mesh` (rendered with `vars`) in parallel.
    /// Files that cannot be read or are no service manifest are left to
    /// [`Loader::link`], which reports them.
    pub(super) fn prefetch(&mut self, mesh: &Mesh, vars: &Variables) {
        let mesh_dir = mesh
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        // A manifest outside the boundary is not even read: the linker reports it.
        let resolved_dir = self
            .resolver
            .folder(&mesh_dir)
            .unwrap_or_else(|_| crate::workspace::boundary::resolve(&mesh_dir));
        self.boundary();
        let boundary = self.boundary.as_ref();
        let resolver = &self.resolver;
        // On all cores: resolving each manifest's path (two `lstat`s) is
        // most of the check, and the linker finds the answers remembered.
        let mut paths: Vec<PathBuf> = mesh
            .services
            .par_iter()
            .filter_map(|s| s.manifest.as_ref())
            .filter(|rel| {
                boundary.is_some_and(|b| {
                    b.permits_in_with(&resolved_dir, &rel.value, |p| resolver.resolve(p))
                })
            })
            .map(|rel| mesh_dir.join(&rel.value))
            .collect();
        paths.sort();
        paths.dedup();
        let cwd = &self.cwd;
        let cache = &self.cache;
        let prepared: Vec<(PathBuf, Prepared)> = paths
            .into_par_iter()
            .filter_map(|path| {
                let text = read(&path)?;
                if discover::sniff_kind(&text).is_some_and(|k| !SERVICE_KINDS.contains(&k.as_str()))
                {
                    return None;
                }
                let key = resolver.canonical(&path).unwrap_or_else(|_| path.clone());
                let rendered = template::render_service(&text, vars, &path)
                    .map(|r| (r.text.into_owned(), r.values));
                let checked = rendered.as_ref().ok().map(|(r, values)| {
                    let parsed = cache.service(r, &path).map_err(|d| values.explain(d));
                    parsed.map(|mut manifest| {
                        values.fill(&mut manifest);
                        let dir = path
                            .parent()
                            .map(Path::to_path_buf)
                            .unwrap_or_else(|| cwd.clone());
                        let canonical_dir = if manifest.build.copy.is_empty() {
                            None
                        } else {
                            resolver.folder(&dir).ok()
                        };
                        let mut diags = Vec::new();
                        let mut warnings = Vec::new();
                        validate::check_service_in(
                            &manifest,
                            &dir,
                            canonical_dir.as_deref(),
                            &mut diags,
                            &mut warnings,
                        );
                        let walks =
                            crate::workspace::watched::copy_walks(&dir, &manifest.build.copy);
                        Checked {
                            manifest,
                            dir,
                            diags,
                            warnings,
                            walks,
                        }
                    })
                });
                Some((
                    path,
                    Prepared {
                        text,
                        key,
                        rendered,
                        checked,
                    },
                ))
            })
            .collect();
        self.prepared = prepared.into_iter().collect();
    }
}

/// The UTF-8 text of `path` if it is a regular file (links followed) of a
/// manifest's size, read as [`crate::regular_file::read`] does; `None` on any
/// error (the linker looks again and reports).
fn read(path: &Path) -> Option<String> {
    crate::regular_file::read_text(path, crate::regular_file::MAX_MANIFEST_BYTES).ok()
}
