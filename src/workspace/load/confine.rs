//! The load's boundary checks (docs/security.md): the target dir, the paths
//! manifests name (`build.from` `dir:`/`oci:`, `signature.key`, `manifest:`),
//! and what `scone.toml` names itself (`[signing] key`, `[base]`); a `dir:`
//! base, wherever named, is never the host's root `/`. Every problem is a
//! diagnostic, so `check` reports it before anything is written.

use super::Loader;
use crate::manifest::{Diagnostic, ErrorKind, Located, Pos, ServiceManifest};
use crate::oci::base::BaseSpec;
use crate::workspace::boundary::{Boundary, Overlap};
use crate::workspace::{target, Config};
use std::path::{Path, PathBuf};

const ALLOW_HINT: &str = "a manifest may only name paths inside the repository; \
     to allow a folder outside, list it in scone.toml: `[paths] allow = [\"/path/to/folder\"]`";

impl Loader {
    /// The target dir (`--target-dir`, else `target-dir` of `scone.toml`, else
    /// `<root>/target`); a refusal is a [`ErrorKind::TargetDir`] diagnostic
    /// (at `--target-dir` or the `scone.toml` line) and keeps the load from
    /// writing there.
    pub(super) fn settle_target(
        &mut self,
        cli: Option<&Path>,
        config: &Config,
        files: &[PathBuf],
    ) -> PathBuf {
        let (target, at) = match (cli, &config.target_dir) {
            (Some(dir), _) => (self.cwd.join(dir), None),
            (None, Some(dir)) => (self.root.join(dir), Some("target-dir")),
            (None, None) => (self.root.join("target"), None),
        };
        let mut known: Vec<PathBuf> = files.to_vec();
        if let Some((file, _)) = &self.config_text {
            known.push(file.clone());
        }
        self.target_cli = cli.is_some();
        self.target_at = at;
        let resolver = &self.resolver;
        let given = cli.is_some() || at.is_some();
        if let Some(refused) =
            target::refusal_with(&target, &self.root, &known, given, |p| resolver.resolve(p))
        {
            self.refuse_target(&target, cli.is_some(), at, &refused);
        }
        target
    }

    fn refuse_target(
        &mut self,
        target: &Path,
        cli: bool,
        at: Option<&'static str>,
        refused: &target::Refusal,
    ) {
        let (file, pos) = match (cli, at) {
            (true, _) => (PathBuf::from("--target-dir"), Pos::default()),
            (false, Some(key)) => self.config_pos(None, key),
            (false, None) => (target.to_path_buf(), Pos::default()),
        };
        self.target_refused = true;
        self.diags
            .push(target::diagnostic(target, refused, file, pos));
    }

    /// Refuses the target dir if it holds a service manifest found while linking.
    pub(super) fn check_target_holds_no_manifest(&mut self, target: &Path) {
        if self.target_refused {
            return;
        }
        let paths: Vec<PathBuf> = self.units.iter().map(|u| u.manifest.path.clone()).collect();
        let resolver = &self.resolver;
        let given = self.target_cli || self.target_at.is_some();
        if let Some(refused) =
            target::refusal_with(target, &self.root, &paths, given, |p| resolver.resolve(p))
        {
            self.refuse_target(target, self.target_cli, self.target_at, &refused);
        }
    }

    /// Refuses the target dir if it lies inside, or holds, a path the build
    /// reads: a folder or file a service copies, a local base (`dir:`/`oci:`,
    /// of `build.from` or `[base]`), a signing or provenance key. A target in
    /// a copied folder went into the image, with the build state, growing at
    /// every build; one that is a copied folder had its files removed by
    /// `scone clean`; a base holding it changed while the build read it.
    pub(super) fn check_target_outside_inputs(&mut self, target: &Path, config: &Config) {
        if self.target_refused {
            return;
        }
        let mut read: Vec<(PathBuf, String)> = Vec::new();
        // A base that is `/` is refused on its own: it holds every target.
        let local_base = |spec: &str, dir: &Path| match BaseSpec::parse(spec).ok()? {
            BaseSpec::Dir(p) if self.is_host_root(&dir.join(&p)) => None,
            BaseSpec::Dir(p) => Some(dir.join(p)),
            BaseSpec::Oci { dir: p, .. } => Some(dir.join(p)),
            _ => None,
        };
        for u in &self.units {
            let b = &u.manifest.build;
            let file = u.manifest.path.display();
            for entry in &b.copy {
                let line = entry.pos.line;
                read.push((
                    u.dir.join(entry.value.trim()),
                    format!("`{}`, which {file}:{line} copies", entry.value.trim()),
                ));
            }
            if let Some(from) = &b.from {
                if let Some(path) = local_base(&from.value, &u.dir) {
                    let line = from.pos.line;
                    read.push((path, format!("the base `{}` of {file}:{line}", from.value)));
                }
            }
            if let Some(key) = b.signature.as_ref().and_then(|s| s.key.as_ref()) {
                let line = key.pos.line;
                read.push((
                    u.dir.join(&key.value),
                    format!("the signing key of {file}:{line}"),
                ));
            }
        }
        for (kind, spec) in &config.base {
            if let Some(path) = local_base(spec, &self.root) {
                read.push((path, format!("`[base] {kind}` of scone.toml")));
            }
        }
        for (table, key) in [
            ("signing", &config.signing.key),
            ("provenance", &config.provenance.key),
        ] {
            if let Some(key) = key {
                read.push((
                    self.root.join(key),
                    format!("`[{table}] key` of scone.toml"),
                ));
            }
        }
        // Written lexically first, so that the folders a thousand services
        // share (`../../base`) are resolved once, from the memo.
        let mut seen = std::collections::HashSet::new();
        read.retain_mut(|(path, _)| {
            *path = crate::plan::normalize(path);
            seen.insert(path.clone())
        });
        let resolver = &self.resolver;
        let t = resolver.resolve(target);
        let why =
            read.iter().find_map(
                |(path, what)| match Overlap::of(&t, &resolver.resolve(path))? {
                    Overlap::Same | Overlap::Inside => Some(format!(
                        "is inside {what}: the build would read its own outputs"
                    )),
                    Overlap::Holds => Some(format!("holds {what}: `scone clean` would remove it")),
                },
            );
        if let Some(why) = why {
            let refused = target::Refusal::new(why);
            self.refuse_target(target, self.target_cli, self.target_at, &refused);
        }
    }

    /// `scone.toml`'s own paths: `[signing] key` and `[provenance] key` regular
    /// files, `[base]` values base references, a `dir:` one not `/`.
    pub(super) fn check_config(&mut self, config: &Config) {
        let keys = [
            (
                "signing",
                config.signing.key.as_ref(),
                "the signing key",
                "`[signing] key` is a PEM RSA-3072 key (e = 3), relative to scone.toml",
            ),
            (
                "provenance",
                config.provenance.key.as_ref(),
                "the provenance key",
                "`[provenance] key` is an Ed25519 or ECDSA P-256 key (PKCS#8 PEM), relative to scone.toml",
            ),
        ];
        for (table, key, what, hint) in keys {
            let Some(key) = key else { continue };
            let path = self.root.join(key);
            if let Err(e) = crate::regular_file::check(&path) {
                let (file, pos) = self.config_pos(Some(table), "key");
                let kind = match e {
                    crate::regular_file::ReadError::Special { what } if what != "a folder" => {
                        ErrorKind::SpecialFile
                    }
                    _ => ErrorKind::Config,
                };
                self.diags.push(
                    Diagnostic::new(
                        kind,
                        file,
                        pos,
                        format!("{what} {} {}", path.display(), super::inputs::reason(&e)),
                    )
                    .with_hint(hint),
                );
            }
        }
        for (kind, spec) in &config.base {
            match BaseSpec::parse(spec) {
                Err(e) => {
                    let (file, pos) = self.config_pos(Some("base"), kind);
                    self.diags.push(
                        Diagnostic::new(ErrorKind::Config, file, pos, format!("[base] {kind}: {e}"))
                            .with_hint("`scratch`, `dir:ROOTFS`, `oci:DIR[:TAG]`, `docker-daemon:NAME` or an image reference"),
                    );
                }
                Ok(BaseSpec::Dir(p)) if self.is_host_root(&self.root.join(&p)) => {
                    let (file, pos) = self.config_pos(Some("base"), kind);
                    let field = format!("`[base] {kind}`");
                    self.diags
                        .push(host_root(ErrorKind::Config, file, pos, &field, spec));
                }
                Ok(_) => {}
            }
        }
    }

    /// Whether `path` is (or resolves to, links followed) the host's root
    /// folder `/`: a `dir:` base there would put every file of this machine
    /// (`/etc/shadow`, `/root`, `/proc`) into the image.
    pub(super) fn is_host_root(&self, path: &Path) -> bool {
        self.resolver.resolve(path).parent().is_none()
    }

    /// The boundary of this load (made on first use, once the root is known).
    pub(super) fn boundary(&mut self) -> &Boundary {
        let root = self.root.clone();
        let allow = self.allow.clone();
        self.boundary
            .get_or_insert_with(|| Boundary::new(&root, &allow))
    }

    /// Whether `rel`, relative to the folder `dir`, is inside the boundary.
    pub(super) fn permits(&mut self, dir: &Path, rel: &str) -> bool {
        let resolved = self
            .resolver
            .folder(dir)
            .unwrap_or_else(|_| crate::workspace::boundary::resolve(dir));
        self.boundary();
        let resolver = &self.resolver;
        self.boundary
            .as_ref()
            .is_some_and(|b| b.permits_in_with(&resolved, rel, |p| resolver.resolve(p)))
    }

    /// A service manifest's `build.from` (`dir:`/`oci:`) and `signature.key`
    /// must stay in the repository or an allowed folder.
    pub(super) fn check_manifest_paths(&mut self, m: &ServiceManifest, dir: &Path) {
        if let Some(from) = &m.build.from {
            let path = match BaseSpec::parse(&from.value) {
                Ok(BaseSpec::Dir(p)) => Some(p),
                Ok(BaseSpec::Oci { dir, .. }) => Some(dir),
                _ => None,
            };
            if let Some(p) = path {
                self.confine(&m.path, "build.from", from, dir, &p);
            }
            if let Ok(BaseSpec::Dir(p)) = BaseSpec::parse(&from.value) {
                if self.is_host_root(&dir.join(p)) {
                    self.diags.push(host_root(
                        ErrorKind::InvalidValue,
                        m.path.clone(),
                        from.pos,
                        "build.from",
                        &from.value,
                    ));
                }
            }
        }
        if let Some(key) = m.build.signature.as_ref().and_then(|s| s.key.as_ref()) {
            let path = PathBuf::from(&key.value);
            self.confine(&m.path, "signature.key", key, dir, &path);
        }
    }

    fn confine(
        &mut self,
        file: &Path,
        field: &str,
        value: &Located<String>,
        dir: &Path,
        path: &Path,
    ) {
        if !self.permits(dir, &path.to_string_lossy()) {
            let repository = self.boundary().repository().to_path_buf();
            self.diags.push(outside(file, field, value, &repository));
        }
    }

    /// A Meshfile's `manifest:` must stay in the repository or an allowed folder.
    pub(super) fn check_manifest_link(&mut self, mesh: &Path, rel: &Located<String>) -> bool {
        let dir = mesh.parent().map(Path::to_path_buf).unwrap_or_default();
        if self.permits(&dir, &rel.value) {
            return true;
        }
        let repository = self.boundary().repository().to_path_buf();
        self.diags.push(outside(mesh, "manifest", rel, &repository));
        false
    }
}

/// The refusal of a `dir:` base that is the host's root folder, at `field`
/// (`build.from`, `` `[base] python` ``) holding `value`.
fn host_root(kind: ErrorKind, file: PathBuf, pos: Pos, field: &str, value: &str) -> Diagnostic {
    Diagnostic::new(
        kind,
        file,
        pos,
        format!(
            "{field}: `{}` is the root folder `/` of this machine: the image would hold all of its files",
            value.trim()
        ),
    )
    .with_hint(
        "a `dir:` base is the image's root file system: name a folder made to be one \
         (`scripts/python-rootfs.sh DIR` makes one for python), or an image reference",
    )
}

fn outside(file: &Path, field: &str, value: &Located<String>, repository: &Path) -> Diagnostic {
    // Outside a repository, the "repository" is the first file's folder: a
    // user who ran scone one folder too deep is told of the scone.toml above
    // that was not read, rather than to edit one that is not read.
    let hint = match crate::manifest::discover::config_above(repository) {
        Some(config) => format!(
            "`{}` above {} is not read: outside a repository scone reads only the \
             scone.toml of the first file's folder; run scone in the workspace's folder, or \
             make the workspace a repository (`git init` there)",
            config.display(),
            repository.display()
        ),
        None => ALLOW_HINT.to_string(),
    };
    Diagnostic::new(
        ErrorKind::OutsideWorkspace,
        file,
        value.pos,
        format!(
            "{field} `{}` is outside the repository ({})",
            value.value,
            repository.display()
        ),
    )
    .with_hint(hint)
}
