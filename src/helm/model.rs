//! The checked, normalized form of a [`ChartInput`]: Kubernetes names, sorted services and
//! the values every template sees. Building it validates the input and collects warnings.

use std::collections::BTreeMap;

use serde::Serialize;

use super::checks::{
    check_digest, check_plain, check_repository, check_resource_name, check_semver, invalid,
    invalid_service, is_quantity,
};
use super::error::HelmError;
use super::input::{ChartInput, ChartService, LasAddr};
use super::names::{dns1123, port_name};

/// Helm refuses release names longer than this.
const RELEASE_MAX: usize = 53;

/// Environment variables the chart sets itself; a service may not set them.
const RESERVED_ENV: [&str; 4] = [
    "SCONE_CONFIG_ID",
    "SCONE_CAS_ADDR",
    "SCONE_LAS_ADDR",
    "SCONE_NODE_IP",
];

/// The data every template is rendered with (camelCase keys, as Helm values use).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartModel {
    /// `Chart.yaml` fields.
    pub chart: ChartMeta,
    /// The CAS policy namespace, as written in the mesh.
    pub namespace: String,
    /// `SCONE_CAS_ADDR`.
    pub cas_addr: String,
    /// Where LAS is.
    pub las: LasModel,
    /// The SGX device resource.
    pub sgx: SgxModel,
    /// The release name the docs suggest (DNS-1123).
    pub release: String,
    /// How the docs refer to the chart folder.
    pub chart_path: String,
    /// Names that were changed to fit Kubernetes.
    pub renamed: Vec<Renamed>,
    /// The services, sorted by Kubernetes name.
    pub services: Vec<ServiceModel>,
}

/// `Chart.yaml` fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMeta {
    /// DNS-1123 form of the namespace.
    pub name: String,
    /// SemVer.
    pub version: String,
    /// The short session hash.
    pub app_version: String,
    /// One line about the chart.
    pub description: String,
}

/// Where LAS is, as values.yaml says it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LasModel {
    /// `SCONE_LAS_ADDR` comes from the node's IP.
    pub node_ip: bool,
    /// The LAS port with `node_ip`, `""` for LAS's default.
    pub port: String,
    /// A fixed address when not `node_ip`, else `""`.
    pub addr: String,
}

/// The SGX device resource.
#[derive(Debug, Clone, Serialize)]
pub struct SgxModel {
    /// Resource name, `""` for none.
    pub resource: String,
    /// Quantity.
    pub quantity: String,
}

/// A name changed to fit Kubernetes.
#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    /// What it was.
    pub from: String,
    /// What it is in the chart.
    pub to: String,
}

/// One service, as the templates see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceModel {
    /// The Kubernetes name (DNS-1123), the key in `values.yaml`.
    pub key: String,
    /// The mesh name.
    pub name: String,
    /// `SCONE_CONFIG_ID`.
    pub config_id: String,
    /// Image repository and digest.
    pub image: ImageModel,
    /// Pods.
    pub replicas: u32,
    /// Ports (sanitized names, upper-case protocols), sorted by port.
    pub ports: Vec<PortModel>,
    /// Requests and limits as given (without the SGX device).
    pub resources: ResourcesModel,
    /// Limits with the SGX device added: what the pod gets.
    pub pod_limits: BTreeMap<String, String>,
    /// Non-secret environment, in the given order.
    pub env: Vec<EnvModel>,
}

/// Image repository and digest.
#[derive(Debug, Clone, Serialize)]
pub struct ImageModel {
    /// Without tag or digest.
    pub repository: String,
    /// `sha256:…`.
    pub digest: String,
}

/// One port.
#[derive(Debug, Clone, Serialize)]
pub struct PortModel {
    /// IANA service name.
    pub name: String,
    /// Port number.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// Requests and limits.
#[derive(Debug, Clone, Serialize)]
pub struct ResourcesModel {
    /// `resources.requests`.
    pub requests: BTreeMap<String, String>,
    /// `resources.limits`.
    pub limits: BTreeMap<String, String>,
}

/// One environment variable.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvModel {
    /// Name.
    pub name: String,
    /// Value (never a secret).
    pub value: String,
    /// The value as a container's `env` needs it: every `$` doubled, so Kubernetes does not
    /// expand `$(NAME)` in it and the program sees `value` exactly.
    pub kube_value: String,
}

impl ChartModel {
    /// Checks `input` but for its `app_version` (the session hash, which the
    /// renderers check: a chart can be made before the session is) and builds
    /// the model; the warnings say which names were changed (the line to
    /// install it with is [`ChartModel::install_line`]).
    pub fn build(input: &ChartInput) -> Result<(ChartModel, Vec<String>), HelmError> {
        let mut warnings = Vec::new();
        let mut renamed = Vec::new();

        check_plain("namespace", &input.namespace)?;
        let name = chart_name(&input.namespace)?;
        if name != input.namespace {
            warnings.push(format!(
                "namespace `{}`: the chart is named `{name}` (chart names must be DNS-1123)",
                input.namespace
            ));
            renamed.push(Renamed {
                from: input.namespace.clone(),
                to: name.clone(),
            });
        }
        check_semver(&input.chart_version)?;
        check_plain("cas_addr", &input.cas_addr)?;
        let las = las_model(&input.las)?;
        let sgx = sgx_model(input)?;
        check_plain("chart_path", &input.chart_path)?;

        let mut services: Vec<ServiceModel> = Vec::with_capacity(input.services.len());
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut service_warnings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for service in &input.services {
            let mut port_warnings = Vec::new();
            let model = service_model(service, &sgx, &mut port_warnings)?;
            service_warnings.insert(model.key.clone(), port_warnings);
            if let Some(first) = owners.insert(model.key.clone(), service.name.clone()) {
                return Err(HelmError::NameCollision {
                    first,
                    second: service.name.clone(),
                    name: model.key,
                });
            }
            services.push(model);
        }
        services.sort_by(|a, b| a.key.cmp(&b.key));
        warnings.extend(service_warnings.into_values().flatten());
        for service in services.iter().filter(|s| s.key != s.name) {
            warnings.push(format!(
                "service `{}`: its Kubernetes name is `{}` (names must be DNS-1123)",
                service.name, service.key
            ));
            renamed.push(Renamed {
                from: service.name.clone(),
                to: service.key.clone(),
            });
        }

        let release = release_name(input, &name, &services, &mut warnings, &mut renamed);
        let model = ChartModel {
            chart: ChartMeta {
                name,
                version: input.chart_version.clone(),
                app_version: input.app_version.clone(),
                description: format!(
                    "Confidential services of the SCONE mesh {}",
                    input.namespace
                ),
            },
            namespace: input.namespace.clone(),
            cas_addr: input.cas_addr.clone(),
            las,
            sgx,
            release,
            chart_path: input.chart_path.clone(),
            renamed,
            services,
        };
        Ok((model, warnings))
    }

    /// `helm install <release> <chart path>` when a name had to change (the
    /// release name then differs from what a user would guess): a hint to
    /// show, not a warning.
    pub fn install_line(&self) -> Option<String> {
        (!self.renamed.is_empty())
            .then(|| format!("helm install {} {}", self.release, self.chart_path))
    }
}

fn chart_name(namespace: &str) -> Result<String, HelmError> {
    let (name, _) = dns1123(namespace);
    if name.is_empty() {
        return Err(invalid(
            "namespace",
            format!("`{namespace}` has no letter or digit to name the chart with"),
        ));
    }
    Ok(name)
}

fn las_model(las: &LasAddr) -> Result<LasModel, HelmError> {
    Ok(match las {
        LasAddr::NodeIp => LasModel {
            node_ip: true,
            port: String::new(),
            addr: String::new(),
        },
        LasAddr::NodeIpPort(0) => return Err(invalid("las", "port 0")),
        LasAddr::NodeIpPort(port) => LasModel {
            node_ip: true,
            port: port.to_string(),
            addr: String::new(),
        },
        LasAddr::Fixed(addr) => {
            check_plain("las", addr)?;
            LasModel {
                node_ip: false,
                port: String::new(),
                addr: addr.clone(),
            }
        }
    })
}

fn sgx_model(input: &ChartInput) -> Result<SgxModel, HelmError> {
    let sgx = &input.sgx;
    if !sgx.resource.is_empty() {
        check_resource_name("sgx", &sgx.resource)?;
        if !is_quantity(&sgx.quantity) {
            return Err(invalid(
                "sgx",
                format!("`{}` is not a Kubernetes quantity", sgx.quantity),
            ));
        }
    }
    Ok(SgxModel {
        resource: sgx.resource.clone(),
        quantity: sgx.quantity.clone(),
    })
}

fn service_model(
    service: &ChartService,
    sgx: &SgxModel,
    warnings: &mut Vec<String>,
) -> Result<ServiceModel, HelmError> {
    let (key, _) = dns1123(&service.name);
    if key.is_empty() {
        return Err(invalid_service(
            service,
            "the name has no letter or digit to make a Kubernetes name of",
        ));
    }
    if service.config_id.trim().is_empty() || service.config_id.contains(char::is_whitespace) {
        return Err(invalid_service(
            service,
            "config_id is empty or has whitespace",
        ));
    }
    check_repository(service)?;
    check_digest(service)?;
    let ports = port_models(service, warnings)?;
    let resources = ResourcesModel {
        requests: checked_resources(service, "requests", &service.resources.requests)?,
        limits: checked_resources(service, "limits", &service.resources.limits)?,
    };
    let mut pod_limits = resources.limits.clone();
    if !sgx.resource.is_empty() {
        pod_limits.insert(sgx.resource.clone(), sgx.quantity.clone());
    }
    let env = env_models(service)?;
    Ok(ServiceModel {
        key,
        name: service.name.clone(),
        config_id: service.config_id.clone(),
        image: ImageModel {
            repository: service.image_repository.clone(),
            digest: service.image_digest.clone(),
        },
        replicas: service.replicas,
        ports,
        resources,
        pod_limits,
        env,
    })
}

fn port_models(
    service: &ChartService,
    warnings: &mut Vec<String>,
) -> Result<Vec<PortModel>, HelmError> {
    let mut ports: Vec<PortModel> = Vec::with_capacity(service.ports.len());
    for port in &service.ports {
        let protocol = port.protocol.to_ascii_uppercase();
        if !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP") {
            return Err(invalid_service(
                service,
                format!(
                    "port {}: protocol `{}` is not TCP, UDP or SCTP",
                    port.port, port.protocol
                ),
            ));
        }
        if port.port == 0 {
            return Err(invalid_service(service, "port 0"));
        }
        let (name, changed) = port_name(&port.name, &protocol, port.port);
        if changed && !port.name.is_empty() {
            warnings.push(format!(
                "service `{}`: port `{}` is named `{name}` (port names must be IANA service names)",
                service.name, port.name
            ));
        }
        if let Some(clash) = ports
            .iter()
            .find(|p| p.name == name || (p.port == port.port && p.protocol == protocol))
        {
            return Err(invalid_service(
                service,
                format!(
                    "ports {} and {} clash (same name `{name}` or same port and protocol)",
                    clash.port, port.port
                ),
            ));
        }
        ports.push(PortModel {
            name,
            port: port.port,
            protocol,
        });
    }
    ports.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    Ok(ports)
}

fn checked_resources(
    service: &ChartService,
    what: &str,
    resources: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, HelmError> {
    for (name, quantity) in resources {
        check_resource_name("resources", name).map_err(|_| {
            invalid_service(service, format!("{what}: `{name}` is not a resource name"))
        })?;
        if !is_quantity(quantity) {
            return Err(invalid_service(
                service,
                format!("{what}: `{name}: {quantity}` is not a Kubernetes quantity"),
            ));
        }
    }
    Ok(resources.clone())
}

fn env_models(service: &ChartService) -> Result<Vec<EnvModel>, HelmError> {
    let mut env: Vec<EnvModel> = Vec::with_capacity(service.env.len());
    for (name, value) in &service.env {
        if name.is_empty() || name.contains('=') || !name.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid_service(
                service,
                format!(
                    "environment variable name `{}` is not valid",
                    name.escape_debug()
                ),
            ));
        }
        if RESERVED_ENV.contains(&name.as_str()) {
            return Err(invalid_service(
                service,
                format!("environment variable `{name}` is set by the chart itself"),
            ));
        }
        if value.contains("$$SCONE::") {
            return Err(invalid_service(
                service,
                format!(
                    "environment variable `{name}` refers to a CAS secret; secrets reach the \
                     enclave through the policy, never through the chart"
                ),
            ));
        }
        if env.iter().any(|e| &e.name == name) {
            return Err(invalid_service(
                service,
                format!("environment variable `{name}` is given twice"),
            ));
        }
        env.push(EnvModel {
            name: name.clone(),
            value: value.clone(),
            kube_value: value.replace('$', "$$"),
        });
    }
    Ok(env)
}

fn release_name(
    input: &ChartInput,
    chart_name: &str,
    services: &[ServiceModel],
    warnings: &mut Vec<String>,
    renamed: &mut Vec<Renamed>,
) -> String {
    let wanted = match (&input.release, services) {
        (Some(release), _) => release.clone(),
        (None, [only]) => only.key.clone(),
        (None, _) => chart_name.to_owned(),
    };
    let (mut release, _) = dns1123(&wanted);
    release.truncate(RELEASE_MAX);
    let mut release = release.trim_end_matches('-').to_owned();
    if release.is_empty() {
        release = chart_name.chars().take(RELEASE_MAX).collect();
        release = release.trim_end_matches('-').to_owned();
    }
    if release != wanted {
        if input.release.is_some() {
            warnings.push(format!(
                "release `{wanted}`: Helm needs a DNS-1123 release name, use `{release}`"
            ));
        }
        if !renamed.iter().any(|r| r.from == wanted) {
            renamed.push(Renamed {
                from: wanted,
                to: release.clone(),
            });
        }
    }
    release
}
