//! Linking one service of a mesh to its service manifest: the one its
//! `manifest:` names, else the one whose `build.to` is the service's
//! `image` (found by the discovery walk, rendered with the mesh's variables).

use super::{relative, Link, Loader};
use crate::manifest::template::{self, Variables};
use crate::manifest::SERVICE_KINDS;
use crate::manifest::{discover, parse, suspect, Diagnostic, ErrorKind, Mesh, MeshService};
use std::path::Path;

impl Loader {
    /// Links one mesh service: by `manifest:`, else by `image` == `build.to`.
    pub(super) fn link(
        &mut self,
        mesh: &Mesh,
        svc: &MeshService,
        vars: &Variables,
    ) -> Option<Link> {
        let mesh_dir = mesh
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if let Some(rel) = &svc.manifest {
            let path = mesh_dir.join(&rel.value);
            if !self.check_manifest_link(&mesh.path, rel) {
                return Some(Link::Failed);
            }
            let problem = match self.prepared.contains_key(&path) {
                true => None,
                false => crate::regular_file::check(&path).err(),
            };
            if let Some(e) = problem {
                let (kind, what) = match e {
                    crate::regular_file::ReadError::Special { what } => {
                        (ErrorKind::SpecialFile, format!("is {what}, not a file"))
                    }
                    _ => (ErrorKind::MissingFile, "does not exist".to_string()),
                };
                // A folder: the manifest in it, if it holds one by a name
                // the discovery takes.
                let hint = match path.is_dir() {
                    true => match discover::manifests_in(&path)
                        .iter()
                        .find(|(_, kind)| SERVICE_KINDS.contains(&kind.as_str()))
                    {
                        Some((name, _)) => format!(
                            "name the file in it: `manifest: {}/{name}`",
                            rel.value.trim_end_matches('/')
                        ),
                        None => "`manifest:` names a service manifest (a YAML file), relative to the Meshfile's folder".to_string(),
                    },
                    false => "`manifest:` is relative to the Meshfile's folder".to_string(),
                };
                self.diags.push(
                    Diagnostic::new(
                        kind,
                        &mesh.path,
                        rel.pos,
                        format!("service manifest `{}` {what}", rel.value),
                    )
                    .with_hint(hint),
                );
                return None;
            }
            // A prepared manifest is a service manifest read without error:
            // `unit` takes its text.
            let text = match self.prepared.contains_key(&path) {
                true => None,
                false => match parse::read_text(&path) {
                    Ok(t) => Some(t),
                    Err(d) => {
                        self.diags.push(d);
                        return Some(Link::Failed);
                    }
                },
            };
            if let Some(kind) = text
                .as_deref()
                .and_then(discover::sniff_kind)
                .filter(|k| !SERVICE_KINDS.contains(&k.as_str()))
            {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::Kind,
                        &mesh.path,
                        rel.pos,
                        format!(
                            "`{}` is a `kind: {kind}` file, not a service manifest",
                            rel.value
                        ),
                    )
                    .with_hint("`manifest:` must name a service manifest (`kind: genImage`)"),
                );
                return Some(Link::Failed);
            }
            let idx = self.unit(&path, text, vars, Some(&mesh.path));
            if let Some(i) = idx {
                let to = &self.units[i].manifest.build.to.value;
                if *to != svc.image.value {
                    self.warnings.push(Diagnostic::warning(
                        ErrorKind::ImageMismatch,
                        &mesh.path,
                        svc.image.pos,
                        format!(
                            "image `{}` of service `{}` differs from its manifest's build.to `{to}`; the built image is `{to}`",
                            svc.image.value, svc.name.value
                        ),
                    ));
                }
            }
            return Some(idx.map_or(Link::Failed, Link::Unit));
        }
        let root = self.root.clone();
        let watched = &mut self.watched;
        let candidates = self
            .candidates
            .get_or_insert_with(|| discover::service_candidates(&root, watched));
        let mut matching = Vec::new();
        let mut known = Vec::new();
        for (path, text) in candidates.iter() {
            if let Some(to) = build_to(text, path, vars) {
                if to == svc.image.value {
                    matching.push((path.clone(), text.clone()));
                }
                known.push(to);
            }
        }
        match matching.len() {
            1 => {
                let (path, text) = matching.remove(0);
                Some(
                    self.unit(&path, Some(text), vars, Some(&mesh.path))
                        .map_or(Link::Failed, Link::Unit),
                )
            }
            0 => {
                let mut unreadable: Vec<Diagnostic> = candidates
                    .iter()
                    .filter(|(_, text)| suspect::could_build(text, &svc.image.value))
                    .filter_map(|(path, text)| candidate_error(text, path, vars))
                    .collect();
                unreadable.extend(suspect::unreadable_under(
                    &discover::walk(&root, &mut Vec::new()),
                    &svc.image.value,
                ));
                let under = relative(&root, &self.cwd).display().to_string();
                let hint = match crate::manifest::suggest::did_you_mean(&svc.image.value, known.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`? (or add `manifest: <path>` to this service)"),
                    None if !unreadable.is_empty() => format!(
                        "{} file(s) under `{under}` that could build it cannot be read: fix the error(s) reported there",
                        unreadable.len()
                    ),
                    None => format!("add `manifest: <path>` to this service, or fix `image` to the `build.to` of a service manifest under `{under}` (the folder searched)"),
                };
                self.diags.extend(unreadable);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::UnlinkedService,
                        &mesh.path,
                        svc.image.pos,
                        format!(
                            "no service manifest builds image `{}` (service `{}`)",
                            svc.image.value, svc.name.value
                        ),
                    )
                    .with_hint(hint),
                );
                None
            }
            _ => {
                let list: Vec<String> = matching
                    .iter()
                    .map(|(p, _)| relative(p, &self.cwd).display().to_string())
                    .collect();
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::UnlinkedService,
                        &mesh.path,
                        svc.image.pos,
                        format!(
                            "several service manifests build image `{}`: {}",
                            svc.image.value,
                            list.join(", ")
                        ),
                    )
                    .with_hint("add `manifest: <path>` to this service to pick one"),
                );
                None
            }
        }
    }
}

/// Why a candidate manifest has no `build.to` to link by: it does not render
/// with `vars` as a service manifest renders (raw output `{{{x}}}` is a
/// `template` error there, as [`build_to`] finds), or is not YAML. `None` when
/// it reads (it builds another image).
fn candidate_error(text: &str, path: &Path, vars: &Variables) -> Option<Diagnostic> {
    let rendered = match template::render_service(text, vars, path) {
        Ok(r) => r,
        Err(d) => return Some(d),
    };
    parse::from_yaml::<serde_json::Value>(&rendered.text, path)
        .err()
        .map(|d| rendered.values.explain(d))
}

/// The `build.to` of a candidate manifest, rendered with `vars` when it can be.
fn build_to(text: &str, path: &Path, vars: &Variables) -> Option<String> {
    let rendered = template::render_service(text, vars, path).ok()?;
    let doc: serde_json::Value = parse::from_yaml(&rendered.text, path).ok()?;
    doc.pointer("/build/to")
        .and_then(serde_json::Value::as_str)
        .map(|to| rendered.values.expand(to))
}
