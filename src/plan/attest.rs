//! The provenance step of a service: the manifest it names (the service
//! manifest: the Meshfiles shape the session, not the image) and the build
//! settings it records.

use std::collections::BTreeMap;
use std::path::Path;

use super::Settings;
use crate::engine::StepId;
use crate::steps::provenance::{ManifestFile, ProvenanceStep};
use crate::workspace::{ServiceUnit, Workspace};

/// The path of `path` relative to the workspace root, `/`-separated.
fn relative(ws: &Workspace, path: &Path) -> String {
    path.strip_prefix(&ws.root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The provenance step of `unit`.
pub(super) fn provenance_step(
    ws: &Workspace,
    unit: &ServiceUnit,
    base: String,
    settings: &Settings,
) -> ProvenanceStep {
    let m = &unit.manifest;
    let holds_secret = m
        .secrets
        .global
        .iter()
        .chain(&m.secrets.local)
        .any(|s| s.value.is_some());
    let manifests = vec![ManifestFile {
        rel: relative(ws, &m.path),
        path: m.path.clone(),
        holds_secret,
    }];
    let enclave_env: BTreeMap<String, serde_json::Value> = m
        .environment
        .locals()
        .into_iter()
        .filter(|(k, _)| k.starts_with("SCONE_"))
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let mode = if settings.debug {
        "debug"
    } else {
        "production"
    };
    let settings_json = BTreeMap::from([
        ("mode".to_string(), serde_json::json!(mode)),
        (
            "compression".to_string(),
            serde_json::json!(format!("{:?}", settings.compression).to_lowercase()),
        ),
        (
            "source_date_epoch".to_string(),
            serde_json::json!(settings.source_date_epoch),
        ),
        ("enclave_env".to_string(), serde_json::json!(enclave_env)),
        (
            "command".to_string(),
            serde_json::json!(m.build.command.value),
        ),
        ("pwd".to_string(), serde_json::json!(m.build.pwd.value)),
    ]);
    ProvenanceStep {
        id: StepId::new("provenance", unit.name()),
        service: unit.name().to_string(),
        base,
        manifests,
        key: settings.provenance_key.clone(),
        settings: settings_json,
    }
}
