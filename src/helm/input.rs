//! What the chart is made from: plain data the `chart` step fills in from the mesh, the
//! session and the built images. Nothing here depends on the manifest types.

use std::collections::BTreeMap;

/// The chart version used when the mesh does not give one.
pub const DEFAULT_CHART_VERSION: &str = "0.1.0";

/// The SCONE SGX device plugin's resource (`sgx.k8s.io/sgx: 1` in a container's limits).
pub const SCONE_SGX_RESOURCE: &str = "sgx.k8s.io/sgx";

/// The folder the chart is written to, as README and NOTES.txt tell the user.
pub const DEFAULT_CHART_PATH: &str = "target/helm";

/// One mesh, ready to become a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartInput {
    /// The CAS policy namespace (`policy.namespace`); the chart is named after it (DNS-1123).
    pub namespace: String,
    /// The chart's SemVer version (the mesh's, or [`DEFAULT_CHART_VERSION`]).
    pub chart_version: String,
    /// `appVersion`: the short hash of the CAS session (letters, digits, `.`, `_`, `-`).
    pub app_version: String,
    /// `SCONE_CAS_ADDR` of every service (the mesh's `cas_url`).
    pub cas_addr: String,
    /// Where services find their LAS (`SCONE_LAS_ADDR`).
    pub las: LasAddr,
    /// The SGX device resource every container asks for.
    pub sgx: SgxDevice,
    /// The Helm release name the docs suggest; `None`: the single service's name, else the
    /// chart name. Sanitized to DNS-1123 like every other name.
    pub release: Option<String>,
    /// How README.md and NOTES.txt refer to the chart folder (`target/helm`).
    pub chart_path: String,
    /// The services of the mesh, in any order (the chart sorts them).
    pub services: Vec<ChartService>,
}

impl ChartInput {
    /// A mesh with defaults: chart version [`DEFAULT_CHART_VERSION`], LAS on the node's IP,
    /// the SCONE SGX device plugin, chart folder `target/helm`, no services yet.
    pub fn new(namespace: &str, app_version: &str, cas_addr: &str) -> Self {
        ChartInput {
            namespace: namespace.to_owned(),
            chart_version: DEFAULT_CHART_VERSION.to_owned(),
            app_version: app_version.to_owned(),
            cas_addr: cas_addr.to_owned(),
            las: LasAddr::default(),
            sgx: SgxDevice::default(),
            release: None,
            chart_path: DEFAULT_CHART_PATH.to_owned(),
            services: Vec::new(),
        }
    }
}

/// Where a service's LAS (local attestation service) is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LasAddr {
    /// The node's IP (`status.hostIP`), LAS's default port: LAS runs as a DaemonSet.
    #[default]
    NodeIp,
    /// The node's IP with this port (`$(SCONE_NODE_IP):<port>`).
    NodeIpPort(u16),
    /// A fixed `host[:port]`.
    Fixed(String),
}

/// The extended resource that gives a container `/dev/sgx*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxDevice {
    /// The resource name; empty for none (simulation mode).
    pub resource: String,
    /// How much of it (a Kubernetes quantity).
    pub quantity: String,
}

impl Default for SgxDevice {
    /// The SCONE SGX device plugin: `sgx.k8s.io/sgx: "1"`.
    fn default() -> Self {
        SgxDevice {
            resource: SCONE_SGX_RESOURCE.to_owned(),
            quantity: "1".to_owned(),
        }
    }
}

/// One service of the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartService {
    /// The mesh service name (may contain `_`; the Kubernetes name is its DNS-1123 form).
    pub name: String,
    /// `SCONE_CONFIG_ID`: `<namespace>/<name>`.
    pub config_id: String,
    /// The image repository, without tag or digest (`registry:5050/cicd/app`).
    pub image_repository: String,
    /// The image manifest digest (`sha256:<64 hex>`), as in `target/images/<service>/`.
    pub image_digest: String,
    /// Ports the service listens on; a Kubernetes Service is made when there are any.
    pub ports: Vec<ChartPort>,
    /// CPU/memory requests and limits (the SGX device is added to the limits).
    pub resources: ChartResources,
    /// Non-secret environment values (CAS hands secrets to the enclave, never the chart).
    pub env: Vec<(String, String)>,
    /// Pods of the Deployment.
    pub replicas: u32,
}

impl ChartService {
    /// A service with `config_id = <namespace>/<name>`, one replica, no ports, no env.
    pub fn new(namespace: &str, name: &str, image_repository: &str, image_digest: &str) -> Self {
        ChartService {
            name: name.to_owned(),
            config_id: format!("{namespace}/{name}"),
            image_repository: image_repository.to_owned(),
            image_digest: image_digest.to_owned(),
            ports: Vec::new(),
            resources: ChartResources::default(),
            env: Vec::new(),
            replicas: 1,
        }
    }
}

/// The repository part of an image reference: `registry:5050/cicd/app:latest` and
/// `registry/app@sha256:…` both give the text before the tag or digest.
pub fn image_repository(reference: &str) -> &str {
    let without_digest = reference
        .split_once('@')
        .map_or(reference, |(repo, _)| repo);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

/// A port a service listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartPort {
    /// Its name (sanitized to an IANA service name; empty: `<protocol>-<port>`).
    pub name: String,
    /// The container port, also the Service port.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP` (any case).
    pub protocol: String,
}

impl ChartPort {
    /// A TCP port.
    pub fn tcp(name: &str, port: u16) -> Self {
        ChartPort {
            name: name.to_owned(),
            port,
            protocol: "TCP".to_owned(),
        }
    }
}

/// Kubernetes resource requests and limits (`cpu`, `memory`, ... → quantity).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChartResources {
    /// `resources.requests`.
    pub requests: BTreeMap<String, String>,
    /// `resources.limits` (the SGX device is added to these).
    pub limits: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::image_repository;

    #[test]
    fn repository_drops_tag_and_digest_but_not_the_registry_port() {
        let seed = "registry.scontain.com:5050/cicd/python_hello_user:latest";
        assert_eq!(
            image_repository(seed),
            "registry.scontain.com:5050/cicd/python_hello_user"
        );
        assert_eq!(image_repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(image_repository("app@sha256:00"), "app");
        assert_eq!(image_repository("r/app:1.0@sha256:00"), "r/app");
        assert_eq!(image_repository("busybox"), "busybox");
    }
}
