//! The edits that undo a breakage some edit made (a symlink out of its service, an
//! undefined global, a missing entry binary, an invalid `SCONE_HEAP`, a `copy:` path
//! that is gone, a second manifest for an image no longer hidden, a `members` path
//! that matches nothing). Any one of them fails every build of the workspace, so the
//! generator draws a repair now and then: a sequence spends a few builds failing, not
//! most of them.

use super::edits::Edit;
use super::initial::MEMBERS;
use super::state::State;
use std::path::Path;

/// The repairs the tree at `root` (`state`) needs, in a stable order.
pub fn repairs(state: &State, root: &Path) -> Vec<Edit> {
    let mut out = Vec::new();
    for link in &state.links {
        let target = std::fs::read_link(root.join(link)).unwrap_or_default();
        if target.to_string_lossy().contains("base/") {
            out.push(Edit::FromSymlink {
                path: link.clone(),
                content: b"repaired\n".to_vec(),
            });
        }
    }
    for (team, mesh) in &state.teams {
        let Some(mesh) = mesh else { continue };
        if !mesh.env.iter().any(|(n, _)| n == "LOG_LEVEL") {
            out.push(Edit::SetMeshEnv {
                mesh: format!("apps/{team}/mesh.yml"),
                name: "LOG_LEVEL".into(),
                value: Some("info".into()),
            });
        }
    }
    for svc in &state.services {
        let manifest = format!("{}/service.yml", svc.dir);
        if !svc.doc.command.starts_with("app ") {
            out.push(Edit::SetCommand {
                manifest: manifest.clone(),
                command: "app main.cfg".into(),
            });
        }
        if svc
            .doc
            .locals
            .iter()
            .any(|(n, v)| n == "SCONE_HEAP" && v == "lots")
        {
            out.push(Edit::SetLocal {
                manifest: manifest.clone(),
                name: "SCONE_HEAP".into(),
                value: "1M".into(),
            });
        }
        let dir = root.join(&svc.dir);
        let present: Vec<String> = svc
            .doc
            .copy
            .iter()
            .filter(|c| dir.join(c).symlink_metadata().is_ok())
            .cloned()
            .collect();
        if present.len() != svc.doc.copy.len() {
            out.push(Edit::SetCopy {
                manifest,
                copy: present,
            });
        }
    }
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let root_lines = format!("{}\n{}", read(".gitignore"), read(".ignore"));
    let hides_attic = root_lines.lines().any(|l| l == "attic/");
    // A service folder hidden from the root (`apps/t1/s2/`) or from apps/ (`t1/s2/`).
    let hides_a_service = |text: &str, prefix: &str| {
        text.lines()
            .any(|l| l.starts_with(prefix) && l.matches('/').count() >= 2)
    };
    if !hides_attic && !state.decoys.is_empty() || hides_a_service(&root_lines, "apps/") {
        out.push(Edit::SetIgnore {
            path: ".gitignore".into(),
            lines: vec!["attic/".into()],
        });
        out.push(Edit::SetIgnore {
            path: ".ignore".into(),
            lines: Vec::new(),
        });
    }
    for name in [".gitignore", ".ignore"] {
        let path = format!("apps/{name}");
        if hides_a_service(&read(&path), "t") {
            out.push(Edit::SetIgnore {
                path,
                lines: Vec::new(),
            });
        }
    }
    if let Some(config) = &state.config {
        let gone = config
            .members
            .iter()
            .any(|m| !m.contains('*') && !root.join(m).is_file());
        if gone {
            out.push(Edit::SetMembers {
                members: vec![MEMBERS.into()],
            });
        }
    }
    out
}
