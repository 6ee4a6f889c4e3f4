//! What `scone verify` and `apply --plan` read of a build and of where it is
//! deployed: the values a build published under `target/`, the session of a
//! mesh on its CAS (and how it compares with the one apply would send), the
//! registry client.

use anyhow::Context;
use scone::cas::pending::Comparison;
use scone::cas::{Cas, SessionRecord};
use scone::oci::registry::{RegistryClient, RegistryOptions};
use scone::workspace::{LinkedMesh, Workspace};
use std::path::{Path, PathBuf};

use super::args::CasKind;

/// What the build published for a service's enclave.
#[derive(Clone, Debug, Default)]
pub struct BuiltEnclave {
    pub mrenclave: String,
    pub mrsigner: String,
    pub fspf_tag: String,
    pub sigstruct: Vec<u8>,
}

/// The text of a one-line file, trimmed.
fn line(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The manifest digest of `target/images/<name>/` (its index's only image).
pub fn built_image(target: &Path, name: &str) -> Option<String> {
    let index = std::fs::read(target.join("images").join(name).join("index.json")).ok()?;
    let index: serde_json::Value = serde_json::from_slice(&index).ok()?;
    index["manifests"][0]["digest"].as_str().map(str::to_string)
}

/// The enclave files of `target/enclave/<name>/`.
pub fn built_enclave(target: &Path, name: &str) -> Option<BuiltEnclave> {
    let dir = target.join("enclave").join(name);
    Some(BuiltEnclave {
        mrenclave: line(&dir.join("mrenclave"))?,
        mrsigner: line(&dir.join("mrsigner"))?,
        fspf_tag: line(&dir.join("fspf_tag"))?,
        sigstruct: std::fs::read(dir.join("sigstruct.bin")).ok()?,
    })
}

/// `target/policy/<namespace>.yaml`.
pub fn built_session(target: &Path, namespace: &str) -> anyhow::Result<String> {
    let path = target.join("policy").join(format!("{namespace}.yaml"));
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The chart folder of a mesh under `target/`: `helm`, or `helm/<ns>` when
/// the workspace has several meshes.
pub fn chart_dir(ws: &Workspace, target: &Path, namespace: &str) -> PathBuf {
    if ws.meshes.len() > 1 {
        target.join("helm").join(namespace)
    } else {
        target.join("helm")
    }
}

/// A human name of where a mesh's session lives.
pub fn cas_place(kind: CasKind, mesh: &LinkedMesh) -> String {
    match kind {
        CasKind::Local => "local CAS".to_string(),
        CasKind::Remote => format!(
            "CAS {}",
            mesh.mesh
                .policy_cas()
                .map(|c| c.cas_url.value.as_str())
                .unwrap_or("(none)")
        ),
    }
}

/// The session of `mesh` on its CAS (`None`: it has none).
pub fn cas_session(
    kind: CasKind,
    ca: Option<&Path>,
    mesh: &LinkedMesh,
) -> anyhow::Result<Option<SessionRecord>> {
    let ns = mesh.namespace();
    let cas: Box<dyn Cas> = match kind {
        CasKind::Local => Box::new(scone::cas::local::LocalCas::open_default()?),
        CasKind::Remote => {
            let url = mesh
                .mesh
                .policy_cas()
                .map(|c| c.cas_url.value.clone())
                .unwrap_or_default();
            Box::new(
                scone::cas::remote::RemoteCas::connect_default(&url, ca)
                    .with_context(|| format!("CAS {url}"))?,
            )
        }
    };
    cas.session(ns)
        .with_context(|| format!("reading session {ns} from {}", cas_place(kind, mesh)))
}

/// CAS's session of `mesh` (`record`) against the one the next apply would
/// send: `built` (`target/policy/`) with the fixed values of the manifests
/// as `ws` loaded them and the salt CAS holds, compared as the `upload` step
/// compares (`scone::cas::pending`). No value is shown or kept.
pub fn compare_session(
    ws: &Workspace,
    mesh: &LinkedMesh,
    record: &SessionRecord,
    built: &str,
) -> anyhow::Result<Comparison> {
    let ns = mesh.namespace();
    let values = scone::cas::fixed::exposed(&scone::plan::fixed_values(ws, mesh))?;
    scone::cas::pending::compare(record, built, &values)
        .with_context(|| format!("comparing session {ns} with the one on CAS"))
}

/// A registry client reaching `insecure` hosts over plain HTTP.
pub fn registry(insecure: &[String]) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(RegistryOptions {
        insecure: insecure.to_vec(),
        ..RegistryOptions::default()
    })?)
}
