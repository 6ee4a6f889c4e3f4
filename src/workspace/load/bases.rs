//! Every service has a base image, and a local one is there: `build.from`,
//! its kind's `[base]` in scone.toml, or the kind's default; a `dir:`/`oci:`
//! base a manifest names must exist (a build would fail on it).

use super::{Loader, Unit};
use crate::manifest::{validate, Diagnostic, ErrorKind};
use crate::workspace::Config;
use std::path::Path;

impl Loader {
    /// Every service has a base image: `build.from`, its kind's `[base]` in
    /// scone.toml, or the kind's default (the plan would refuse it at build).
    pub(super) fn bases(&mut self, config: &Config) {
        for u in &self.units {
            let b = &u.manifest.build;
            self.diags.extend(missing_local_base(u));
            let kind = &b.kind.value;
            let known = b.from.is_some()
                || config.base.contains_key(kind)
                || crate::plan::default_base(kind, Path::new("")).is_some();
            if !known && validate::is_build_kind(kind) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BuildKind,
                        &u.manifest.path,
                        b.kind.pos,
                        format!("no base image for build.kind `{kind}`"),
                    )
                    .with_hint(format!(
                        "set `build.from`, or `[base] {kind} = \"…\"` in scone.toml (scone has defaults for python and binary only)"
                    )),
                );
            }
        }
    }
}

/// The error for a `build.from` naming a local base (`dir:`, `oci:`) that is
/// not there: the build would fail on it.
fn missing_local_base(u: &Unit) -> Option<Diagnostic> {
    use crate::oci::base::BaseSpec;
    let b = &u.manifest.build;
    let from = b.from.as_ref()?;
    let (path, there, what) = match BaseSpec::parse(&from.value).ok()? {
        BaseSpec::Dir(p) => {
            let path = u.dir.join(p);
            (path.clone(), path.is_dir(), "a root file system folder")
        }
        BaseSpec::Oci { dir, .. } => {
            let path = u.dir.join(dir);
            let there = path.join("index.json").is_file();
            (path, there, "an OCI image layout folder")
        }
        _ => return None,
    };
    if there {
        return None;
    }
    let make = if b.kind.value == "python" {
        format!(
            "make it there (a python3 root file system: `scripts/python-rootfs.sh {}`)",
            path.display()
        )
    } else {
        "make it there".to_string()
    };
    Some(
        Diagnostic::new(
            ErrorKind::MissingFile,
            &u.manifest.path,
            from.pos,
            format!(
                "build.from `{}`: {} does not exist (it should be {what})",
                from.value,
                path.display()
            ),
        )
        .with_hint(format!(
            "a local base is relative to the service manifest's folder: {make}, or leave out \
             `build.from` to use the default base of build.kind `{}`",
            b.kind.value
        )),
    )
}
