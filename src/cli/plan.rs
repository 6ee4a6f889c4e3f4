//! `scone apply --plan`: build (outputs under `target/`; `scone.lock` is left
//! as it is), then say what `apply` would do and do none of it: the session
//! of each mesh as a unified diff against the one on CAS (secret values are
//! never shown: fixed values are placeholders in both; whether the session
//! changes is decided as the upload step decides it, fixed values and CAS's
//! salt in, and a fixed value that differs is named by its secret, see
//! `scone::cas::pending`; the secrets CAS generated that it no longer
//! declares, whose values apply deletes, are named), the images it would
//! push (those whose tag does not name this build's digest) and the
//! artifacts it would attach, and the chart values that change against the
//! values the last `apply` wrote (kept in `target/applied/<ns>.values.yaml`).
//!
//! Exit codes: 0, 1 failure, 2 bad manifest or usage, as everywhere in
//! scone; with `--detailed-exitcode` those of `terraform plan
//! -detailed-exitcode`: 0 nothing to apply, 2 changes to apply, 1 any error
//! (a bad manifest or usage too, so that 2 means one thing).

use anyhow::Context;
use scone::oci::digest::sha256_digest;
use scone::oci::reference::Reference;
use similar::{ChangeTag, TextDiff};
use std::path::Path;

use super::args::{ApplyArgs, MessageFormat};
use super::build::{build_keeping_lock, load_workspace, selected};
use super::deployed;

/// The exit code of `--detailed-exitcode` when the plan has changes.
pub const CHANGES_EXIT_CODE: i32 = 2;

/// Where the chart values the last `apply` wrote are kept.
fn applied_values(target: &Path, namespace: &str) -> std::path::PathBuf {
    target
        .join("applied")
        .join(format!("{namespace}.values.yaml"))
}

/// After a successful `apply` of the whole workspace: keeps the chart values
/// it wrote, what the next `apply --plan` compares with.
pub fn record_applied(ws: &scone::workspace::Workspace, target: &Path) -> anyhow::Result<()> {
    for mesh in &ws.meshes {
        let ns = mesh.namespace();
        let values = deployed::chart_dir(ws, target, ns).join("values.yaml");
        let Ok(bytes) = std::fs::read(&values) else {
            continue;
        };
        let path = applied_values(target, ns);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        scone::durable::write(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A unified diff of `old` (`a`) and `new` (`b`), empty when they are equal.
pub fn unified(old: &str, new: &str, a: &str, b: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(a, b)
        .to_string()
}

/// The changed lines of `old` → `new`, each with `-` or `+`.
pub fn line_changes(old: &str, new: &str) -> Vec<String> {
    TextDiff::from_lines(old, new)
        .iter_all_changes()
        .filter_map(|c| {
            let sign = match c.tag() {
                ChangeTag::Delete => "-",
                ChangeTag::Insert => "+",
                ChangeTag::Equal => return None,
            };
            Some(format!("{sign}{}", c.value().trim_end_matches('\n')))
        })
        .collect()
}

/// One thing `apply` would do.
enum Change {
    Session {
        namespace: String,
        place: String,
        action: &'static str,
        diff: String,
        /// What differs in the fixed values (names, never values).
        fixed: Option<String>,
        /// The secrets CAS generated that the session no longer declares:
        /// apply deletes their values (names, never values).
        dropped: Vec<String>,
        warning: Option<String>,
        /// What is worth knowing and no warning (an interrupted apply's
        /// session that apply updates).
        note: Option<String>,
    },
    Push {
        service: String,
        reference: String,
        digest: String,
        registry: Option<String>,
        missing_blobs: usize,
        attach: Vec<&'static str>,
    },
    Chart {
        path: String,
        diff: String,
    },
}

/// Runs `scone apply --plan`.
pub fn run(args: &ApplyArgs) -> anyhow::Result<i32> {
    let common = &args.build.common;
    let ws = load_workspace(common)?;
    let target = ws.target_dir(common.target_dir.as_deref());
    let only = selected(&ws, common)?;
    super::refusals::check_apply_only(&ws, &only)?;
    let whole = only.is_empty();
    let lock = scone::lockfile::Lockfile::load(&ws.root.join("scone.lock"))?;
    let project = super::build::project_of(&ws);
    let chart_values = |ns: &str| -> Option<String> {
        std::fs::read_to_string(deployed::chart_dir(&ws, &target, ns).join("values.yaml")).ok()
    };
    let outcome = build_keeping_lock(&args.build)?;
    if outcome.code != 0 {
        return Ok(outcome.code);
    }
    let mut changes = Vec::new();
    if whole {
        for mesh in &ws.meshes {
            let ns = mesh.namespace();
            let built = deployed::built_session(&target, ns)?;
            let place = deployed::cas_place(args.cas, mesh);
            let record = deployed::cas_session(args.cas, args.cas_ca.as_deref(), mesh)?;
            let new_name = format!("target/policy/{ns}.yaml");
            match record {
                None => changes.push(Change::Session {
                    namespace: ns.to_string(),
                    place: place.clone(),
                    action: "create",
                    diff: unified("", &built, "/dev/null", &new_name),
                    fixed: None,
                    dropped: Vec::new(),
                    warning: None,
                    note: None,
                }),
                Some(record) => {
                    // As the upload step decides: the session it would send
                    // (fixed values and CAS's salt in) against CAS's.
                    let cmp = deployed::compare_session(&ws, mesh, &record, &built)?;
                    if cmp.unchanged {
                        continue;
                    }
                    let known = lock.session.get(ns).and_then(|s| s.cas_hash.clone());
                    // As the upload step decides (`scone::cas::is_own_update`).
                    let (warning, note) = match known.filter(|k| *k != record.hash) {
                        None => (None, None),
                        Some(k) if scone::cas::is_own_update(&record, &k, Some(&project)) => (
                            None,
                            Some(format!(
                                "CAS's session {ns} is {}, which this project sent after the \
                                 apply scone.lock records ({k}; an interrupted apply?): apply \
                                 updates it from there",
                                record.hash
                            )),
                        ),
                        Some(k) => (
                            Some(format!(
                                "CAS's session {ns} is {}, not {k} as scone.lock says: someone \
                                 else changed it, and apply refuses to replace it: review that \
                                 change, then `scone apply --take-over {ns}` replaces it with \
                                 this project's",
                                record.hash
                            )),
                            None,
                        ),
                    };
                    changes.push(Change::Session {
                        namespace: ns.to_string(),
                        place: place.clone(),
                        action: "update",
                        diff: unified(
                            &cmp.rendered,
                            &built,
                            &format!("{place}: {ns} (hash {})", record.hash),
                            &new_name,
                        ),
                        fixed: cmp.fixed_note(),
                        dropped: scone::cas::dropped_generated(&record.yaml, &built),
                        warning,
                        note,
                    });
                }
            }
        }
    }
    if args.push {
        let client = deployed::registry(&args.build.insecure_registries)?;
        let in_mesh = |i: usize| {
            ws.meshes
                .iter()
                .any(|m| m.services.iter().any(|s| s.unit == i))
        };
        for (i, unit) in ws.services.iter().enumerate() {
            // What `apply --push` pushes: mesh services with the whole
            // workspace, services used alone (all, or those of -p).
            let pushed = if whole {
                true
            } else {
                only.contains(&i) && !in_mesh(i)
            };
            if !pushed {
                continue;
            }
            if let Some(change) =
                push_change(&client, &target, unit.name(), &unit.manifest.build.to.value)?
            {
                changes.push(change);
            }
        }
    }
    for mesh in ws.meshes.iter().filter(|_| whole) {
        let ns = mesh.namespace();
        let path = deployed::chart_dir(&ws, &target, ns).join("values.yaml");
        let new = chart_values(ns).unwrap_or_default();
        let old = std::fs::read_to_string(applied_values(&target, ns)).unwrap_or_default();
        if old != new {
            let shown = path
                .strip_prefix(&ws.root)
                .unwrap_or(&path)
                .display()
                .to_string();
            changes.push(Change::Chart {
                diff: unified(&old, &new, &format!("{shown} (last apply)"), &shown),
                path: shown,
            });
        }
    }
    print(&changes, common.message_format);
    Ok(if args.detailed_exitcode && !changes.is_empty() {
        CHANGES_EXIT_CODE
    } else {
        0
    })
}

/// What pushing a service's image would do; `None` when the registry has it
/// under its tag with this build's SBOM and provenance attached.
fn push_change(
    client: &scone::oci::registry::RegistryClient,
    target: &Path,
    name: &str,
    reference: &str,
) -> anyhow::Result<Option<Change>> {
    let parsed = Reference::parse(reference).with_context(|| format!("build.to `{reference}`"))?;
    let digest = deployed::built_image(target, name)
        .with_context(|| format!("the build left no image of {name}"))?;
    let registry = match client.pull_manifest(&parsed) {
        Ok(found) => Some(found.digest),
        Err(scone::oci::error::OciError::BaseNotFound { .. }) => None,
        Err(e) => return Err(e).with_context(|| format!("reading {reference}")),
    };
    let artifacts = [
        (
            "SBOM",
            target.join("sbom").join(format!("{name}.spdx.json")),
        ),
        (
            "provenance",
            target.join("provenance").join(format!("{name}.dsse.json")),
        ),
    ];
    let layout = target.join("images").join(name);
    if registry.as_deref() == Some(digest.as_str()) {
        let (referrers, _) = client.referrers(&parsed, &digest)?;
        let mut attached = Vec::new();
        for r in &referrers {
            if let Ok(m) = client.pull_manifest(&parsed.with_digest(&r.digest)) {
                let doc: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
                if let Some(d) = doc["layers"][0]["digest"].as_str() {
                    attached.push(d.to_string());
                }
            }
        }
        let attach: Vec<&'static str> = artifacts
            .iter()
            .filter(|(_, f)| std::fs::read(f).is_ok_and(|b| !attached.contains(&sha256_digest(&b))))
            .map(|(what, _)| *what)
            .collect();
        if attach.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Change::Push {
            service: name.to_string(),
            reference: reference.to_string(),
            digest,
            registry,
            missing_blobs: 0,
            attach,
        }));
    }
    let image = scone::oci::layout::read_layout(&layout, None)?;
    let mut missing = 0;
    for blob in image
        .layers
        .iter()
        .map(|l| l.digest.as_str())
        .chain(std::iter::once(image.config_digest.as_str()))
    {
        if !client.has_blob(&parsed, blob)? {
            missing += 1;
        }
    }
    Ok(Some(Change::Push {
        service: name.to_string(),
        reference: reference.to_string(),
        digest,
        registry,
        missing_blobs: missing,
        attach: artifacts
            .iter()
            .filter(|(_, f)| f.exists())
            .map(|(w, _)| *w)
            .collect(),
    }))
}

/// The plan's line of `dropped`, generated secrets the session no longer
/// declares: their names, and what apply does to their values.
fn dropped_text(dropped: &[String]) -> String {
    let what = match dropped.len() {
        1 => "its value is deleted and a new one is made if it is declared again",
        _ => "their values are deleted and new ones are made if they are declared again",
    };
    format!("{} (generated by CAS: {what})", dropped.join(", "))
}

fn print(changes: &[Change], format: MessageFormat) {
    let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
    let sessions = count(|c| matches!(c, Change::Session { .. }));
    let pushes = count(|c| matches!(c, Change::Push { .. }));
    let charts = count(|c| matches!(c, Change::Chart { .. }));
    if format == MessageFormat::Json {
        for c in changes {
            let v = match c {
                Change::Session {
                    namespace,
                    place,
                    action,
                    diff,
                    fixed,
                    dropped,
                    warning,
                    note,
                } => serde_json::json!({"reason": "plan-session", "namespace": namespace,
                    "cas": place, "action": action, "diff": diff, "fixed_values": fixed,
                    "dropped_secrets": dropped, "warning": warning, "note": note}),
                Change::Push {
                    service,
                    reference,
                    digest,
                    registry,
                    missing_blobs,
                    attach,
                } => serde_json::json!({"reason": "plan-push", "service": service,
                    "reference": reference, "digest": digest, "registry_digest": registry,
                    "missing_blobs": missing_blobs, "attach": attach}),
                Change::Chart { path, diff } => {
                    serde_json::json!({"reason": "plan-chart", "path": path, "diff": diff})
                }
            };
            println!("{v}");
        }
        println!(
            "{}",
            serde_json::json!({"reason": "plan-finished", "changes": changes.len(),
                "sessions": sessions, "pushes": pushes, "charts": charts})
        );
        return;
    }
    let mut out = String::new();
    for c in changes {
        match c {
            Change::Session {
                namespace,
                place,
                action,
                diff,
                fixed,
                dropped,
                warning,
                note,
            } => {
                out.push_str(&format!("Session {namespace} ({place}): {action}\n{diff}"));
                if let Some(f) = fixed {
                    out.push_str(&format!("fixed values: {f}\n"));
                }
                if !dropped.is_empty() {
                    out.push_str(&format!("secrets dropped: {}\n", dropped_text(dropped)));
                }
                if let Some(w) = warning {
                    out.push_str(&format!("warning: {w}\n"));
                }
                if let Some(n) = note {
                    out.push_str(&format!("note: {n}\n"));
                }
            }
            Change::Push {
                reference,
                digest,
                registry,
                missing_blobs,
                attach,
                ..
            } => {
                let was = match registry {
                    Some(d) if d == digest => "the registry has it".to_string(),
                    Some(d) => format!("the tag names {d} now"),
                    None => "not in the registry".to_string(),
                };
                let mut line = if registry.as_deref() == Some(digest.as_str()) {
                    format!("Attach to {reference} ({digest}, {was}):")
                } else {
                    format!("Push {reference} {digest} ({was}; {missing_blobs} blobs to upload)")
                };
                if !attach.is_empty() {
                    line.push_str(&format!(" + {}", attach.join(", ")));
                }
                out.push_str(&line);
                out.push('\n');
            }
            Change::Chart { path, diff } => {
                out.push_str(&format!("Chart {path}: values change\n{diff}"));
            }
        }
    }
    if changes.is_empty() {
        out.push_str("No changes: CAS, the registry and the chart are as this build makes them.\n");
    } else {
        out.push_str(&format!(
            "Plan: {sessions} session(s) to upload, {pushes} image(s) to push or attach to, \
             {charts} chart(s) whose values change.\n"
        ));
    }
    print!("{out}");
}
