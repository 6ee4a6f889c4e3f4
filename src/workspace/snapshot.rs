//! A binary snapshot of a loaded [`Workspace`], for the incremental build path
//! (see `engine::noop`).
//!
//! When the no-op record shows that no manifest, no folder of one, no
//! `scone.toml` and no `scone.lock` changed since the last build under the
//! same key (command line, folder, environment, scone's version), that build's
//! workspace is the one this build would load — but for the checks that look
//! at files a step copies, which [`revalidate`] runs again for the services
//! whose files changed. The snapshot is sealed with a checksum and is bound to
//! its record by its blake3 (the record names the snapshot it goes with).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Config, LinkedMesh, LinkedService, ServiceUnit, Workspace};
use crate::engine::wire::{put_bytes, put_u64, seal, unseal, Reader};
use crate::manifest::codec;
use crate::manifest::template::Variables;
use crate::manifest::validate;

const MAGIC: &[u8; 8] = b"sconeWS1";

fn put_path(out: &mut Vec<u8>, p: &Path) {
    put_bytes(out, p.as_os_str().as_encoded_bytes());
}

fn path(r: &mut Reader<'_>) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(r.bytes()?)))
}

fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.bytes()?.to_vec()).ok()
}

/// The snapshot of `ws`.
pub fn encode(ws: &Workspace) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 * (ws.services.len() + 4));
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
    put_u64(&mut out, ws.services.len() as u64);
    for s in &ws.services {
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
    seal(&mut out);
    out
}

/// The root a snapshot names, read without checking the rest (for work that
/// can start before [`decode`] is done, and that is dropped if the decoded
/// workspace has another root).
pub fn root(bytes: &[u8]) -> Option<PathBuf> {
    path(&mut Reader(bytes.strip_prefix(MAGIC)?))
}

/// The workspace of a snapshot; `None` if it is damaged or of another format.
pub fn decode(bytes: &[u8]) -> Option<Workspace> {
    let mut r = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
    let root = path(&mut r)?;
    let config: Config = serde_json::from_slice(r.bytes()?).ok()?;
    let n = r.len()?;
    let mut warnings = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        warnings.push(text(&mut r)?);
    }
    let n = r.len()?;
    let mut encoded = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        encoded.push((path(&mut r)?, path(&mut r)?, r.bytes()?));
    }
    // A thousand manifests: decoded on all cores.
    let services: Vec<ServiceUnit> = {
        use rayon::prelude::*;
        encoded
            .into_par_iter()
            .map(|(dir, file, bytes)| {
                let mut manifest = codec::decode_service(bytes)?;
                manifest.path = file;
                Some(ServiceUnit { manifest, dir })
            })
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
    r.is_empty().then_some(Workspace {
        root,
        config,
        services,
        warnings,
        meshes,
    })
}

/// Runs the checks of the services `units` again (those that look at the files
/// a service copies); whether they still find nothing new: no problem and no
/// warning the snapshot does not already have.
pub fn revalidate(ws: &Workspace, units: impl IntoIterator<Item = usize>) -> bool {
    units.into_iter().all(|i| {
        let Some(s) = ws.services.get(i) else {
            return false;
        };
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        validate::check_service(&s.manifest, &s.dir, &mut problems, &mut warnings);
        problems.is_empty() && warnings.iter().all(|w| ws.warnings.contains(w))
    })
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
            "apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: demo\nservices:\n  - name: svc-a\n    image: example.com/a:1\n    manifest: svc/service.yml\n",
        )
        .unwrap();
        let ws = super::super::load(&super::super::LoadOptions {
            files: vec![root.join("mesh.yml")],
            cwd: root.to_path_buf(),
        })
        .unwrap();
        let bytes = encode(&ws);
        let back = decode(&bytes).unwrap();
        assert_eq!(super::root(&bytes).as_deref(), Some(ws.root.as_path()));
        assert!(super::root(b"sconeWS0").is_none());
        assert_eq!(encode(&back), bytes, "what was decoded encodes the same");
        assert_eq!(back.root, ws.root);
        assert_eq!(back.services[0].manifest.path, ws.services[0].manifest.path);
        assert_eq!(back.meshes[0].services[0].name, "svc-a");
        assert!(revalidate(&back, [0]));
        // A copied folder gains a link out of the service: the check fails again.
        std::os::unix::fs::symlink("../../mesh.yml", root.join("svc/lib/out")).unwrap();
        assert!(!revalidate(&back, [0]));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(decode(&bad).is_none());
    }
}
