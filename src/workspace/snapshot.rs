//! A binary snapshot of a loaded [`Workspace`] and of the plan made from it,
//! for the incremental build path (see `engine::noop`).
//!
//! When the no-op record shows that no manifest, no folder of one, no
//! `scone.toml` and no `scone.lock` changed since the last build under the
//! same key (command line, folder, environment, scone's version), that build's
//! workspace is the one this build would load — but for the checks that look
//! at files a step copies, which [`Snapshot::revalidate`] runs again for the
//! services whose files changed. The snapshot is bound to its record by its
//! blake3 (the record names the snapshot it goes with; [`Snapshot::open`]
//! checks it).
//!
//! | section | read |
//! |---|---|
//! | root, `scone.toml`, warnings ([`Head`]) | always |
//! | the stored plan (`plan::stored`), opaque here | when its settings match |
//! | per service: its `build.name`, folder, manifest path, encoded manifest | the named ones, to revalidate; all, for the [`Workspace`] |
//! | per mesh: its path, encoded Meshfile, linked services | for the [`Workspace`] |
//!
//! So a build that uses the stored plan decodes no manifest but those of the
//! services whose files changed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, LinkedMesh, LinkedService, ServiceUnit, Workspace};
use crate::engine::wire::{put_bytes, put_u64, Reader};
use crate::manifest::codec;
use crate::manifest::template::Variables;
use crate::manifest::validate;

const MAGIC: &[u8; 8] = b"sconeWS2";

fn put_path(out: &mut Vec<u8>, p: &Path) {
    put_bytes(out, p.as_os_str().as_encoded_bytes());
}

fn path(r: &mut Reader<'_>) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(r.bytes()?)))
}

fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.bytes()?.to_vec()).ok()
}

/// The snapshot of `ws`, with the plan made from it (`plan::stored`; empty:
/// none).
pub fn encode(ws: &Workspace, plan: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 * (ws.services.len() + 4) + plan.len());
    out.extend_from_slice(MAGIC);
    put_path(&mut out, &ws.root);
    put_bytes(
        &mut out,
        &serde_json::to_vec(&ws.config).unwrap_or_default(),
    );
    put_u64(&mut out, ws.warnings.len() as u64);
    for w in &ws.warnings {
        put_bytes(&mut out, w.as_bytes());
    }
    put_bytes(&mut out, plan);
    put_u64(&mut out, ws.services.len() as u64);
    for s in &ws.services {
        put_bytes(&mut out, s.name().as_bytes());
        put_path(&mut out, &s.dir);
        put_path(&mut out, &s.manifest.path);
        put_bytes(&mut out, &codec::encode_service(&s.manifest));
    }
    put_u64(&mut out, ws.meshes.len() as u64);
    for m in &ws.meshes {
        put_path(&mut out, &m.mesh.path);
        put_bytes(&mut out, &codec::encode_mesh(&m.mesh, &Variables::new()));
        put_u64(&mut out, m.services.len() as u64);
        for s in &m.services {
            put_bytes(&mut out, s.name.as_bytes());
            put_u64(&mut out, s.unit as u64);
            put_u64(&mut out, s.environment.len() as u64);
            for (k, v) in &s.environment {
                put_bytes(&mut out, k.as_bytes());
                put_bytes(&mut out, v.as_bytes());
            }
        }
    }
    out
}

/// The root a snapshot names, read without checking the rest (for work that
/// can start before [`Snapshot::open`] is done, and that is dropped if the
/// snapshot has another root).
pub fn root(bytes: &[u8]) -> Option<PathBuf> {
    path(&mut Reader(bytes.strip_prefix(MAGIC)?))
}

/// What every build reads of the workspace besides its manifests.
#[derive(Clone, Debug)]
pub struct Head {
    pub root: PathBuf,
    pub config: Config,
    pub warnings: Vec<String>,
}

/// A snapshot, opened: its [`Head`] decoded, its manifests not.
pub struct Snapshot {
    bytes: Arc<Vec<u8>>,
    digest: [u8; 32],
    head: Head,
    plan: Range<usize>,
    /// Where the services start.
    services: usize,
}

/// A service of the snapshot, not decoded.
struct Encoded<'a> {
    name: &'a [u8],
    dir: PathBuf,
    file: PathBuf,
    manifest: &'a [u8],
}

fn encoded<'a>(r: &mut Reader<'a>) -> Option<Encoded<'a>> {
    Some(Encoded {
        name: r.bytes()?,
        dir: path(r)?,
        file: path(r)?,
        manifest: r.bytes()?,
    })
}

impl Encoded<'_> {
    fn unit(self) -> Option<ServiceUnit> {
        let mut manifest = codec::decode_service(self.manifest)?;
        manifest.path = self.file;
        (manifest.build.name.value.as_bytes() == self.name).then_some(ServiceUnit {
            manifest,
            dir: self.dir,
        })
    }
}

impl Snapshot {
    /// Opens `bytes` if their blake3 is `digest` (the one the record names)
    /// and their head decodes.
    pub fn open(bytes: Vec<u8>, digest: &[u8; 32]) -> Option<Snapshot> {
        if blake3::hash(&bytes).as_bytes() != digest {
            return None;
        }
        let body = bytes.strip_prefix(MAGIC)?;
        let mut r = Reader(body);
        let root = path(&mut r)?;
        let config: Config = serde_json::from_slice(r.bytes()?).ok()?;
        let n = r.len()?;
        let mut warnings = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            warnings.push(text(&mut r)?);
        }
        let plan = r.bytes()?.len();
        let services = bytes.len() - r.0.len();
        Some(Snapshot {
            head: Head {
                root,
                config,
                warnings,
            },
            plan: services - plan..services,
            services,
            bytes: Arc::new(bytes),
            digest: *digest,
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The blake3 of the snapshot (the one the record names).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The bytes of the snapshot and where its stored plan is in them (an
    /// empty range: none).
    pub fn plan(&self) -> (&Arc<Vec<u8>>, Range<usize>) {
        (&self.bytes, self.plan.clone())
    }

    /// The whole workspace; `None` if it is damaged.
    pub fn workspace(&self) -> Option<Workspace> {
        let mut r = Reader(self.bytes.get(self.services..)?);
        let n = r.len()?;
        let mut encoded_services = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            encoded_services.push(encoded(&mut r)?);
        }
        // A thousand manifests: decoded on all cores.
        let services: Vec<ServiceUnit> = {
            use rayon::prelude::*;
            encoded_services
                .into_par_iter()
                .map(Encoded::unit)
                .collect::<Option<_>>()?
        };
        let n = r.len()?;
        let mut meshes = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let file = path(&mut r)?;
            let (mut mesh, _) = codec::decode_mesh(r.bytes()?)?;
            mesh.path = file;
            let count = r.len()?;
            let mut linked = Vec::with_capacity(count.min(1 << 20));
            for _ in 0..count {
                let name = text(&mut r)?;
                let unit = r.len()?;
                if unit >= services.len() {
                    return None;
                }
                let vars = r.len()?;
                let mut environment = Vec::with_capacity(vars.min(1 << 16));
                for _ in 0..vars {
                    environment.push((text(&mut r)?, text(&mut r)?));
                }
                linked.push(LinkedService {
                    name,
                    unit,
                    environment,
                });
            }
            meshes.push(LinkedMesh {
                mesh,
                services: linked,
            });
        }
        let Head {
            root,
            config,
            warnings,
        } = self.head.clone();
        r.is_empty().then_some(Workspace {
            root,
            config,
            services,
            warnings,
            meshes,
        })
    }

    /// Runs the checks of the services named `units` (by `build.name`) again,
    /// those that look at the files a service copies: whether they still find
    /// nothing new (no problem, no warning the snapshot does not already
    /// have). Only those manifests are decoded.
    pub fn revalidate(&self, units: &HashSet<&str>) -> bool {
        let Some(rest) = self.bytes.get(self.services..) else {
            return false;
        };
        let mut r = Reader(rest);
        let Some(n) = r.len() else {
            return false;
        };
        for _ in 0..n {
            let Some(service) = encoded(&mut r) else {
                return false;
            };
            let wanted = std::str::from_utf8(service.name).is_ok_and(|n| units.contains(n));
            if !wanted {
                continue;
            }
            let Some(s) = service.unit() else {
                return false;
            };
            let mut problems = Vec::new();
            let mut warnings = Vec::new();
            validate::check_service(&s.manifest, &s.dir, &mut problems, &mut warnings);
            if !problems.is_empty() || !warnings.iter().all(|w| self.head.warnings.contains(w)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_workspace_round_trips_and_damage_is_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("svc/lib")).unwrap();
        std::fs::write(root.join("svc/lib/a.txt"), "a").unwrap();
        std::fs::write(
            root.join("svc/service.yml"),
            "apiVersion: scone/5.8\nkind: genImage\nbuild:\n  name: svc_a\n  kind: binary\n  from: scratch\n  to: example.com/a:1\n  pwd: /app\n  command: /app/a\n  copy: [lib]\n",
        )
        .unwrap();
        std::fs::write(
            root.join("mesh.yml"),
            "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: cas\n    cas_url: cas.example.com\npolicy:\n  namespace: demo\nservices:\n  - name: svc-a\n    image: example.com/a:1\n    manifest: svc/service.yml\n",
        )
        .unwrap();
        let ws = super::super::load(&super::super::LoadOptions {
            files: vec![root.join("mesh.yml")],
            cwd: root.to_path_buf(),
        })
        .unwrap();
        let bytes = encode(&ws, b"the plan");
        let digest = *blake3::hash(&bytes).as_bytes();
        let snapshot = Snapshot::open(bytes.clone(), &digest).unwrap();
        let (all, plan) = snapshot.plan();
        assert_eq!(&all[plan], b"the plan");
        assert_eq!(snapshot.head().root, ws.root);
        let back = snapshot.workspace().unwrap();
        assert_eq!(super::root(&bytes).as_deref(), Some(ws.root.as_path()));
        assert!(super::root(b"sconeWS0").is_none());
        assert_eq!(
            encode(&back, b"the plan"),
            bytes,
            "what was decoded encodes the same"
        );
        assert_eq!(back.root, ws.root);
        assert_eq!(back.services[0].manifest.path, ws.services[0].manifest.path);
        assert_eq!(back.meshes[0].services[0].name, "svc-a");
        let named = |n: &'static str| HashSet::from([n]);
        assert!(snapshot.revalidate(&named("svc_a")));
        // A copied folder gains a link out of the service: the check fails
        // again, for that service only.
        std::os::unix::fs::symlink("../../mesh.yml", root.join("svc/lib/out")).unwrap();
        assert!(!snapshot.revalidate(&named("svc_a")));
        assert!(snapshot.revalidate(&named("policy-unit")), "not a service");
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(Snapshot::open(bad, &digest).is_none(), "damaged");
        assert!(
            Snapshot::open(bytes, &[0; 32]).is_none(),
            "another record's"
        );
    }
}
