//! A mesh's steps: its policy, and its chart; with `apply`, the upload of the
//! policy and the pushes of its images (with their SBOM and provenance)
//! before the chart.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Builder, CasChoice, Settings};
use crate::engine::StepId;
use crate::manifest::FixedValue;
use crate::steps::chart::{ChartStep, ChartUnit};
use crate::steps::policy::{PolicySecret, PolicyService, PolicyStep};
use crate::steps::push::PushStep;
use crate::steps::upload::{CasTarget, UploadStep};
use crate::workspace::{LinkedMesh, Workspace};

/// The SBOM and provenance nodes of a service's image, pushed with it.
pub(super) type Attachments = HashMap<usize, [usize; 2]>;

/// The fixed secret values the service manifests of `mesh` give, by secret
/// name: what the `upload` step puts in the session (see `cas::fixed`), and
/// what `apply --plan` and `verify` compare with CAS. The first declaration
/// of a name decides, as it does for the policy's secrets: a value given
/// only by a later one is not the session's.
pub fn fixed_values(ws: &Workspace, mesh: &LinkedMesh) -> BTreeMap<String, FixedValue> {
    let mut seen = HashSet::new();
    let mut values = BTreeMap::new();
    for s in &mesh.services {
        let m = &ws.services[s.unit].manifest;
        for secret in m.secrets.global.iter().chain(&m.secrets.local) {
            if !seen.insert(secret.name.value.as_str()) {
                continue;
            }
            if let Some(value) = &secret.value {
                values.insert(secret.name.value.clone(), value.value.clone());
            }
        }
    }
    values
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_mesh(
    b: &mut Builder,
    ws: &Workspace,
    mesh: &LinkedMesh,
    settings: &Settings,
    image_of: &HashMap<usize, usize>,
    sign_of: &HashMap<usize, usize>,
    attachments: &Attachments,
    several: bool,
) {
    let ns = mesh.namespace().to_string();
    let mut services = Vec::new();
    let mut sign_deps = Vec::new();
    let mut secrets: BTreeMap<String, PolicySecret> = BTreeMap::new();
    for s in &mesh.services {
        let unit = &ws.services[s.unit];
        let m = &unit.manifest;
        services.push(PolicyService {
            name: s.name.clone(),
            unit: unit.name().to_string(),
            image_name: s.name.clone(),
            command: m.build.command.value.clone(),
            pwd: m.build.pwd.value.clone(),
            environment: s.environment.clone(),
        });
        if let Some(&i) = sign_of.get(&s.unit) {
            sign_deps.push(i);
        }
        for secret in m.secrets.global.iter().chain(&m.secrets.local) {
            // The first declaration of a name decides (as in `fixed_values`).
            let entry = secrets
                .entry(secret.name.value.clone())
                .or_insert_with(|| PolicySecret {
                    name: secret.name.value.clone(),
                    kind: secret.kind.value.clone(),
                    size: secret.size.as_ref().map(|s| s.value),
                    fixed: secret.value.is_some(),
                    export_to: Vec::new(),
                });
            entry.export_to.push(s.name.clone());
        }
        for import in &m.secrets.import {
            if let Some(entry) = secrets.get_mut(&import.value) {
                entry.export_to.push(s.name.clone());
            }
        }
    }
    // Each secret's `export_to` as a set too: a secret imported by most of
    // 1,000 services made `contains` quadratic.
    let mut exported: HashMap<&str, HashSet<String>> = HashMap::new();
    for s in &mesh.services {
        let m = &ws.services[s.unit].manifest;
        for import in &m.secrets.import {
            if let Some(entry) = secrets.get_mut(&import.value) {
                let names = exported
                    .entry(import.value.as_str())
                    .or_insert_with(|| entry.export_to.iter().cloned().collect());
                if names.insert(s.name.clone()) {
                    entry.export_to.push(s.name.clone());
                }
            }
        }
    }
    let policy = &mesh.mesh.policy;
    let policy_step = b.add(
        PolicyStep {
            id: StepId::new("policy", &ns),
            namespace: ns.clone(),
            services,
            secrets: secrets.into_values().collect(),
            tolerate: policy
                .tolerate
                .as_ref()
                .map(|t| t.items())
                .unwrap_or_default(),
            ignore_advisories: policy
                .ignore_advisories
                .as_ref()
                .map(|t| t.items())
                .unwrap_or_default(),
        },
        sign_deps,
    );

    let mut chart_deps = vec![policy_step];
    if let Some(apply) = &settings.apply {
        let target = match &apply.cas {
            CasChoice::Local { dir, project } => CasTarget::Local {
                dir: dir.clone(),
                project: project.clone(),
            },
            CasChoice::Remote => CasTarget::Remote {
                url: mesh
                    .mesh
                    .policy_cas()
                    .map(|c| c.cas_url.value.clone())
                    .unwrap_or_default(),
                ca_file: apply.ca_file.clone(),
            },
        };
        let upload = b.add_boxed(
            Box::new(UploadStep {
                id: StepId::new("upload", &ns),
                namespace: ns.clone(),
                target,
                known_predecessor: settings.known_sessions.get(&ns).cloned(),
                take_over: apply.take_over.contains(&ns),
                lock: ws.root.join("scone.lock"),
                fixed_values: fixed_values(ws, mesh),
                keep_generated: apply.keep_generated,
            }),
            vec![policy_step],
        );
        chart_deps.push(upload);
        if apply.push {
            for s in &mesh.services {
                let unit = &ws.services[s.unit];
                if let Some(&image) = image_of.get(&s.unit) {
                    let mut deps = vec![image, upload];
                    deps.extend(attachments.get(&s.unit).into_iter().flatten());
                    let push = b.add_boxed(
                        Box::new(PushStep {
                            id: StepId::new("push", unit.name()),
                            layout: settings.target_dir.join("images").join(unit.name()),
                            insecure: settings.insecure_registries.clone(),
                        }),
                        deps,
                    );
                    chart_deps.push(push);
                }
            }
        }
    }
    let mut units = Vec::new();
    for s in &mesh.services {
        let unit = &ws.services[s.unit];
        if let Some(&image) = image_of.get(&s.unit) {
            chart_deps.push(image);
        }
        units.push(ChartUnit {
            name: s.name.clone(),
            unit: unit.name().to_string(),
            ports: unit
                .manifest
                .ports
                .iter()
                .map(|p| {
                    (
                        p.name.value.clone(),
                        p.port.value,
                        p.protocol
                            .as_ref()
                            .map(|x| x.value.clone())
                            .unwrap_or_else(|| "TCP".into()),
                    )
                })
                .collect(),
        });
    }
    let dir = if several {
        format!("helm/{ns}")
    } else {
        "helm".to_string()
    };
    b.add(
        ChartStep {
            id: StepId::new("chart", &ns),
            namespace: ns.clone(),
            version: mesh
                .mesh
                .version
                .as_ref()
                .map(|v| v.value.clone())
                .unwrap_or_else(|| "0.1.0".into()),
            cas_addr: mesh
                .mesh
                .policy_cas()
                .map(|c| c.cas_url.value.clone())
                .unwrap_or_default(),
            services: units,
            chart_path: format!("target/{dir}"),
            dir,
            templates: settings.helm_templates.clone(),
            manifests_dir: settings.output_yaml.then(|| {
                if several {
                    format!("manifests/{ns}")
                } else {
                    "manifests".to_string()
                }
            }),
        },
        chart_deps,
    );
}
