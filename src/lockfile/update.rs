//! The lock a build leaves: the last one with this build's results over it,
//! and — when the build planned the whole workspace — nothing else, as
//! `cargo` prunes `Cargo.lock` of packages no longer in the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{BaseLock, ImageLock, Lockfile};
use crate::engine::{ActionRecord, StepId};
use crate::steps::base::BaseRecord;
use crate::steps::image::ImageRecord;
use crate::steps::policy::PolicyRecord;
use crate::steps::sign::SignRecord;
use crate::steps::upload::UploadRecord;

/// `old` updated with the `results` of a build's steps (those it reused
/// left their entries as the last build wrote them). With `planned` (every
/// step of a build that planned the whole workspace), entries of bases,
/// services and meshes it did not plan are dropped.
pub fn updated(
    old: &Lockfile,
    results: &BTreeMap<StepId, Arc<ActionRecord>>,
    planned: Option<&[StepId]>,
) -> Lockfile {
    let mut lock = old.clone();
    let record = |kind: &str, unit: &str| {
        results
            .get(&StepId::new(kind, unit))
            .map(|r| r.record.clone())
    };
    if let Some(planned) = planned {
        let units = |kind: &str| -> BTreeSet<&str> {
            planned
                .iter()
                .filter(|id| id.kind == kind)
                .map(|id| id.unit.as_str())
                .collect()
        };
        let (images, sessions) = (units("image"), units("policy"));
        // A base's entry is keyed by its reference, its step by a graph name:
        // kept when a base step that is planned recorded it now, or left it.
        let bases: BTreeSet<String> = planned
            .iter()
            .filter(|id| id.kind == "base")
            .filter_map(|id| match results.get(id) {
                Some(r) => serde_json::from_value::<BaseRecord>(r.record.clone())
                    .ok()
                    .map(|b| b.reference),
                None => Some(id.unit.clone()),
            })
            .collect();
        lock.image.retain(|name, _| images.contains(name.as_str()));
        lock.session.retain(|ns, _| sessions.contains(ns.as_str()));
        lock.base.retain(|reference, _| bases.contains(reference));
    }
    for (id, rec) in results {
        if id.kind == "base" {
            if let Ok(base) = serde_json::from_value::<BaseRecord>(rec.record.clone()) {
                if base.reference.starts_with("dir:") || base.reference == "scratch" {
                    continue;
                }
                lock.base.insert(
                    base.reference,
                    BaseLock {
                        digest: base.digest,
                    },
                );
            }
        }
    }
    // Only services whose steps ran can have changed: those whose image or
    // sign step has a result.
    let ran: BTreeSet<&str> = results
        .keys()
        .filter(|id| id.kind == "image" || id.kind == "sign")
        .map(|id| id.unit.as_str())
        .collect();
    for name in ran {
        let image =
            record("image", name).and_then(|r| serde_json::from_value::<ImageRecord>(r).ok());
        let sign = record("sign", name).and_then(|r| serde_json::from_value::<SignRecord>(r).ok());
        // A step reused from the last build (an image, when only the signing
        // key changed) left the fields it decides as that build wrote them.
        let old = lock.image.get(name);
        let entry = match (image, sign) {
            (Some(image), Some(sign)) => ImageLock {
                reference: image.reference,
                digest: image.manifest_digest,
                mrenclave: sign.mrenclave,
                mrsigner: sign.mrsigner,
                fspf_tag: sign.fspf_tag,
            },
            (Some(image), None) => match old {
                Some(old) => ImageLock {
                    reference: image.reference,
                    digest: image.manifest_digest,
                    ..old.clone()
                },
                None => continue,
            },
            (None, Some(sign)) => match old {
                Some(old) => ImageLock {
                    mrenclave: sign.mrenclave,
                    mrsigner: sign.mrsigner,
                    fspf_tag: sign.fspf_tag,
                    ..old.clone()
                },
                None => continue,
            },
            (None, None) => continue,
        };
        lock.image.insert(name.to_string(), entry);
    }
    let namespaces = results
        .keys()
        .filter(|id| id.kind == "policy")
        .map(|id| id.unit.as_str());
    for ns in namespaces {
        let Some(Ok(policy)) = record("policy", ns).map(serde_json::from_value::<PolicyRecord>)
        else {
            continue;
        };
        let entry = lock.session.entry(ns.to_string()).or_default();
        entry.content = policy.hash;
        if let Some(Ok(upload)) = record("upload", ns).map(serde_json::from_value::<UploadRecord>) {
            entry.cas_hash = Some(upload.hash);
        }
    }
    lock
}
