//! `scone build --print-defaults -f FILE` (and `apply`, `verify`): each
//! manifest the workspace loads,
//! as YAML with every default filled in — the base image each service builds
//! on, its entry binary and signing key, the CAS roles, the chart version,
//! and the value each service's global variables get. Nothing is built.

use serde::Serialize;
use std::path::Path;

use super::args::BuildArgs;
use super::build::{cache_dir, load_workspace};
use scone::workspace::{ServiceUnit, Workspace};

#[derive(Serialize)]
struct Var {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Serialize)]
struct Environment {
    local: Vec<Var>,
    global: Vec<Var>,
}

#[derive(Serialize)]
struct Secret {
    name: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'static str>,
}

#[derive(Serialize)]
struct Secrets {
    global: Vec<Secret>,
    local: Vec<Secret>,
    import: Vec<String>,
}

#[derive(Serialize)]
struct Signature {
    key: String,
    sign: bool,
}

#[derive(Serialize)]
struct Build {
    name: String,
    kind: String,
    from: String,
    to: String,
    pwd: String,
    command: String,
    copy: Vec<String>,
    binary: String,
    signature: Signature,
}

#[derive(Serialize)]
struct Port {
    name: String,
    port: u16,
    protocol: String,
}

#[derive(Serialize)]
struct Service {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    environment: Environment,
    secrets: Secrets,
    build: Build,
    ports: Vec<Port>,
}

#[derive(Serialize)]
struct Cas {
    name: String,
    cas_url: String,
    alias: Vec<String>,
}

#[derive(Serialize)]
struct Policy {
    namespace: String,
    tolerate: Vec<String>,
    ignore_advisories: Vec<String>,
}

#[derive(Serialize)]
struct ServiceEnv {
    service: String,
    env: Vec<Var>,
}

#[derive(Serialize)]
struct MeshService {
    name: String,
    image: String,
    manifest: String,
}

#[derive(Serialize)]
struct Mesh {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    version: String,
    cas: Vec<Cas>,
    policy: Policy,
    env: Vec<ServiceEnv>,
    services: Vec<MeshService>,
}

/// Runs `scone build --print-defaults`.
pub fn run(args: &BuildArgs) -> anyhow::Result<i32> {
    let ws = load_workspace(&args.common)?;
    let cwd = std::env::current_dir()?;
    let mut docs = Vec::new();
    for m in &ws.meshes {
        docs.push((
            m.mesh.path.clone(),
            serde_saphyr::to_string(&mesh(&ws, m, &cwd))?,
        ));
    }
    for unit in &ws.services {
        docs.push((
            unit.manifest.path.clone(),
            serde_saphyr::to_string(&service(&ws, unit))?,
        ));
    }
    let mut text = String::new();
    for (path, yaml) in docs {
        if !text.is_empty() {
            text.push_str("---\n");
        }
        text.push_str(&format!(
            "# {} with every default filled in\n",
            shown(&path, &cwd)
        ));
        text.push_str(&yaml);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    print!("{text}");
    Ok(0)
}

fn shown(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

fn mesh(ws: &Workspace, linked: &scone::workspace::LinkedMesh, cwd: &Path) -> Mesh {
    let m = &linked.mesh;
    let roles = m.cas_roles();
    let items = |l: &Option<scone::manifest::StringOrList>| {
        l.as_ref().map(|l| l.items()).unwrap_or_default()
    };
    Mesh {
        api_version: m.api_version.value.clone(),
        kind: m.kind.value.clone(),
        version: m
            .version
            .as_ref()
            .map_or_else(|| "0.1.0".to_string(), |v| v.value.clone()),
        cas: m
            .cas
            .iter()
            .zip(roles)
            .map(|(c, alias)| Cas {
                name: c.name.value.clone(),
                cas_url: c.cas_url.value.clone(),
                alias,
            })
            .collect(),
        policy: Policy {
            namespace: m.policy.namespace.value.clone(),
            tolerate: items(&m.policy.tolerate),
            ignore_advisories: items(&m.policy.ignore_advisories),
        },
        env: linked
            .services
            .iter()
            .map(|s| {
                let manifest = &ws.services[s.unit].manifest;
                ServiceEnv {
                    service: s.name.clone(),
                    env: manifest
                        .environment
                        .global
                        .iter()
                        .map(|g| Var {
                            name: g.name.value.clone(),
                            value: s
                                .environment
                                .iter()
                                .find(|(k, _)| *k == g.name.value)
                                .map(|(_, v)| v.clone()),
                        })
                        .collect(),
                }
            })
            .collect(),
        services: linked
            .services
            .iter()
            .map(|s| {
                let unit = &ws.services[s.unit];
                let image = m
                    .services
                    .iter()
                    .find(|x| x.name.value == s.name)
                    .map_or_else(String::new, |x| x.image.value.clone());
                MeshService {
                    name: s.name.clone(),
                    image,
                    manifest: relative_to(&unit.manifest.path, m.path.parent(), cwd),
                }
            })
            .collect(),
    }
}

/// `path` relative to the Meshfile's folder, as `manifest:` would name it.
fn relative_to(path: &Path, dir: Option<&Path>, cwd: &Path) -> String {
    let abs = cwd.join(path);
    let dir = cwd.join(dir.unwrap_or(Path::new("")));
    abs.strip_prefix(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| abs.display().to_string())
}

fn service(ws: &Workspace, unit: &ServiceUnit) -> Service {
    let m = &unit.manifest;
    let b = &m.build;
    let from = match &b.from {
        Some(f) => f.value.clone(),
        None => ws
            .config
            .base
            .get(&b.kind.value)
            .cloned()
            .or_else(|| scone::plan::default_base(&b.kind.value, &cache_dir()))
            .unwrap_or_default(),
    };
    let argv = scone::plan::split_command(&b.command.value);
    let binary = b
        .binary
        .as_ref()
        .map(|x| x.value.clone())
        .or_else(|| argv.first().cloned())
        .unwrap_or_default();
    let key = match b.signature.as_ref().and_then(|s| s.key.as_ref()) {
        Some(k) => k.value.clone(),
        None => match &ws.config.signing.key {
            Some(k) => ws.root.join(k).display().to_string(),
            None => scone::sgx::keys::default_key_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        },
    };
    let secrets = |list: &[scone::manifest::Secret]| {
        list.iter()
            .map(|s| Secret {
                name: s.name.value.clone(),
                kind: s.kind.value.clone(),
                size: s.size.as_ref().map(|x| x.value),
                value: s.value.as_ref().map(|_| "<fixed value, not shown>"),
            })
            .collect()
    };
    let vars = |list: &[scone::manifest::EnvVar]| {
        list.iter()
            .map(|v| Var {
                name: v.name.value.clone(),
                value: v.value.as_ref().map(|x| x.value.clone()),
            })
            .collect()
    };
    Service {
        api_version: m.api_version.value.clone(),
        kind: m.kind.value.clone(),
        environment: Environment {
            local: vars(&m.environment.local),
            global: vars(&m.environment.global),
        },
        secrets: Secrets {
            global: secrets(&m.secrets.global),
            local: secrets(&m.secrets.local),
            import: m.secrets.import.iter().map(|i| i.value.clone()).collect(),
        },
        build: Build {
            name: b.name.value.clone(),
            kind: b.kind.value.clone(),
            from,
            to: b.to.value.clone(),
            pwd: b.pwd.value.clone(),
            command: b.command.value.clone(),
            copy: b.copy.iter().map(|c| c.value.clone()).collect(),
            binary,
            signature: Signature { key, sign: true },
        },
        ports: m
            .ports
            .iter()
            .map(|p| Port {
                name: p.name.value.clone(),
                port: p.port.value,
                protocol: p
                    .protocol
                    .as_ref()
                    .map_or_else(|| "TCP".to_string(), |x| x.value.clone()),
            })
            .collect(),
    }
}
