//! How each step kind is stored (see [`super`]): every field, in order, as
//! varint-prefixed byte strings and varints. Each encoder destructures its
//! step, so a field added to a step does not compile until it is stored here.

use std::path::PathBuf;

use super::Stored;
use crate::engine::wire::{put_var, put_var_bytes, Reader};
use crate::engine::{Step, StepId};
use crate::oci::base::{BaseContext, BaseSpec};
use crate::oci::tar::Compression;
use crate::steps::base::BaseStep;
use crate::steps::chart::{ChartStep, ChartUnit};
use crate::steps::copy::CopyStep;
use crate::steps::image::ImageStep;
use crate::steps::layer::LayerStep;
use crate::steps::policy::{PolicySecret, PolicyService, PolicyStep};
use crate::steps::sign::SignStep;

/// The kinds, by the tag a node is stored with.
pub(super) const KINDS: [&str; 7] = [
    BaseStep::KIND,
    CopyStep::KIND,
    LayerStep::KIND,
    ImageStep::KIND,
    SignStep::KIND,
    PolicyStep::KIND,
    ChartStep::KIND,
];

/// The step of kind `tag`, decoded from `r`.
pub(super) fn decode_step(tag: usize, id: StepId, r: &mut Reader<'_>) -> Option<Box<dyn Step>> {
    fn boxed<S: Stored>(s: Option<S>) -> Option<Box<dyn Step>> {
        s.map(|s| Box::new(s) as Box<dyn Step>)
    }
    match KINDS.get(tag).copied()? {
        BaseStep::KIND => boxed(BaseStep::decode(id, r)),
        CopyStep::KIND => boxed(CopyStep::decode(id, r)),
        LayerStep::KIND => boxed(LayerStep::decode(id, r)),
        ImageStep::KIND => boxed(ImageStep::decode(id, r)),
        SignStep::KIND => boxed(SignStep::decode(id, r)),
        PolicyStep::KIND => boxed(PolicyStep::decode(id, r)),
        ChartStep::KIND => boxed(ChartStep::decode(id, r)),
        _ => None,
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_var_bytes(out, s.as_bytes());
}

fn put_path(out: &mut Vec<u8>, p: &std::path::Path) {
    put_var_bytes(out, p.as_os_str().as_encoded_bytes());
}

pub(super) fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_strs(out: &mut Vec<u8>, list: &[String]) {
    put_var(out, list.len() as u64);
    for s in list {
        put_str(out, s);
    }
}

fn put_pairs(out: &mut Vec<u8>, list: &[(String, String)]) {
    put_var(out, list.len() as u64);
    for (k, v) in list {
        put_str(out, k);
        put_str(out, v);
    }
}

pub(super) fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.var_bytes()?.to_vec()).ok()
}

fn path(r: &mut Reader<'_>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(r.var_bytes()?)))
}

pub(super) fn opt(r: &mut Reader<'_>) -> Option<Option<String>> {
    match flag(r)? {
        false => Some(None),
        true => Some(Some(text(r)?)),
    }
}

fn opt_path(r: &mut Reader<'_>) -> Option<Option<PathBuf>> {
    match flag(r)? {
        false => Some(None),
        true => Some(Some(path(r)?)),
    }
}

fn put_opt_path(out: &mut Vec<u8>, p: Option<&std::path::Path>) {
    match p {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_path(out, p);
        }
    }
}

fn strs(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let n = r.var_len()?;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        out.push(text(r)?);
    }
    Some(out)
}

fn pairs(r: &mut Reader<'_>) -> Option<Vec<(String, String)>> {
    let n = r.var_len()?;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        out.push((text(r)?, text(r)?));
    }
    Some(out)
}

fn flag(r: &mut Reader<'_>) -> Option<bool> {
    match r.take(1)?[0] {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

impl Stored for BaseStep {
    const KIND: &'static str = "base";
    fn encode(&self, out: &mut Vec<u8>) {
        // The spec is the parse of the reference (see `plan::service_steps`).
        let BaseStep {
            id: _,
            reference,
            spec: _,
            context,
        } = self;
        let BaseContext {
            cache_dir,
            offline,
            pinned,
            insecure_registries,
            docker_host,
        } = context;
        put_str(out, reference);
        put_path(out, cache_dir);
        out.push(u8::from(*offline));
        put_opt(out, pinned.as_deref());
        put_strs(out, insecure_registries);
        put_opt(out, docker_host.as_deref());
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        let reference = text(r)?;
        let spec = BaseSpec::parse(&reference).ok()?;
        Some(BaseStep {
            id,
            reference,
            spec,
            context: BaseContext {
                cache_dir: path(r)?,
                offline: flag(r)?,
                pinned: opt(r)?,
                insecure_registries: strs(r)?,
                docker_host: opt(r)?,
            },
        })
    }
}

impl Stored for CopyStep {
    const KIND: &'static str = "copy";
    fn encode(&self, out: &mut Vec<u8>) {
        let CopyStep {
            id: _,
            dir,
            pwd,
            copy,
        } = self;
        put_path(out, dir);
        put_str(out, pwd);
        put_strs(out, copy);
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        Some(CopyStep {
            id,
            dir: path(r)?,
            pwd: text(r)?,
            copy: strs(r)?,
        })
    }
}

impl Stored for LayerStep {
    const KIND: &'static str = "layer";
    fn encode(&self, out: &mut Vec<u8>) {
        let LayerStep {
            id: _,
            compression,
            mtime,
        } = self;
        out.push(match compression {
            Compression::Gzip => 0,
            Compression::Zstd => 1,
        });
        put_var(out, *mtime);
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        let compression = match r.take(1)?[0] {
            0 => Compression::Gzip,
            1 => Compression::Zstd,
            _ => return None,
        };
        Some(LayerStep {
            id,
            compression,
            mtime: r.var()?,
        })
    }
}

impl Stored for ImageStep {
    const KIND: &'static str = "image";
    fn encode(&self, out: &mut Vec<u8>) {
        let ImageStep {
            id: _,
            to,
            env,
            pwd,
            argv,
            service,
            created,
        } = self;
        put_str(out, to);
        put_pairs(out, env);
        put_str(out, pwd);
        put_strs(out, argv);
        put_str(out, service);
        put_var(out, *created);
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        Some(ImageStep {
            id,
            to: text(r)?,
            env: pairs(r)?,
            pwd: text(r)?,
            argv: strs(r)?,
            service: text(r)?,
            created: r.var()?,
        })
    }
}

impl Stored for SignStep {
    const KIND: &'static str = "sign";
    fn encode(&self, out: &mut Vec<u8>) {
        let SignStep {
            id: _,
            service,
            binary,
            enclave_env,
            debug,
            date,
            key,
        } = self;
        put_str(out, service);
        put_str(out, binary);
        put_pairs(out, enclave_env);
        out.push(u8::from(*debug));
        put_var(out, u64::from(*date));
        put_path(out, key);
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        Some(SignStep {
            id,
            service: text(r)?,
            binary: text(r)?,
            enclave_env: pairs(r)?,
            debug: flag(r)?,
            date: u32::try_from(r.var()?).ok()?,
            key: path(r)?,
        })
    }
}

impl Stored for PolicyStep {
    const KIND: &'static str = "policy";
    const STORE_PARAMS: bool = true;
    fn encode(&self, out: &mut Vec<u8>) {
        let PolicyStep {
            id: _,
            namespace,
            services,
            secrets,
            tolerate,
            ignore_advisories,
        } = self;
        put_str(out, namespace);
        put_var(out, services.len() as u64);
        for s in services {
            let PolicyService {
                name,
                unit,
                image_name,
                command,
                pwd,
                environment,
            } = s;
            for t in [name, unit, image_name, command, pwd] {
                put_str(out, t);
            }
            put_pairs(out, environment);
        }
        put_var(out, secrets.len() as u64);
        for s in secrets {
            let PolicySecret {
                name,
                kind,
                size,
                fixed,
                export_to,
            } = s;
            put_str(out, name);
            put_str(out, kind);
            match size {
                None => out.push(0),
                Some(n) => {
                    out.push(1);
                    put_var(out, u64::from(*n));
                }
            }
            out.push(u8::from(*fixed));
            put_strs(out, export_to);
        }
        put_strs(out, tolerate);
        put_strs(out, ignore_advisories);
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        let namespace = text(r)?;
        let n = r.var_len()?;
        let mut services = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            services.push(PolicyService {
                name: text(r)?,
                unit: text(r)?,
                image_name: text(r)?,
                command: text(r)?,
                pwd: text(r)?,
                environment: pairs(r)?,
            });
        }
        let n = r.var_len()?;
        let mut secrets = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            secrets.push(PolicySecret {
                name: text(r)?,
                kind: text(r)?,
                size: match flag(r)? {
                    false => None,
                    true => Some(u32::try_from(r.var()?).ok()?),
                },
                fixed: flag(r)?,
                export_to: strs(r)?,
            });
        }
        Some(PolicyStep {
            id,
            namespace,
            services,
            secrets,
            tolerate: strs(r)?,
            ignore_advisories: strs(r)?,
        })
    }
}

impl Stored for ChartStep {
    const KIND: &'static str = "chart";
    const STORE_PARAMS: bool = true;
    fn encode(&self, out: &mut Vec<u8>) {
        let ChartStep {
            id: _,
            namespace,
            version,
            cas_addr,
            services,
            dir,
            chart_path,
            templates,
            manifests_dir,
        } = self;
        put_str(out, namespace);
        put_str(out, version);
        put_str(out, cas_addr);
        put_var(out, services.len() as u64);
        for s in services {
            let ChartUnit { name, unit, ports } = s;
            put_str(out, name);
            put_str(out, unit);
            put_var(out, ports.len() as u64);
            for (port_name, port, protocol) in ports {
                put_str(out, port_name);
                put_var(out, u64::from(*port));
                put_str(out, protocol);
            }
        }
        put_str(out, dir);
        put_str(out, chart_path);
        put_opt_path(out, templates.as_deref());
        put_opt(out, manifests_dir.as_deref());
    }
    fn decode(id: StepId, r: &mut Reader<'_>) -> Option<Self> {
        let namespace = text(r)?;
        let version = text(r)?;
        let cas_addr = text(r)?;
        let n = r.var_len()?;
        let mut services = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let name = text(r)?;
            let unit = text(r)?;
            let ports_n = r.var_len()?;
            let mut ports = Vec::with_capacity(ports_n.min(1 << 16));
            for _ in 0..ports_n {
                ports.push((text(r)?, u16::try_from(r.var()?).ok()?, text(r)?));
            }
            services.push(ChartUnit { name, unit, ports });
        }
        Some(ChartStep {
            id,
            namespace,
            version,
            cas_addr,
            services,
            dir: text(r)?,
            chart_path: text(r)?,
            templates: opt_path(r)?,
            manifests_dir: opt(r)?,
        })
    }
}
