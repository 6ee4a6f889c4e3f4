//! Names that must be unique across the workspace: a `build.name` names an
//! image and its outputs; a mesh's namespace names its CAS session and its chart
//! release (also as a Kubernetes name); and `-p NAME`, a mesh service name or a
//! `build.name`, must mean one service.

use super::{relative, Link, LoadedMesh, Loader};
use crate::manifest::{Diagnostic, ErrorKind, Mesh};

impl Loader {
    /// Two service manifests with one `build.name`.
    pub(super) fn duplicate_names(&mut self) {
        let mut first_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, u) in self.units.iter().enumerate() {
            let first = *first_of
                .entry(u.manifest.build.name.value.as_str())
                .or_insert(i);
            if first != i {
                let first = &self.units[first];
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateService,
                        &u.manifest.path,
                        u.manifest.build.name.pos,
                        format!(
                            "build.name `{}` is used by two service manifests",
                            u.manifest.build.name.value
                        ),
                    )
                    .with_hint(format!(
                        "also in {}; build.name names the image and its outputs, it must be unique",
                        relative(&first.manifest.path, &self.cwd).display()
                    )),
                );
            }
        }
    }

    /// Two meshes may not share a namespace, nor one Kubernetes name for it: one
    /// session and one chart release would replace the other.
    pub(super) fn duplicate_namespaces(&mut self, meshes: &[LoadedMesh]) {
        let mut first: std::collections::HashMap<String, &Mesh> = std::collections::HashMap::new();
        for m in meshes {
            let ns = &m.mesh.policy.namespace;
            let (label, _) = crate::helm::dns1123(&ns.value);
            match first.get(&label) {
                Some(other) => self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateService,
                        &m.mesh.path,
                        ns.pos,
                        format!(
                            "namespace `{}` is `{label}` as a Kubernetes name, like namespace `{}` of {}",
                            ns.value,
                            other.policy.namespace.value,
                            relative(&other.path, &self.cwd).display()
                        ),
                    )
                    .with_hint("each mesh is one CAS session and one chart release: give each its own namespace"),
                ),
                None => {
                    first.insert(label, &m.mesh);
                }
            }
        }
    }

    /// A mesh service named like the `build.name` of another service
    /// manifest than the one it runs: `-p NAME` (a mesh service name or a
    /// `build.name`) would mean two services, and `graph`, `clean` and `run`
    /// took different ones. Refused at the mesh service's name, naming the
    /// other manifest's `build.name`.
    pub(super) fn mesh_names_of_other_builds(&mut self, meshes: &[LoadedMesh]) {
        for m in meshes {
            for (name, link) in &m.links {
                let Link::Unit(unit) = link else { continue };
                let Some(other) = self
                    .units
                    .iter()
                    .position(|u| u.manifest.build.name.value == *name)
                else {
                    continue;
                };
                let Some(service) = m.mesh.services.iter().find(|s| s.name.value == *name) else {
                    continue;
                };
                if other == *unit {
                    continue;
                }
                let (own, other) = (&self.units[*unit].manifest, &self.units[other].manifest);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateService,
                        &m.mesh.path,
                        service.name.pos,
                        format!(
                            "mesh service `{name}` runs the image of {} (build.name `{}`), \
                             but `{name}` is the build.name of another service, {}:{}:{}: \
                             `-p {name}` would mean two services",
                            relative(&own.path, &self.cwd).display(),
                            own.build.name.value,
                            relative(&other.path, &self.cwd).display(),
                            other.build.name.pos.line,
                            other.build.name.pos.column,
                        ),
                    )
                    .with_hint(format!(
                        "a name is one service for -p: name the mesh service after the build it \
                         runs (`{}`), or rename one of the two",
                        own.build.name.value
                    )),
                );
            }
        }
    }
}
