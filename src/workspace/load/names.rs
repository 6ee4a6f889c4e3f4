//! Names that must be unique across the workspace: a `build.name` names an
//! image and its outputs; a mesh's namespace names its CAS session and its chart
//! release (also as a Kubernetes name).

use super::{relative, LoadedMesh, Loader};
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
}
