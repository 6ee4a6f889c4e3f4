//! Manifests → the step DAG (design §2).
//!
//! ```text
//! per service:  copy ──▶ layer ──▶ image ──▶ sign ─┐
//!               base (shared) ───────────▶ image    ├─▶ policy ──▶ chart   (per mesh)
//!               base ──▶ packages (shared) ─┐
//!               image ──────────────────────┴▶ sbom ─┐
//!               image, sign, sbom ───────────────────┴▶ provenance
//! apply adds:   policy ──▶ upload ──▶ push (image, sbom, provenance) ──▶ chart
//! ```
//!
//! The provenance of an image depends on its own chain only: another
//! service's edit leaves it fresh (the session that lists the image is checked
//! by `scone verify`, not signed into every image's provenance; see
//! `docs/provenance.md`).
//!
//! Image-side steps are named by `build.name` (`image:python_hello_user`),
//! mesh steps by `policy.namespace` (`policy:myPythonApp`), base steps by the
//! base reference. The plan is data (ids and edges) plus the step objects; it
//! does no I/O, so `scone graph` can print it before anything is built.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::engine::{Node, Step, StepId};
use crate::oci::base::{BaseContext, BaseSpec};
use crate::oci::tar::Compression;
use crate::steps::base::BaseStep;
use crate::steps::copy::CopyStep;
use crate::steps::image::ImageStep;
use crate::steps::layer::LayerStep;
use crate::steps::packages::PackagesStep;
use crate::steps::provenance::ProvenanceStep;
use crate::steps::push::PushStep;
use crate::steps::sbom::SbomStep;
use crate::steps::sign::SignStep;
use crate::workspace::{ServiceUnit, Workspace};

mod attest;
pub mod entry;
mod mesh;
mod script;
pub mod stored;
use attest::provenance_step;
pub use mesh::fixed_values;
use mesh::{plan_mesh, Attachments};

/// Everything besides the manifests that shapes the plan.
pub struct Settings {
    pub target_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH` (0 when unset): layer mtimes, image `created`, SIGSTRUCT date.
    pub source_date_epoch: u64,
    pub compression: Compression,
    /// Enclave DEBUG attribute.
    pub debug: bool,
    pub signing_key: PathBuf,
    /// The provenance signing key (Ed25519 or ECDSA P-256).
    pub provenance_key: PathBuf,
    /// The user cache (base images).
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub insecure_registries: Vec<String>,
    pub docker_host: Option<String>,
    /// Base digests pinned by `scone.lock`, by reference.
    pub pinned_bases: BTreeMap<String, String>,
    /// Session hashes `scone.lock` remembers, by namespace.
    pub known_sessions: BTreeMap<String, String>,
    /// Only these services (indices into `Workspace::services`); empty = all.
    pub only: Vec<usize>,
    pub helm_templates: Option<PathBuf>,
    pub output_yaml: bool,
    /// `apply`: effects to add.
    pub apply: Option<ApplySettings>,
}

/// What `apply` adds.
pub struct ApplySettings {
    pub push: bool,
    /// Upload to the embedded local CAS in this folder, or to each mesh's `cas_url`.
    pub cas: CasChoice,
    pub ca_file: Option<PathBuf>,
    /// The namespaces whose session is replaced as it is now (`--take-over`).
    pub take_over: Vec<String>,
    /// Refuse an upload that would delete a generated secret's value
    /// (`scone dev`); `apply` warns of it.
    pub keep_generated: bool,
}

/// Where `apply` uploads sessions.
pub enum CasChoice {
    /// The embedded local CAS in `dir`, for `project` (the canonical
    /// workspace root: the local CAS's sessions belong to projects).
    Local {
        dir: PathBuf,
        project: String,
    },
    Remote,
}

/// The planned graph.
pub struct Plan {
    pub nodes: Vec<Node>,
}

impl Plan {
    pub fn ids(&self) -> impl Iterator<Item = &StepId> {
        self.nodes.iter().map(|n| n.step.id())
    }

    /// `(from, to)` edges by id: `from` must finish before `to`.
    pub fn edges(&self) -> Vec<(StepId, StepId)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for &d in &node.deps {
                out.push((self.nodes[d].step.id().clone(), node.step.id().clone()));
            }
        }
        out
    }
}

/// Errors found while planning (after validation passed).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{manifest}: build.from `{reference}`: {reason}")]
    Base {
        manifest: PathBuf,
        reference: String,
        reason: String,
    },
    #[error("{manifest}: no base image for build.kind `{kind}`: set `build.from`, or `[base] {kind} = \"…\"` in scone.toml")]
    NoBase { manifest: PathBuf, kind: String },
}

/// The default base of a build kind when neither the manifest nor `scone.toml`
/// names one: `python` uses the local rootfs made by `scripts/python-rootfs.sh`
/// (`$SCONE_PYTHON_ROOTFS`, else `<cache>/rootfs/python3`); `binary` starts from
/// scratch (the entry binary comes from `copy:`).
pub fn default_base(kind: &str, cache_dir: &Path) -> Option<String> {
    match kind {
        "python" => Some(match std::env::var_os("SCONE_PYTHON_ROOTFS") {
            Some(dir) => format!("dir:{}", PathBuf::from(dir).display()),
            None => format!("dir:{}", cache_dir.join("rootfs").join("python3").display()),
        }),
        "binary" => Some("scratch".into()),
        _ => None,
    }
}

/// The folder of the default base of `kind` when it does not exist on this
/// machine, with what to do: `python`'s is made by `scripts/python-rootfs.sh`.
pub fn missing_default_base(kind: &str, cache_dir: &Path) -> Option<(PathBuf, String)> {
    let spec = default_base(kind, cache_dir)?;
    let dir = PathBuf::from(spec.strip_prefix("dir:")?);
    if dir.is_dir() {
        return None;
    }
    let how = format!(
        "make it with `scripts/python-rootfs.sh {}` (in scone's source tree: it downloads \
         Debian's python3.11 packages with `apt-get download` and unpacks them there; \
         scripts/example.sh does it too), or set SCONE_PYTHON_ROOTFS to a python3 root file \
         system, or name a base in `build.from` or in scone.toml `[base] {kind} = \"…\"`",
        dir.display()
    );
    Some((dir, how))
}

/// FNV-1a: step ids are short strings made by scone, not by an adversary, and
/// SipHash showed in the plan's profile at 4,000 steps.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type IdIndex = HashMap<StepId, usize, std::hash::BuildHasherDefault<IdHasher>>;

struct Builder {
    nodes: Vec<Node>,
    index: IdIndex,
}

impl Builder {
    /// Adds a step (once per id); returns its node.
    fn add(&mut self, step: impl Step + 'static, deps: Vec<usize>) -> usize {
        self.add_boxed(Box::new(step), deps)
    }

    /// [`Builder::add`] of a boxed step.
    fn add_boxed(&mut self, step: Box<dyn Step>, deps: Vec<usize>) -> usize {
        if let Some(i) = self.known(step.id()) {
            return i;
        }
        self.push(step, deps)
    }

    fn push(&mut self, step: Box<dyn Step>, deps: Vec<usize>) -> usize {
        let i = self.nodes.len();
        self.index.insert(step.id().clone(), i);
        self.nodes.push(Node { step, deps });
        i
    }

    /// The node of a step already added under `id`.
    fn known(&self, id: &StepId) -> Option<usize> {
        self.index.get(id).copied()
    }
}

/// The base of a service as a reference, `dir:`/`oci:` paths made absolute:
/// its `build.from`, else `scone.toml`'s `[base]` for its kind, else the
/// kind's default (`None`: the kind has none).
pub fn base_spec_text(ws: &Workspace, unit: &ServiceUnit, cache_dir: &Path) -> Option<String> {
    let m = &unit.manifest;
    match &m.build.from {
        Some(from) => Some(absolute_spec(&from.value, &unit.dir)),
        None => match ws.config.base.get(&m.build.kind.value) {
            Some(spec) => Some(absolute_spec(spec, &ws.root)),
            None => default_base(&m.build.kind.value, cache_dir),
        },
    }
}

fn absolute_spec(spec: &str, base_dir: &Path) -> String {
    for prefix in ["dir:", "oci:"] {
        if let Some(path) = spec.strip_prefix(prefix) {
            return format!("{prefix}{}", normalize(&base_dir.join(path)).display());
        }
    }
    spec.to_string()
}

/// `a/b/../c` → `a/c`, lexically (so two spellings of one base are one step).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Splits a command line into argv (whitespace; single and double quotes group).
pub fn split_command(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

fn has_secret_ref(value: &str) -> bool {
    value.contains("$$SCONE::")
}

/// Plans the build of `ws`.
pub fn plan(ws: &Workspace, settings: &Settings) -> Result<Plan, PlanError> {
    let mut b = Builder {
        nodes: Vec::with_capacity(4 * ws.services.len() + 2 * ws.meshes.len() + 1),
        index: IdIndex::default(),
    };
    let selected: BTreeSet<usize> = if settings.only.is_empty() {
        (0..ws.services.len()).collect()
    } else {
        settings.only.iter().copied().collect()
    };
    let mut image_of = HashMap::new();
    let mut sign_of = HashMap::new();
    let mut attachments = Attachments::new();
    // Each service's steps are made on all cores, then added in order (the
    // first error in that order wins).
    let made: Vec<(usize, Result<ServiceSteps, PlanError>)> = {
        use rayon::prelude::*;
        let order: Vec<usize> = selected.iter().copied().collect();
        order
            .into_par_iter()
            .map(|i| (i, service_steps(ws, &ws.services[i], settings)))
            .collect()
    };
    for (i, steps) in made {
        let (image, sign, attached) = add_service(&mut b, steps?);
        image_of.insert(i, image);
        sign_of.insert(i, sign);
        attachments.insert(i, attached);
    }
    if settings.only.is_empty() {
        let several = ws.meshes.len() > 1;
        for mesh in &ws.meshes {
            plan_mesh(
                &mut b,
                ws,
                mesh,
                settings,
                &image_of,
                &sign_of,
                &attachments,
                several,
            );
        }
    }
    // `apply --push` of a service manifest used alone: no mesh, so no policy to
    // wait for. (A mesh service is pushed only after its mesh's upload.)
    if settings.apply.as_ref().is_some_and(|a| a.push) {
        let in_mesh: BTreeSet<usize> = ws
            .meshes
            .iter()
            .flat_map(|m| m.services.iter().map(|s| s.unit))
            .collect();
        let mut alone: Vec<(usize, usize)> = image_of
            .iter()
            .filter(|(i, _)| !in_mesh.contains(i))
            .map(|(&i, &image)| (i, image))
            .collect();
        alone.sort_unstable();
        for (i, image) in alone {
            let unit = &ws.services[i];
            let mut deps = vec![image];
            deps.extend(attachments.get(&i).into_iter().flatten());
            b.add_boxed(
                Box::new(PushStep {
                    id: StepId::new("push", unit.name()),
                    layout: settings.target_dir.join("images").join(unit.name()),
                    insecure: settings.insecure_registries.clone(),
                }),
                deps,
            );
        }
    }
    Ok(Plan { nodes: b.nodes })
}

/// A service's steps, made apart from the graph.
struct ServiceSteps {
    /// Its base step, which services mostly share: added the first time only.
    base: BaseStep,
    /// The base's packages, shared like it.
    packages: PackagesStep,
    copy: CopyStep,
    layer: LayerStep,
    image: ImageStep,
    sign: SignStep,
    sbom: SbomStep,
    provenance: ProvenanceStep,
}

/// Adds a service's steps to the graph; returns its image and sign nodes and
/// what is attached to its image on push (sbom, provenance).
fn add_service(b: &mut Builder, s: ServiceSteps) -> (usize, usize, [usize; 2]) {
    let base = b.add(s.base, vec![]);
    let packages = b.add(s.packages, vec![base]);
    let copy = b.add(s.copy, vec![]);
    let layer = b.add(s.layer, vec![copy]);
    let image = b.add(s.image, vec![base, layer]);
    let sign = b.add(s.sign, vec![image]);
    let sbom = b.add(s.sbom, vec![image, packages]);
    let provenance = b.add(s.provenance, vec![image, sign, sbom, packages]);
    (image, sign, [sbom, provenance])
}

fn service_steps(
    ws: &Workspace,
    unit: &ServiceUnit,
    settings: &Settings,
) -> Result<ServiceSteps, PlanError> {
    let m = &unit.manifest;
    let name = unit.name().to_string();
    let id = |kind: &str| StepId::new(kind, &name);

    let default_unit = (m.build.from.is_none()
        && !ws.config.base.contains_key(&m.build.kind.value))
    .then(|| format!("default:{}", m.build.kind.value));
    let spec_text =
        base_spec_text(ws, unit, &settings.cache_dir).ok_or_else(|| PlanError::NoBase {
            manifest: m.path.clone(),
            kind: m.build.kind.value.clone(),
        })?;
    let spec = BaseSpec::parse(&spec_text).map_err(|e| PlanError::Base {
        manifest: m.path.clone(),
        reference: spec_text.clone(),
        reason: e.to_string(),
    })?;
    let base_unit = match spec_text.strip_prefix("dir:").map(Path::new) {
        _ if default_unit.is_some() => default_unit.clone().unwrap_or_default(),
        Some(p) => match p.strip_prefix(&ws.root) {
            Ok(rel) => format!("dir:{}", rel.display()),
            Err(_) => spec_text.clone(),
        },
        None => spec_text.clone(),
    };
    // The base as the SBOM and provenance name it: a folder or layout under
    // the root relative to it, so the documents hold no path of this machine.
    let base_name = match spec_text.split_once(':') {
        _ if default_unit.is_some() => base_unit.clone(),
        Some((scheme @ ("dir" | "oci"), path)) => match Path::new(path).strip_prefix(&ws.root) {
            Ok(rel) => format!("{scheme}:{}", rel.display()),
            Err(_) => spec_text.clone(),
        },
        _ => spec_text.clone(),
    };
    let packages = PackagesStep {
        id: StepId::new("packages", &base_unit),
    };
    let base = BaseStep {
        id: StepId::new("base", &base_unit),
        reference: spec_text.clone(),
        spec,
        context: BaseContext {
            cache_dir: settings.cache_dir.clone(),
            offline: settings.offline,
            pinned: settings.pinned_bases.get(&spec_text).cloned(),
            insecure_registries: settings.insecure_registries.clone(),
            docker_host: settings.docker_host.clone(),
        },
    };
    let copy = CopyStep {
        id: id("copy"),
        dir: unit.dir.clone(),
        pwd: m.build.pwd.value.clone(),
        copy: m.build.copy.iter().map(|c| c.value.clone()).collect(),
    };
    let layer = LayerStep {
        id: id("layer"),
        compression: settings.compression,
        mtime: settings.source_date_epoch,
    };
    let locals: Vec<(String, String)> = m.environment.locals();
    let image_env: Vec<(String, String)> = locals
        .iter()
        .filter(|(_, v)| !has_secret_ref(v))
        .cloned()
        .collect();
    let enclave_env: Vec<(String, String)> = locals
        .into_iter()
        .filter(|(k, _)| k.starts_with("SCONE_"))
        .collect();
    let argv = split_command(&m.build.command.value);
    let image = ImageStep {
        id: id("image"),
        to: m.build.to.value.clone(),
        env: image_env,
        pwd: m.build.pwd.value.clone(),
        argv,
        service: name.clone(),
        created: settings.source_date_epoch,
    };
    // A relative path is under the working directory inside the image.
    let (field, located, binary) = entry::entry_field(unit);
    let shown = m.path.strip_prefix(&ws.root).unwrap_or(&m.path);
    let origin = format!(
        "{}:{}: `{field}` `{}`",
        shown.display(),
        located.pos,
        located.value
    );
    let key = match m.build.signature.as_ref().and_then(|s| s.key.as_ref()) {
        Some(key) => unit.dir.join(&key.value),
        None => settings.signing_key.clone(),
    };
    let sign = SignStep {
        id: id("sign"),
        service: name,
        binary,
        origin,
        enclave_env,
        debug: settings.debug,
        date: crate::sgx::sigstruct::bcd_date_from_epoch(settings.source_date_epoch)
            .unwrap_or(0x1970_0101),
        key,
    };
    let sbom = SbomStep {
        id: StepId::new("sbom", unit.name()),
        service: unit.name().to_string(),
        base: base_name.clone(),
        created: settings.source_date_epoch,
    };
    Ok(ServiceSteps {
        base,
        packages,
        copy,
        layer,
        image,
        sign,
        sbom,
        provenance: provenance_step(ws, unit, base_name, settings),
    })
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn split_command_handles_quotes() {
        assert_eq!(
            split_command("python3 print_env.py"),
            ["python3", "print_env.py"]
        );
        assert_eq!(
            split_command("sh -c 'echo a  b' \"\""),
            ["sh", "-c", "echo a  b", ""]
        );
    }
}
