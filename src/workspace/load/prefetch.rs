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
use std::io::Read;
use std::path::{Path, PathBuf};

/// A service manifest read, rendered and (if that worked) parsed and validated.
pub(super) struct Prepared {
    pub text: String,
    /// What `Path::is_file` says (the file as opened, links followed).
    pub is_file: bool,
    /// The canonical path (how units are told apart).
    pub key: PathBuf,
    pub rendered: Result<String, Diagnostic>,
    /// `None` when rendering failed.
    pub checked: Option<Result<Checked, Diagnostic>>,
}

/// A parsed manifest with what validating it found.
pub(super) struct Checked {
    pub manifest: ServiceManifest,
    pub dir: PathBuf,
    pub diags: Vec<Diagnostic>,
    pub warnings: Vec<String>,
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
        let mut paths: Vec<PathBuf> = mesh
            .services
            .iter()
            .filter_map(|s| s.manifest.as_ref())
            .map(|rel| mesh_dir.join(&rel.value))
            .collect();
        paths.sort();
        paths.dedup();
        let cwd = &self.cwd;
        let cache = &self.cache;
        let resolver = &self.resolver;
        let prepared: Vec<(PathBuf, Prepared)> = paths
            .into_par_iter()
            .filter_map(|path| {
                let (text, is_file) = read(&path)?;
                if discover::sniff_kind(&text).is_some_and(|k| !SERVICE_KINDS.contains(&k.as_str()))
                {
                    return None;
                }
                let key = resolver.canonical(&path).unwrap_or_else(|_| path.clone());
                let rendered = template::render(&text, vars, &path).map(|r| r.into_owned());
                let checked = rendered.as_ref().ok().map(|r| {
                    cache.service(r, &path).map(|manifest| {
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
                        Checked {
                            manifest,
                            dir,
                            diags,
                            warnings,
                        }
                    })
                });
                Some((
                    path,
                    Prepared {
                        text,
                        is_file,
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

/// The UTF-8 text of `path` and whether it is a regular file (links followed),
/// from one open; `None` on any error (the linker reads it again and reports).
/// One `fstat` (that `fs::read` does too, and `is_file` would do again) and no
/// seek: the buffer is sized from it, and reading goes on until end of file.
fn read(path: &Path) -> Option<(String, bool)> {
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let mut bytes = vec![
        0;
        usize::try_from(meta.len())
            .ok()?
            .saturating_add(1)
            .max(4096)
    ];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            bytes.resize(bytes.len() * 2, 0);
        }
        let n = match file.read(&mut bytes[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        filled += n;
        if n == 0 {
            break;
        }
    }
    bytes.truncate(filled);
    Some((String::from_utf8(bytes).ok()?, meta.is_file()))
}
