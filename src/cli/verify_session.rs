//! `scone verify`'s checks of a mesh's session: the hash CAS holds against
//! `scone.lock`, its content against the session this build renders, and its
//! fixed values against the service manifests' (compared as the `upload` step
//! compares, `scone::cas::pending`; named by secret, never shown). With `-p`
//! the mesh's policy is not built, so only the hash is compared
//! ([`session_hash_alone`]); the summary names what was not checked.

use scone::cas::pending::Comparison;
use scone::cas::SessionRecord;
use scone::lockfile::SessionLock;
use scone::verify::{Check, NONE};

use super::verify_sources::{CHANGED_BY_OTHERS, OWN_UPDATE, STALE_LOCK};

/// What the `fixed values` check expects, and finds when they match.
const MANIFESTS_VALUES: &str = "the service manifests' values";

/// A mesh's session on CAS (`deployed`: the record and how it compares with
/// the session the next apply would send) against the one this build makes
/// and `scone.lock`; `own`: CAS's session is this project's, sent by an
/// apply that stopped before it wrote `scone.lock` (`scone::cas::is_own_update`).
pub fn session_checks(
    ns: &str,
    built: &str,
    deployed: Option<(&SessionRecord, &Comparison)>,
    locked: Option<&SessionLock>,
    own: bool,
    place: &str,
) -> Vec<Check> {
    let built_hash = scone::cas::session::content_hash(built);
    let Some((record, cmp)) = deployed else {
        return vec![no_session(ns, &built_hash, place)];
    };
    let cas_content = scone::cas::session::content_hash(&cmp.rendered);
    let lock_hash = locked.and_then(|l| l.cas_hash.as_deref());
    let by_lock = lock_hash == Some(record.hash.as_str());
    let content_cause = || {
        if by_lock {
            "the sources changed since the last apply: CAS holds the session scone.lock \
             recorded; run `scone apply`"
                .to_string()
        } else if own {
            OWN_UPDATE.to_string()
        } else {
            CHANGED_BY_OTHERS.to_string()
        }
    };
    let mut checks = vec![
        hash_check(ns, record, lock_hash, Some(cmp.unchanged), own, place),
        Check::compare(
            ns,
            "session content",
            place,
            &built_hash,
            Some(&cas_content),
            content_cause,
        ),
    ];
    // Which lines differ, for the cause of a content mismatch.
    if cas_content != built_hash {
        if let Some(last) = checks.last_mut() {
            let changed: Vec<String> = super::plan::line_changes(&cmp.rendered, built)
                .into_iter()
                .take(6)
                .collect();
            if let Some(cause) = &mut last.cause {
                cause.push_str(&format!("; lines: {}", changed.join(" | ")));
            }
        }
    }
    if cmp.has_fixed {
        checks.push(fixed_check(ns, cmp, by_lock || own, place));
    }
    checks
}

/// `scone verify -p`'s check of the session of a mesh that deploys a
/// selected service: the hash CAS holds against `scone.lock` (or that CAS
/// holds one at all). Its content and fixed values need the mesh's policy,
/// which `-p` does not build: the caller names them as not checked.
pub fn session_hash_alone(
    ns: &str,
    record: Option<&SessionRecord>,
    locked: Option<&SessionLock>,
    own: bool,
    place: &str,
) -> Check {
    let lock_hash = locked.and_then(|l| l.cas_hash.as_deref());
    match record {
        Some(record) => hash_check(ns, record, lock_hash, None, own, place),
        None => no_session(ns, lock_hash.unwrap_or("a session"), place),
    }
}

/// The check of a mesh whose session CAS does not hold.
fn no_session(ns: &str, expected: &str, place: &str) -> Check {
    Check::compare(ns, "session", place, expected, None, || {
        "CAS has no such session: it was never applied there; run `scone apply`".into()
    })
}

/// The hash CAS holds against `scone.lock`'s (`unchanged`: whether CAS's
/// session is the one this build makes; `None`: not known, with `-p`).
fn hash_check(
    ns: &str,
    record: &SessionRecord,
    lock_hash: Option<&str>,
    unchanged: Option<bool>,
    own: bool,
    place: &str,
) -> Check {
    let cause = || match unchanged {
        _ if lock_hash.is_none() => "scone.lock records no session hash: it was never applied \
            from this checkout, or scone.lock was not committed after `scone apply`"
            .to_string(),
        Some(true) => STALE_LOCK.to_string(),
        _ if own => OWN_UPDATE.to_string(),
        Some(false) => CHANGED_BY_OTHERS.to_string(),
        None => "the session in CAS is not the one scone.lock records: it was changed in CAS \
            by someone else since, or scone.lock is stale (`scone verify` without -p tells \
            which); review it with `scone cas session`, then `scone apply`"
            .to_string(),
    };
    Check::compare(
        ns,
        "session hash",
        place,
        lock_hash.unwrap_or(NONE),
        Some(&record.hash),
        cause,
    )
}

/// The fixed values CAS holds against the service manifests'. It fails when
/// a value CAS holds differs, when CAS holds none for a fixed secret (a
/// secret made fixed since: the content check shows that line too), or when
/// the template is the same and the session apply would send still is not
/// CAS's (no salt scone can read: the values could not be compared).
fn fixed_check(ns: &str, cmp: &Comparison, ours: bool, place: &str) -> Check {
    let names = |list: &[String]| {
        list.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ok = cmp.fixed_differ.is_empty()
        && cmp.fixed_missing.is_empty()
        && (cmp.unchanged || !cmp.same_template);
    let changed = if ours {
        "the service manifests' fixed values differ from what CAS holds: a fixed value changed \
         since the last apply (CAS holds the session this project last sent); run `scone apply` \
         (values are not shown)"
    } else {
        "the service manifests' fixed values differ from what CAS holds: a fixed value changed \
         in a service manifest, or the session was changed in CAS by someone else (its hash is \
         not the one scone.lock records); review it with `scone cas session`, then `scone \
         apply` (values are not shown)"
    };
    let (found, cause) = if ok {
        (MANIFESTS_VALUES.to_string(), String::new())
    } else if !cmp.fixed_differ.is_empty() {
        (
            format!("other values of {}", names(&cmp.fixed_differ)),
            changed.to_string(),
        )
    } else if !cmp.fixed_missing.is_empty() && !cmp.same_template {
        (
            format!("no value of {}", names(&cmp.fixed_missing)),
            format!(
                "CAS's session holds no fixed value for {}: a service manifest gave the secret \
                 a fixed value since the session was applied; run `scone apply`",
                names(&cmp.fixed_missing)
            ),
        )
    } else if !cmp.salted {
        (
            "not compared (no salt in CAS's session)".to_string(),
            "CAS's session holds no salt scone can read, so its fixed values are not compared \
             for this CAS; `scone apply` sends them again, with a new salt"
                .to_string(),
        )
    } else {
        ("other values".to_string(), changed.to_string())
    };
    Check::holds(
        ns,
        "fixed values",
        place,
        MANIFESTS_VALUES,
        found,
        ok,
        || cause,
    )
}
