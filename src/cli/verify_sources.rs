//! `scone verify` against the sources: rebuild (the cache may answer), then
//! compare each service's image digest, MRENCLAVE, MRSIGNER, fspf tag and
//! SIGSTRUCT, and each mesh's session, with what is deployed: `scone.lock`,
//! the sessions on CAS (local or remote), and with `--registry` the images
//! under their tags and the SBOM and provenance attached to them. Every
//! mismatch names the field, both values and the likely cause.
//!
//! `-p` limits which services are checked, not where: the sessions of the
//! meshes that deploy a selected service are still read, their hash compared
//! with `scone.lock` and the service's entries (MRENCLAVE, fspf tag) with this
//! build. What `-p` cannot check (a session's content and fixed values: the
//! mesh's policy is not built) is returned to be named in the summary.

use anyhow::Context;
use scone::lockfile::{ImageLock, Lockfile};
use scone::oci::digest::sha256_digest;
use scone::oci::reference::Reference;
use scone::sgx::sigstruct::Sigstruct;
use scone::verify::{layers, session, Check, NONE};
use std::collections::BTreeMap;
use std::path::Path;

use super::args::{BuildArgs, VerifyArgs};
use super::build::{build_keeping_lock, load_workspace, selected};
use super::deployed::{self, BuiltEnclave};

/// What the registry holds under a service's tag.
enum Pushed {
    Missing,
    Found(String),
    Unreachable(String),
}

const RE_APPLY: &str = "the image was rebuilt without re-applying: the sources changed since \
    the last apply; run `scone apply` (with --push for the registry)";
pub(super) const STALE_LOCK: &str =
    "scone.lock is stale: what is deployed is what this build makes, but \
    scone.lock records an older build; commit the scone.lock the last apply wrote (or run \
    `scone apply` to write it again)";
pub(super) const OWN_UPDATE: &str = "CAS holds a session this project sent after the apply \
    scone.lock records (an apply stopped before it wrote scone.lock?); run `scone apply`, which \
    updates it from there and records it";
pub(super) const CHANGED_BY_OTHERS: &str = "the session was changed in CAS by someone else since \
    scone.lock (its hash is not the one the last apply recorded); review it with `scone cas \
    session`, then `scone apply`";

/// The checks, and what was not checked (with `-p`; named in the summary).
pub type Found = (Vec<Check>, Vec<String>);

/// What was found, or the exit code of a build that failed.
pub fn checks(args: &VerifyArgs) -> anyhow::Result<Result<Found, i32>> {
    let common = &args.build.common;
    let ws = load_workspace(common)?;
    let target = ws.target_dir(common.target_dir.as_deref());
    let lock = Lockfile::load(&ws.root.join("scone.lock"))?;
    let only = selected(&ws, common)?;
    let chosen: Vec<usize> = if only.is_empty() {
        (0..ws.services.len()).collect()
    } else {
        only.clone()
    };
    // Before the build, which puts back what it made: the SIGSTRUCTs as they are.
    let before: BTreeMap<String, Vec<u8>> = chosen
        .iter()
        .filter_map(|&i| {
            let name = ws.services[i].name().to_string();
            let bytes = std::fs::read(target.join("enclave").join(&name).join("sigstruct.bin"));
            bytes.ok().map(|b| (name, b))
        })
        .collect();
    // What the sources build, by this machine: a remote cache's entries are
    // claims of whoever could write them, not what verify checks against.
    let local = BuildArgs {
        no_remote_cache: true,
        ..args.build.clone()
    };
    let outcome = build_keeping_lock(&local)?;
    if outcome.code != 0 {
        return Ok(Err(outcome.code));
    }
    let client = if args.registry {
        Some(deployed::registry(&args.build.insecure_registries)?)
    } else {
        None
    };
    let mut checks = Vec::new();
    let mut not_checked = Vec::new();
    let mut sessions = BTreeMap::new();
    let project = super::build::project_of(&ws);
    // The meshes first: a service's causes depend on what CAS holds. With
    // -p, those that deploy a selected service.
    let meshes = ws
        .meshes
        .iter()
        .filter(|m| only.is_empty() || m.services.iter().any(|s| chosen.contains(&s.unit)));
    for mesh in meshes {
        let ns = mesh.namespace().to_string();
        let record = deployed::cas_session(args.cas, args.cas_ca.as_deref(), mesh)?;
        let place = deployed::cas_place(args.cas, mesh);
        let locked = lock.session.get(&ns);
        // This project's own session, sent by an apply that stopped
        // before it wrote scone.lock (as the upload step tells it).
        let own = match (&record, locked.and_then(|l| l.cas_hash.as_deref())) {
            (Some(r), Some(known)) => scone::cas::is_own_update(r, known, Some(&project)),
            _ => false,
        };
        if only.is_empty() {
            let built = deployed::built_session(&target, &ns)?;
            let deployed = match &record {
                Some(r) => Some((r, deployed::compare_session(&ws, mesh, r, &built)?)),
                None => None,
            };
            checks.extend(super::verify_session::session_checks(
                &ns,
                &built,
                deployed.as_ref().map(|(r, c)| (*r, c)),
                locked,
                own,
                &place,
            ));
        } else {
            checks.push(super::verify_session::session_hash_alone(
                &ns,
                record.as_ref(),
                locked,
                own,
                &place,
            ));
            if record.is_some() {
                not_checked.push(format!(
                    "the content and fixed values of session {ns} ({place}) against the \
                     sources: -p does not build the mesh's policy; run `scone verify` without -p"
                ));
            }
        }
        sessions.insert(ns, (record, place, mesh, own));
    }
    for &i in &chosen {
        let unit = &ws.services[i];
        let name = unit.name();
        let (Some(digest), Some(enclave)) = (
            deployed::built_image(&target, name),
            deployed::built_enclave(&target, name),
        ) else {
            anyhow::bail!("the build left no image or enclave of {name} under target/");
        };
        let pushed = client
            .as_ref()
            .map(|c| pushed(c, &unit.manifest.build.to.value));
        let pushed_current = matches!(&pushed, Some(Pushed::Found(d)) if *d == digest);
        // What CAS says of this service, in each mesh that deploys it.
        let mut in_cas = Vec::new();
        for (record, place, mesh, own) in sessions.values() {
            for s in mesh.services.iter().filter(|s| s.unit == i) {
                let entry = record
                    .as_ref()
                    .and_then(|r| session::services(&r.yaml))
                    .and_then(|list| list.into_iter().find(|e| e.name == s.name));
                in_cas.push((s.name.clone(), place.clone(), entry, *own));
            }
        }
        let cas_current = !in_cas.is_empty()
            && in_cas.iter().all(|(_, _, e, _)| {
                e.as_ref().is_some_and(|e| {
                    e.mrenclaves.contains(&enclave.mrenclave)
                        && e.fspf_tag.as_deref() == Some(enclave.fspf_tag.as_str())
                })
            });
        let deployed_current = pushed_current || cas_current;
        // Whether what is deployed is what scone.lock records (an older build).
        let locked = lock.image.get(name);
        let deployed_is_lock = locked.is_some_and(|l| {
            matches!(&pushed, Some(Pushed::Found(d)) if *d == l.digest)
                || (!in_cas.is_empty()
                    && in_cas.iter().all(|(_, _, e, _)| {
                        e.as_ref().is_some_and(|e| {
                            e.mrenclaves.contains(&l.mrenclave)
                                && e.fspf_tag.as_deref() == Some(l.fspf_tag.as_str())
                        })
                    }))
        });
        checks.extend(lock_checks(
            name,
            &digest,
            &enclave,
            locked,
            if deployed_current {
                Deployed::Current
            } else if deployed_is_lock {
                Deployed::Locked
            } else {
                Deployed::Other
            },
        ));
        if let Some(bytes) = before.get(name) {
            let place = format!("{}/enclave/{name}/sigstruct.bin", shown(&ws.root, &target));
            checks.push(sigstruct_check(name, &enclave, bytes, place));
        }
        for (service, place, entry, own) in &in_cas {
            let other = || if *own { OWN_UPDATE } else { CHANGED_BY_OTHERS }.to_string();
            let place = format!("{place}, service {service}");
            let mrenclaves = entry.as_ref().map(|e| e.mrenclaves.join(","));
            // The entry admits this build's enclave, and no other.
            let others: Vec<&str> = entry
                .iter()
                .flat_map(|e| &e.mrenclaves)
                .filter(|m| **m != enclave.mrenclave)
                .map(String::as_str)
                .collect();
            let admits = entry
                .as_ref()
                .is_some_and(|e| e.mrenclaves.contains(&enclave.mrenclave));
            let cause = || {
                if admits {
                    format!(
                        "the session admits other enclaves besides this build's ({}): {}",
                        others.join(", "),
                        other()
                    )
                } else if lock.image.get(name).is_some_and(|l| {
                    entry
                        .as_ref()
                        .is_some_and(|e| e.mrenclaves.contains(&l.mrenclave))
                        && l.mrenclave != enclave.mrenclave
                }) {
                    RE_APPLY.to_string()
                } else {
                    other()
                }
            };
            checks.push(Check::holds(
                name,
                "MRENCLAVE",
                &place,
                &enclave.mrenclave,
                mrenclaves.as_deref().unwrap_or(NONE),
                admits && others.is_empty(),
                cause,
            ));
            let fspf = entry.as_ref().and_then(|e| e.fspf_tag.clone());
            let cause = || {
                let lock_fspf = lock.image.get(name).map(|l| l.fspf_tag.as_str());
                if lock_fspf.is_some() && fspf.as_deref() == lock_fspf {
                    RE_APPLY.to_string()
                } else {
                    other()
                }
            };
            checks.push(Check::compare(
                name,
                "fspf tag",
                &place,
                &enclave.fspf_tag,
                fspf.as_deref(),
                cause,
            ));
        }
        if let (Some(client), Some(pushed)) = (&client, pushed) {
            checks.extend(registry_checks(
                client,
                name,
                &unit.manifest.build.to.value,
                &digest,
                lock.image.get(name),
                pushed,
                &target,
            ));
        }
    }
    // With --key: the provenance this build made is signed by that key (the
    // one the deployer publishes), not only by whatever key this machine has.
    let key = match &args.key {
        Some(path) => Some(scone::attest::key::PublicKey::from_pem(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?),
        None => None,
    };
    for (&i, key) in chosen.iter().zip(std::iter::repeat(&key)) {
        let Some(key) = key else { break };
        let name = ws.services[i].name();
        let path = target.join("provenance").join(format!("{name}.dsse.json"));
        let verdict = std::fs::read(&path)
            .map_err(|e| scone::attest::AttestError::Invalid(format!("not readable: {e}")))
            .and_then(|bytes| scone::attest::dsse::Envelope::parse(&bytes))
            .and_then(|e| e.verify(key));
        checks.push(Check::holds(
            name,
            "provenance signature",
            format!("{}/provenance/{name}.dsse.json", shown(&ws.root, &target)),
            format!("signed by key {}", scone::verify::short(&key.keyid())),
            match &verdict {
                Ok(()) => "signed by it".to_string(),
                Err(e) => e.to_string(),
            },
            verdict.is_ok(),
            || {
                "the provenance is not signed by the key given with --key: this workspace signs \
                 with another `[provenance] key` (or $SCONE_PROVENANCE_KEY)"
                    .to_string()
            },
        ));
    }
    Ok(Ok((checks, not_checked)))
}

/// The image digest under `reference`'s tag.
fn pushed(client: &scone::oci::registry::RegistryClient, reference: &str) -> Pushed {
    let Ok(parsed) = Reference::parse(reference) else {
        return Pushed::Unreachable(format!("`{reference}` is no image reference"));
    };
    match client.pull_manifest(&parsed) {
        Ok(found) => Pushed::Found(found.digest),
        Err(scone::oci::error::OciError::BaseNotFound { .. }) => Pushed::Missing,
        Err(e) => Pushed::Unreachable(e.to_string()),
    }
}

/// What is deployed of a service (in CAS and, with `--registry`, the registry).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deployed {
    /// What this build makes.
    Current,
    /// What `scone.lock` records.
    Locked,
    /// Something else, or nothing.
    Other,
}

/// `path` relative to `root` when it is under it.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The service's entry in `scone.lock` against this build.
fn lock_checks(
    name: &str,
    digest: &str,
    enclave: &BuiltEnclave,
    locked: Option<&ImageLock>,
    deployed: Deployed,
) -> Vec<Check> {
    let cause = || {
        if locked.is_none() {
            "scone.lock has no entry for this service: it was never built or applied here, or \
             scone.lock was not committed; run `scone apply`"
                .to_string()
        } else if deployed == Deployed::Current {
            STALE_LOCK.to_string()
        } else if deployed == Deployed::Locked {
            RE_APPLY.to_string()
        } else {
            "scone.lock does not match this build: the sources changed since it was written \
             (or it was edited); run `scone apply` to deploy this build and rewrite it"
                .to_string()
        }
    };
    let fields = [
        ("image digest", digest, locked.map(|l| l.digest.as_str())),
        (
            "MRENCLAVE",
            enclave.mrenclave.as_str(),
            locked.map(|l| l.mrenclave.as_str()),
        ),
        (
            "MRSIGNER",
            enclave.mrsigner.as_str(),
            locked.map(|l| l.mrsigner.as_str()),
        ),
        (
            "fspf tag",
            enclave.fspf_tag.as_str(),
            locked.map(|l| l.fspf_tag.as_str()),
        ),
    ];
    fields
        .into_iter()
        .map(|(field, built, found)| Check::compare(name, field, "scone.lock", built, found, cause))
        .collect()
}

/// The SIGSTRUCT under `target/` as it was before this build.
fn sigstruct_check(name: &str, enclave: &BuiltEnclave, before: &[u8], place: String) -> Check {
    let found = sha256_digest(before);
    let cause = || match Sigstruct::from_bytes(before) {
        Err(e) => format!("it is no SIGSTRUCT ({e}); the build put back the one it made"),
        Ok(s) if !s.verify().is_valid() => "the SIGSTRUCT was changed after it was signed: its \
            RSA signature does not verify (tampered, or damaged); the build put back the one \
            it made"
            .to_string(),
        Ok(s) if hex::encode(s.enclavehash()) != enclave.mrenclave => format!(
            "it is signed for another enclave (ENCLAVEHASH {}): an old or foreign SIGSTRUCT",
            hex::encode(s.enclavehash())
        ),
        Ok(s) if hex::encode(s.mrsigner()) != enclave.mrsigner => format!(
            "it is signed with another key (MRSIGNER {})",
            hex::encode(s.mrsigner())
        ),
        Ok(_) => "it is signed for this enclave with other fields (date, attributes)".to_string(),
    };
    Check::compare(
        name,
        "SIGSTRUCT",
        place,
        sha256_digest(&enclave.sigstruct),
        Some(&found),
        cause,
    )
}

/// The image under the service's tag, and what is attached to it.
fn registry_checks(
    client: &scone::oci::registry::RegistryClient,
    name: &str,
    reference: &str,
    digest: &str,
    locked: Option<&ImageLock>,
    pushed: Pushed,
    target: &Path,
) -> Vec<Check> {
    let place = format!("registry {reference}");
    let found = match pushed {
        Pushed::Unreachable(why) => {
            return vec![Check::holds(
                name,
                "image digest",
                place,
                digest,
                NONE,
                false,
                || format!("the registry could not be read: {why}"),
            )]
        }
        Pushed::Missing => None,
        Pushed::Found(d) => Some(d),
    };
    let lock_digest = locked.map(|l| l.digest.as_str());
    let cause = || match &found {
        None => "the registry has no image under this tag: push it with `scone apply --push`"
            .to_string(),
        Some(f) if Some(f.as_str()) == lock_digest => RE_APPLY.to_string(),
        Some(f) => {
            let files = changed_files(client, reference, f, digest, target, name);
            let what = if files.is_empty() {
                String::new()
            } else {
                format!(": {}", files.join(", "))
            };
            if lock_digest == Some(digest) {
                format!(
                    "the image under this tag was re-pushed since the last apply (by someone \
                     else, or another build){what}; push this build again with `scone apply --push`"
                )
            } else {
                format!("the registry holds another image under this tag{what}")
            }
        }
    };
    let mut checks = vec![Check::compare(
        name,
        "image digest",
        &place,
        digest,
        found.as_deref(),
        cause,
    )];
    if found.as_deref() != Some(digest) {
        return checks;
    }
    // The SBOM and the provenance this build made, attached to the image.
    let attached: Vec<String> = Reference::parse(reference)
        .ok()
        .and_then(|r| {
            let (list, _) = client.referrers(&r, digest).ok()?;
            Some(
                list.iter()
                    .filter_map(|d| {
                        let m = client.pull_manifest(&r.with_digest(&d.digest)).ok()?;
                        let doc: serde_json::Value = serde_json::from_slice(&m.bytes).ok()?;
                        doc["layers"][0]["digest"].as_str().map(str::to_string)
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    for (field, file) in [
        (
            "SBOM",
            target.join("sbom").join(format!("{name}.spdx.json")),
        ),
        (
            "provenance",
            target.join("provenance").join(format!("{name}.dsse.json")),
        ),
    ] {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let want = sha256_digest(&bytes);
        let ok = attached.contains(&want);
        checks.push(Check::holds(
            name,
            field,
            format!("{place} (referrers)"),
            &want,
            if ok {
                want.clone()
            } else if attached.is_empty() {
                NONE.to_string()
            } else {
                attached.join(",")
            },
            ok,
            || {
                "this build's artifact is not attached to the image: push with `scone apply \
                 --push` (it attaches the SBOM and provenance after the image)"
                    .to_string()
            },
        ));
    }
    checks
}

/// The files that differ between the image `found` under `reference` and the
/// one built (`target/images/<name>`), layer by layer.
fn changed_files(
    client: &scone::oci::registry::RegistryClient,
    reference: &str,
    found: &str,
    built: &str,
    target: &Path,
    name: &str,
) -> Vec<String> {
    let Ok(r) = Reference::parse(reference) else {
        return Vec::new();
    };
    let layers_of = |bytes: &[u8]| -> Vec<String> {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|m| {
                m["layers"].as_array().map(|l| {
                    l.iter()
                        .filter_map(|x| x["digest"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    };
    let Ok(theirs) = client.pull_manifest(&r.with_digest(found)) else {
        return Vec::new();
    };
    let layout = target.join("images").join(name);
    let Ok(ours) = scone::oci::layout::read_blob(&layout, built) else {
        return Vec::new();
    };
    let (theirs, ours) = (layers_of(&theirs.bytes), layers_of(&ours));
    let Ok(dir) = tempfile::tempdir() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        if t == o {
            continue;
        }
        let path = dir.path().join(format!("layer{k}"));
        let mine = scone::oci::layout::blob_path(&layout, o).ok();
        let (Ok(_), Some(mine)) = (client.pull_blob(&r, t, &path), mine) else {
            out.push(format!("layer {k} differs"));
            continue;
        };
        match (layers::file_digests(&mine), layers::file_digests(&path)) {
            (Some(a), Some(b)) => out.extend(layers::differences(&a, &b)),
            _ => out.push(format!("layer {k} differs")),
        }
    }
    if theirs.len() != ours.len() {
        out.push(format!("{} layers instead of {}", theirs.len(), ours.len()));
    }
    out
}
