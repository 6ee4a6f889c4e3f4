//! The manifest model: service manifests (`kind: genImage`) and Meshfiles
//! (`kind: mesh`) as typed values, exactly as design §1 describes them.
//!
//! These types deserialize straight from YAML (unknown fields are refused); the
//! nodes that validation points at are [`Located`]. After parsing, the model is
//! checked by [`super::validate`] and linked into a [`Workspace`](super::Workspace).

use super::located::Located;
use serde::Deserialize;
use std::path::PathBuf;

/// `apiVersion` and `kind`, read first to tell manifests apart.
#[derive(Clone, Debug, Deserialize)]
pub struct Header {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Located<String>>,
    pub kind: Option<Located<String>>,
}

/// One service manifest (`kind: genImage`, `genservice` or `genAppImage`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceManifest {
    #[serde(rename = "apiVersion")]
    pub api_version: Located<String>,
    pub kind: Located<String>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub secrets: Secrets,
    pub build: Build,
    /// Ports the service listens on (a chart Service is generated for them).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ports: Vec<Port>,
    /// Published, not implemented: files CAS injects into the enclave.
    #[serde(default)]
    pub injection_files: Option<Located<Unused>>,
    /// Published (early tutorials), not implemented: a pip requirements file.
    #[serde(default)]
    pub requirements: Option<Located<Unused>>,
    /// Where this manifest was read from (set by the parser, not the YAML).
    #[serde(skip)]
    pub path: PathBuf,
}

impl ServiceManifest {
    /// Calls `f` on every string of the manifest (for [`Values::fill`]:
    /// Meshfile values are put in after parsing).
    ///
    /// [`Values::fill`]: super::template::Values::fill
    pub fn strings_mut(&mut self, f: &mut dyn FnMut(&mut String)) {
        // Destructured, so that a field added to the model must be added here.
        let ServiceManifest {
            api_version,
            kind,
            environment: Environment { local, global },
            secrets,
            build,
            ports,
            path: _,
            injection_files: _,
            requirements: _,
        } = self;
        f(&mut api_version.value);
        f(&mut kind.value);
        for EnvVar { name, value } in local.iter_mut().chain(global) {
            f(&mut name.value);
            value.iter_mut().for_each(|x| f(&mut x.value));
        }
        let Secrets {
            global,
            local,
            import,
        } = secrets;
        for Secret {
            name,
            kind,
            size: _,
            value,
            private_key: _,
            issuer: _,
            dns: _,
            common_name: _,
        } in global.iter_mut().chain(local)
        {
            f(&mut name.value);
            f(&mut kind.value);
            if let Some(Located {
                value: FixedValue::Given(v),
                ..
            }) = value
            {
                f(v);
            }
        }
        import.iter_mut().for_each(|x| f(&mut x.value));
        let Build {
            name,
            kind,
            from,
            to,
            pwd,
            command,
            copy,
            binary,
            signature,
            requirements: _,
            run: _,
            stable: _,
            host_paths: _,
            host_path: _,
        } = build;
        for x in [name, kind, to, pwd, command] {
            f(&mut x.value);
        }
        for x in from.iter_mut().chain(binary).chain(copy) {
            f(&mut x.value);
        }
        if let Some(Signature { key, sign: _ }) = signature {
            key.iter_mut().for_each(|x| f(&mut x.value));
        }
        for Port {
            name,
            port: _,
            protocol,
        } in ports
        {
            f(&mut name.value);
            protocol.iter_mut().for_each(|x| f(&mut x.value));
        }
    }
}

/// `environment:` of a service manifest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Fixed by the service; a Meshfile cannot change them. `SCONE_*` locals
    /// configure the enclave (heap, stack, threads, dlopen).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub local: Vec<EnvVar>,
    /// Values come from the Meshfile (or the default given here).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub global: Vec<EnvVar>,
}

impl Environment {
    /// The locals as `(name, value)`, in order (a missing value is empty).
    pub fn locals(&self) -> Vec<(String, String)> {
        self.local
            .iter()
            .map(|v| {
                let value = v
                    .value
                    .as_ref()
                    .map(|x| x.value.clone())
                    .unwrap_or_default();
                (v.name.value.clone(), value)
            })
            .collect()
    }
}

/// One environment variable. A value may reference a CAS secret as
/// `$$SCONE::name$$` or `$$SCONE::name`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: Located<String>,
    #[serde(default)]
    pub value: Option<Located<String>>,
}

/// `secrets:` of a service manifest: declarations; CAS generates the values
/// but for fixed ones.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Shared with the other services of the mesh.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub global: Vec<Secret>,
    /// Only this service.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub local: Vec<Secret>,
    /// Names of global secrets that other services of the mesh define.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub import: Vec<Located<String>>,
}

/// One secret declaration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub name: Located<String>,
    /// `ascii`, `binary`, or a kind CAS knows (kept opaque).
    pub kind: Located<String>,
    #[serde(default)]
    pub size: Option<Located<u32>>,
    /// A fixed value (multi-line block scalars are kept byte-exact). It is
    /// for CAS only: see [`FixedValue`].
    #[serde(default)]
    pub value: Option<Located<FixedValue>>,
    /// Published certificate fields (`x509`, `x509-ca`), not passed to CAS yet.
    #[serde(default)]
    pub private_key: Option<Located<Unused>>,
    #[serde(default)]
    pub issuer: Option<Located<Unused>>,
    #[serde(default)]
    pub dns: Option<Located<Unused>>,
    #[serde(default)]
    pub common_name: Option<Located<Unused>>,
}

/// A secret's fixed value as its service manifest gives it. Only the upload
/// to CAS reads it (`steps::upload`): the policy under `target/` holds a
/// placeholder, fingerprints hold only that a value is given, and the binary
/// form of a manifest (the parse cache, the workspace snapshot) never holds
/// it: a manifest read back from there has [`FixedValue::Withheld`]. `Debug`
/// shows neither.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum FixedValue {
    /// The value, as parsed from the manifest's text.
    Given(String),
    /// Given in the manifest, not held here (read back from a cache).
    Withheld,
}

impl FixedValue {
    /// The value, to send to CAS (never to print or store); `None` when
    /// [`FixedValue::Withheld`].
    pub fn expose(&self) -> Option<&str> {
        match self {
            FixedValue::Given(value) => Some(value),
            FixedValue::Withheld => None,
        }
    }
}

impl From<String> for FixedValue {
    fn from(value: String) -> Self {
        FixedValue::Given(value)
    }
}

impl std::fmt::Debug for FixedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedValue(<not shown>)")
    }
}

/// `build:` of a service manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Names the image-side steps and outputs (`image:<name>`, `target/images/<name>/`).
    pub name: Located<String>,
    /// `python`, `binary`, …: selects the default base image and entry binary.
    pub kind: Located<String>,
    /// Base image; see design §3.1. Default: the kind's base from `scone.toml`.
    #[serde(default)]
    pub from: Option<Located<String>>,
    /// The image reference to produce.
    pub to: Located<String>,
    /// Working directory inside the image; the copied files land here.
    pub pwd: Located<String>,
    /// The protected command line.
    pub command: Located<String>,
    /// Files or folders to copy, relative to the manifest's folder.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub copy: Vec<Located<String>>,
    /// The entry binary, if not the first word of `command` looked up on PATH.
    #[serde(default)]
    pub binary: Option<Located<String>>,
    /// Enclave signing.
    #[serde(default)]
    pub signature: Option<Signature>,
    /// Published, not implemented: a pip requirements file to install.
    #[serde(default)]
    pub requirements: Option<Located<Unused>>,
    /// Published, not implemented: commands run while building the image.
    #[serde(default)]
    pub run: Option<Located<Unused>>,
    /// Published, not implemented: the image this one updates.
    #[serde(default)]
    pub stable: Option<Located<Unused>>,
    /// Published, not implemented: host folders the enclave may read
    /// (`host_paths`, earlier `host_path`).
    #[serde(default)]
    pub host_paths: Option<Located<Unused>>,
    #[serde(default)]
    pub host_path: Option<Located<Unused>>,
}

/// `build.signature`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Path of the RSA-3072 (e = 3) signing key, relative to the manifest.
    #[serde(default)]
    pub key: Option<Located<String>>,
    /// sconectl's `sign: true` (scone always signs; `false` is warned about).
    #[serde(default)]
    pub sign: Option<Located<bool>>,
}

/// A port the service listens on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub name: Located<String>,
    pub port: Located<u16>,
    #[serde(default)]
    pub protocol: Option<Located<String>>,
}

/// A Meshfile (`kind: mesh`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    #[serde(rename = "apiVersion")]
    pub api_version: Located<String>,
    pub kind: Located<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub cas: Vec<Cas>,
    pub policy: Policy,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub env: Vec<MeshEnvEntry>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub services: Vec<MeshService>,
    /// Chart version (default 0.1.0).
    #[serde(default)]
    pub version: Option<Located<String>>,
    /// Published, not implemented: `--set`-style chart overrides.
    #[serde(default)]
    pub helm: Option<Located<Unused>>,
    /// Published, not implemented: values merged into the chart.
    #[serde(default)]
    pub helm_extra_values: Option<Located<Unused>>,
    /// Published, not implemented: more policies to upload.
    #[serde(default)]
    pub extra_policies: Option<Located<Unused>>,
    #[serde(skip)]
    pub path: PathBuf,
}

/// One CAS instance of a Meshfile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cas {
    pub name: Located<String>,
    pub cas_url: Located<String>,
    /// The roles this CAS plays (`image`, `security`, `access`, `attestation`),
    /// a list or a comma string; see [`Mesh::cas_roles`] for the default.
    #[serde(default)]
    pub alias: Option<StringOrList>,
    /// The next four are published and kept as template variables, not used.
    #[serde(default)]
    pub cas_key: Option<Located<String>>,
    #[serde(default)]
    pub cas_software_key: Option<Located<String>>,
    #[serde(default)]
    pub cas_encryption_key: Option<Located<String>>,
    #[serde(default)]
    pub tolerance: Option<Located<String>>,
    #[serde(default)]
    pub mode: Option<Located<String>>,
}

/// `policy:` of a Meshfile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The CAS session name (and the `SCONE_CONFIG_ID` prefix).
    pub namespace: Located<String>,
    #[serde(default)]
    pub tolerate: Option<StringOrList>,
    #[serde(default)]
    pub ignore_advisories: Option<StringOrList>,
    /// Published, not implemented: policies kept under other names/CAS roles.
    #[serde(default)]
    pub attestation_policy_name: Option<Located<Unused>>,
    #[serde(default)]
    pub access_policy_name: Option<Located<Unused>>,
    #[serde(default)]
    pub security_policy_name: Option<Located<Unused>>,
}

/// A comma-separated string (`"a, b"`) or a YAML list (`[a, b]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(Located<String>),
    Many(Vec<Located<String>>),
}

impl StringOrList {
    /// The items, trimmed, empty ones dropped.
    pub fn items(&self) -> Vec<String> {
        match self {
            StringOrList::One(s) => s
                .value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            StringOrList::Many(v) => v
                .iter()
                .map(|s| s.value.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// One entry of a Meshfile's `env:`. Two forms:
/// the seed's `{key|name, value}` (a global value), and the per-service form
/// `{service: global|helm|<svc>, env: [{name, value}]}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshEnvEntry {
    #[serde(default)]
    pub key: Option<Located<String>>,
    #[serde(default)]
    pub name: Option<Located<String>>,
    #[serde(default)]
    pub value: Option<Located<String>>,
    #[serde(default)]
    pub service: Option<Located<String>>,
    #[serde(default)]
    pub env: Option<Vec<EnvVar>>,
}

/// One service of a Meshfile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshService {
    /// The service's name in the policy and the chart.
    pub name: Located<String>,
    /// The image; links to the service manifest whose `build.to` equals it.
    pub image: Located<String>,
    /// Explicit link to the service manifest, relative to the Meshfile.
    #[serde(default)]
    pub manifest: Option<Located<String>>,
    /// Published, not implemented: a file of more secrets for the image.
    #[serde(default)]
    pub image_secrets: Option<Located<Unused>>,
    /// Published, not implemented: chart values of this service.
    #[serde(default)]
    pub helm_extra_values: Option<Located<Unused>>,
}

/// A published field scone accepts but does not implement: any YAML value,
/// kept only for where it was written, so that validation can warn about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unused;

impl<'de> Deserialize<'de> for Unused {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Unused)
    }
}

/// The roles a CAS plays for a mesh (its `alias`).
pub const CAS_ROLES: &[&str] = &["image", "security", "access", "attestation"];

impl Mesh {
    /// The roles of each `cas` entry, in order: its `alias`, or else — the
    /// default alias — every role no entry names in its `alias`, for the first
    /// entry without one (later entries without one get none). A mesh with one
    /// CAS thus uses it for everything, as the published Meshfiles spell out.
    pub fn cas_roles(&self) -> Vec<Vec<String>> {
        let claimed: Vec<String> = self
            .cas
            .iter()
            .filter_map(|c| c.alias.as_ref())
            .flat_map(StringOrList::items)
            .collect();
        let mut default_given = false;
        self.cas
            .iter()
            .map(|c| match &c.alias {
                Some(a) => a.items(),
                None if !default_given => {
                    default_given = true;
                    CAS_ROLES
                        .iter()
                        .filter(|r| !claimed.iter().any(|c| c == *r))
                        .map(|r| r.to_string())
                        .collect()
                }
                None => Vec::new(),
            })
            .collect()
    }

    /// The CAS that keeps the policy: the one playing `security`, else the first.
    pub fn policy_cas(&self) -> Option<&Cas> {
        let roles = self.cas_roles();
        self.cas
            .iter()
            .zip(&roles)
            .find(|(_, r)| r.iter().any(|r| r == "security"))
            .map(|(c, _)| c)
            .or_else(|| self.cas.first())
    }
}

/// The three spellings of the service manifest kind.
pub const SERVICE_KINDS: &[&str] = &["genImage", "genservice", "genAppImage"];
/// The Meshfile kind.
pub const MESH_KIND: &str = "mesh";

/// A list field left empty (`cas:` with nothing under it, `cas: ~`) reads as
/// the empty list, as `cas: []` does: the rules about an empty list then say
/// what is missing (`the mesh defines no CAS`), not a bare type error.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
