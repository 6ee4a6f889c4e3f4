//! Picks the next edit: reads the tree as it is (teams, meshes, services, files,
//! links), draws a kind by weight, and makes a concrete edit of that kind; while the
//! tree is broken, a third of the edits repair it (see [`super::repair`]). Only the
//! tree and the seed decide, never a build: generating a list without building and
//! replaying it later gives the same edits.

use super::apply::leaf;
use super::edits::{Edit, How, KeyId, KeyRoute, Step, Store};
use super::initial::{IGNORE_FOLDER, IGNORE_LISTS, KEY_FOLDER, KEY_PATH, MEMBERS};
use super::repair::repairs;
use super::state::{Service, State};
use super::Rng;
use std::path::Path;

/// Every kind of edit, with its weight (how often it is drawn, out of the sum).
pub const KINDS: &[(&str, usize)] = &[
    ("edit-file", 12),
    ("append", 4),
    ("add-file", 4),
    ("remove-file", 3),
    ("touch", 5),
    ("touch-ahead", 2),
    ("rewrite", 3),
    ("chmod", 4),
    ("to-symlink", 3),
    ("from-symlink", 3),
    ("copy", 3),
    ("empty-dir", 2),
    ("comment", 3),
    ("add-service", 4),
    ("remove-service", 3),
    ("move-service", 2),
    ("rename-service", 2),
    ("add-mesh", 2),
    ("remove-mesh", 2),
    ("move-mesh", 2),
    ("namespace", 2),
    ("command", 3),
    ("local-env", 3),
    ("heap", 3),
    ("copy-list", 3),
    ("mesh-env", 3),
    ("members", 3),
    ("gitignore", 3),
    ("ignore-link", 2),
    ("decoy", 2),
    ("base", 3),
    ("key", 2),
    ("signing-config", 1),
    ("key-link", 2),
    ("env", 3),
    ("while-building", 4),
];

/// Draws edits for one sequence.
pub struct Generator {
    rng: Rng,
    /// The kinds it may draw (see `SCONE_DIFF_KINDS`).
    kinds: Vec<(&'static str, usize)>,
}

impl Generator {
    /// Edits of the given kinds (all when `only` is empty), from `seed`.
    pub fn new(seed: u64, only: &[String]) -> Generator {
        let kinds = KINDS
            .iter()
            .filter(|(k, _)| only.is_empty() || only.iter().any(|o| o == k))
            .copied()
            .collect();
        Generator {
            rng: Rng::new(seed),
            kinds,
        }
    }

    /// The next edit for the tree at `root`.
    pub fn next(&mut self, root: &Path) -> Step {
        let state = State::read(root);
        let pause = self.rng.chance(85);
        let fixes = repairs(&state, root);
        if !fixes.is_empty() && self.rng.chance(35) {
            return Step {
                kind: "repair",
                edit: self.rng.pick(&fixes).clone(),
                pause,
            };
        }
        for _ in 0..100 {
            let kind = draw(&mut self.rng, &self.kinds, false);
            if let Some(edit) = make(kind, &state, root, &mut self.rng, &self.kinds) {
                return Step { kind, edit, pause };
            }
        }
        Step {
            kind: "touch",
            edit: Edit::Touch {
                path: "scone.toml".into(),
            },
            pause,
        }
    }
}

/// A kind drawn by weight from `kinds` (for an edit made while a build runs:
/// neither `env` nor `while-building`).
fn draw(rng: &mut Rng, kinds: &[(&'static str, usize)], inner: bool) -> &'static str {
    let kinds: Vec<(&'static str, usize)> = kinds
        .iter()
        .filter(|(k, _)| !inner || !matches!(*k, "env" | "while-building"))
        .copied()
        .collect();
    let total: usize = kinds.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return "touch";
    }
    let mut at = rng.below(total);
    for (kind, weight) in kinds {
        if at < weight {
            return kind;
        }
        at -= weight;
    }
    "touch"
}

fn text(rng: &mut Rng) -> Vec<u8> {
    let len = 20 + rng.below(280);
    rng.text(len)
}

/// An item of `items`, None if there is none.
fn any<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| rng.pick(items))
}

/// A concrete edit of `kind` for the tree `s` (at `root`); None when the tree has
/// nothing it applies to.
fn make(
    kind: &'static str,
    s: &State,
    root: &Path,
    rng: &mut Rng,
    kinds: &[(&'static str, usize)],
) -> Option<Edit> {
    let meshes = s.meshes();
    let team_services = s.team_services();
    let service_files: Vec<&String> = s.files.iter().filter(|f| !f.starts_with("base/")).collect();
    Some(match kind {
        "edit-file" => {
            let path = any(rng, &service_files)?.to_string();
            let how = *rng.pick(&[How::Replace, How::Replace, How::InPlace, How::KeepMtime]);
            let content = match how {
                How::KeepMtime => {
                    let mut bytes = std::fs::read(root.join(&path)).ok()?;
                    (!bytes.is_empty()).then_some(())?;
                    let at = rng.below(bytes.len());
                    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
                    bytes
                }
                _ => text(rng),
            };
            Edit::Write { path, content, how }
        }
        "append" => Edit::Append {
            path: any(rng, &service_files)?.to_string(),
            text: format!("line {}\n", rng.below(1000)),
        },
        "add-file" => {
            let svc = any(rng, &s.services)?.dir.clone();
            let n = rng.below(4);
            let name = rng.pick(&[
                "lib/new{n}.txt",
                "lib/sub/new{n}.txt",
                "lib/deep/er/new{n}.txt",
                "lib/x{n}.tmp",
                "extra{n}.txt",
            ]);
            let path = format!("{svc}/{}", name.replace("{n}", &n.to_string()));
            Edit::Write {
                path,
                content: text(rng),
                how: How::Replace,
            }
        }
        "remove-file" => {
            let lib: Vec<&&String> = service_files
                .iter()
                .filter(|f| f.contains("/lib/"))
                .collect();
            let path = if !lib.is_empty() && rng.chance(80) {
                rng.pick(&lib).to_string()
            } else {
                any(rng, &service_files)?.to_string()
            };
            Edit::Remove { path }
        }
        "touch" => {
            let path = if rng.chance(25) && !s.dirs.is_empty() {
                any(rng, &s.dirs)?.clone()
            } else {
                any(rng, &s.files)?.clone()
            };
            Edit::Touch { path }
        }
        "touch-ahead" => Edit::TouchAhead {
            path: any(rng, &s.files)?.clone(),
        },
        "rewrite" => Edit::Rewrite {
            path: any(rng, &s.files)?.clone(),
        },
        "chmod" => {
            use std::os::unix::fs::PermissionsExt;
            let path = any(rng, &s.files)?.clone();
            let mode = std::fs::metadata(root.join(&path))
                .ok()?
                .permissions()
                .mode();
            Edit::Chmod {
                path,
                mode: if mode & 0o100 == 0 { 0o755 } else { 0o644 },
            }
        }
        "to-symlink" => {
            let svc = any(rng, &s.services)?;
            let prefix = format!("{}/", svc.dir);
            let own: Vec<&&String> = service_files
                .iter()
                .filter(|f| f.starts_with(&prefix))
                .collect();
            let path = any(rng, &own)?.to_string();
            let depth = path[prefix.len()..].matches('/').count();
            let up = "../".repeat(depth);
            let target = if rng.chance(10) {
                // Out of the service folder: a path-escape error.
                format!("{up}../../../base/etc/motd")
            } else {
                let other = any(rng, &own)?.to_string();
                (other != path).then_some(())?;
                format!("{up}{}", &other[prefix.len()..])
            };
            Edit::ToSymlink { path, target }
        }
        "from-symlink" => Edit::FromSymlink {
            path: any(rng, &s.links)?.clone(),
            content: text(rng),
        },
        "copy" => {
            let n = rng.below(3);
            if rng.chance(40) && !s.dirs.is_empty() {
                let from = any(rng, &s.dirs)?.clone();
                Edit::Copy {
                    to: format!("{from}-copy{n}"),
                    from,
                }
            } else {
                let from = any(rng, &service_files)?.to_string();
                let to = if rng.chance(30) {
                    // Into another service's copied folder.
                    format!("{}/lib/from-elsewhere{n}.txt", any(rng, &s.services)?.dir)
                } else {
                    match from.rsplit_once('.') {
                        Some((stem, ext)) if !stem.ends_with('/') => {
                            format!("{stem}-copy{n}.{ext}")
                        }
                        _ => format!("{from}-copy{n}"),
                    }
                };
                Edit::Copy { from, to }
            }
        }
        "empty-dir" => {
            // An empty folder in a service's copied `lib/` (at times one
            // deeper), or one made before removed again.
            let empty: Vec<&String> = s
                .dirs
                .iter()
                .filter(|d| d.rsplit('/').next().is_some_and(|n| n.starts_with("empty")))
                .collect();
            if !empty.is_empty() && rng.chance(40) {
                Edit::Remove {
                    path: any(rng, &empty)?.to_string(),
                }
            } else {
                let svc = any(rng, &s.services)?;
                let n = rng.below(3);
                let path = if rng.chance(30) {
                    format!("{}/lib/empty{n}/empty-inner", svc.dir)
                } else {
                    format!("{}/lib/empty{n}", svc.dir)
                };
                Edit::MakeDir { path }
            }
        }
        "comment" => {
            let mut docs = vec!["scone.toml".to_string()];
            docs.extend(s.services.iter().map(|v| format!("{}/service.yml", v.dir)));
            docs.extend(s.meshes().iter().map(|(t, _)| format!("apps/{t}/mesh.yml")));
            Edit::Append {
                path: rng.pick(&docs).clone(),
                text: format!("# note {}\n", rng.below(1000)),
            }
        }
        "add-service" => {
            let (team, _) = any(rng, &meshes)?;
            Edit::AddService {
                team: team.to_string(),
                svc: format!("s{}", s.next_id),
                id: s.next_id,
                by_manifest: rng.chance(50),
                seed: rng.next_u64(),
            }
        }
        "remove-service" => {
            let svc = any(rng, &team_services)?;
            let (team, leaf) = team_and_leaf(svc)?;
            Edit::RemoveService { team, svc: leaf }
        }
        "move-service" => {
            let svc = any(rng, &team_services)?;
            let (team, from) = team_and_leaf(svc)?;
            Edit::MoveService {
                team,
                from,
                to: format!("s{}", s.next_id),
            }
        }
        "rename-service" => {
            let svc = any(rng, &team_services)?;
            let (team, leaf) = team_and_leaf(svc)?;
            Edit::RenameService {
                team,
                svc: leaf,
                mesh_name: format!("r{}", s.next_id),
                build_name: format!("b{}", s.next_id),
            }
        }
        "add-mesh" => {
            let count = 1 + rng.below(2);
            Edit::AddMesh {
                team: format!("t{}", s.next_id),
                services: (0..count)
                    .map(|i| (format!("s{}", s.next_id + 1 + i), s.next_id + 1 + i))
                    .collect(),
                seed: rng.next_u64(),
            }
        }
        "remove-mesh" => {
            (s.teams.len() >= 2).then_some(())?;
            Edit::RemoveMesh {
                team: any(rng, &s.teams)?.0.clone(),
            }
        }
        "move-mesh" => Edit::MoveMesh {
            from: any(rng, &s.teams)?.0.clone(),
            to: format!("t{}", s.next_id),
        },
        "namespace" => {
            let (team, _) = any(rng, &meshes)?;
            let n = rng.below(3);
            Edit::SetNamespace {
                team: team.to_string(),
                namespace: if n == 0 {
                    team.to_string()
                } else {
                    format!("{team}-{n}")
                },
            }
        }
        "command" => {
            let command = if rng.chance(5) {
                "nothere main.cfg"
            } else {
                rng.pick(&[
                    "app main.cfg",
                    "app main.cfg --v2",
                    "app lib/a.txt",
                    "app --port 8080 main.cfg",
                ])
            };
            Edit::SetCommand {
                manifest: format!("{}/service.yml", any(rng, &s.services)?.dir),
                command: command.to_string(),
            }
        }
        "local-env" => {
            let name = rng.pick(&["SERVICE_ID", "EXTRA"]).to_string();
            Edit::SetLocal {
                manifest: format!("{}/service.yml", any(rng, &s.services)?.dir),
                name,
                value: format!("v{}", rng.below(5)),
            }
        }
        "heap" => {
            let value = if rng.chance(5) {
                "lots"
            } else {
                rng.pick(&["1M", "2M", "4M", "512K"])
            };
            Edit::SetLocal {
                manifest: format!("{}/service.yml", any(rng, &s.services)?.dir),
                name: "SCONE_HEAP".into(),
                value: value.into(),
            }
        }
        "copy-list" => {
            let svc = any(rng, &s.services)?;
            let mut copy: Vec<String> = ["main.cfg", "lib", "notes.md", "lib/sub", "lib/a.txt"]
                .iter()
                .filter(|c| root.join(&svc.dir).join(c).exists() && rng.chance(60))
                .map(|c| c.to_string())
                .collect();
            if rng.chance(5) {
                copy.push("gone.txt".into());
            }
            Edit::SetCopy {
                manifest: format!("{}/service.yml", svc.dir),
                copy,
            }
        }
        "mesh-env" => {
            let (team, _) = any(rng, &meshes)?;
            let (name, value) = match rng.below(10) {
                0..=4 => ("LOG_LEVEL", Some(*rng.pick(&["info", "debug", "warn"]))),
                5 => ("LOG_LEVEL", None),
                6..=8 => ("REGION", Some(*rng.pick(&["us", "eu", "ap"]))),
                _ => ("REGION", None),
            };
            Edit::SetMeshEnv {
                mesh: format!("apps/{team}/mesh.yml"),
                name: name.into(),
                value: value.map(String::from),
            }
        }
        "members" => {
            let members = match rng.below(5) {
                0 => vec![MEMBERS.to_string()],
                1 => vec![MEMBERS.to_string(), "solo/*/service.yml".into()],
                2 => vec!["apps/**/mesh.yml".into()],
                _ => {
                    let meshes = s.meshes();
                    let mut list: Vec<String> = meshes
                        .iter()
                        .filter(|_| rng.chance(60))
                        .map(|(t, _)| format!("apps/{t}/mesh.yml"))
                        .collect();
                    if list.is_empty() {
                        list.push(format!("apps/{}/mesh.yml", any(rng, &meshes)?.0));
                    }
                    list
                }
            };
            Edit::SetMembers { members }
        }
        "gitignore" => {
            let svc = any(rng, &team_services)?;
            let (team, leaf) = team_and_leaf(svc)?;
            let name = if rng.chance(75) {
                ".gitignore"
            } else {
                ".ignore"
            };
            match rng.below(10) {
                // At the root: the second manifests in attic/ stay hidden, or not.
                0..=5 => Edit::SetIgnore {
                    path: name.into(),
                    lines: match rng.below(5) {
                        0 => vec![],
                        1 => vec!["attic/".into(), "*.tmp".into()],
                        2 => vec!["attic/".into(), format!("{}/", svc.dir)],
                        3 => vec!["attic/".into(), "lib/sub/".into()],
                        _ => vec!["attic/".into()],
                    },
                },
                // In apps/ (no manifest there): hiding a service folder, or not.
                6 | 7 => Edit::SetIgnore {
                    path: format!("apps/{name}"),
                    lines: match rng.below(3) {
                        0 => vec![],
                        1 => vec![format!("{team}/{leaf}/")],
                        _ => vec!["*.tmp".into()],
                    },
                },
                // In a service folder.
                _ => Edit::SetIgnore {
                    path: format!("{}/{name}", any(rng, &s.services)?.dir),
                    lines: match rng.below(3) {
                        0 => vec![],
                        1 => vec!["*.tmp".into()],
                        _ => vec!["sub/".into()],
                    },
                },
            }
        }
        "ignore-link" => {
            let svc = any(rng, &team_services)?;
            let (team, leaf_name) = team_and_leaf(svc)?;
            let dir = if rng.chance(60) { "" } else { "apps/" };
            let name = if rng.chance(75) {
                ".gitignore"
            } else {
                ".ignore"
            };
            let path = format!("{dir}{name}");
            let up = if dir.is_empty() { "" } else { "../" };
            let lists = IGNORE_FOLDER.rsplit_once('/').map_or("", |(l, _)| l);
            let through = s
                .ignore_links
                .iter()
                .any(|(_, t)| t.contains(&format!("{IGNORE_FOLDER}/")));
            match rng.below(10) {
                // Through the folder link: re-point it.
                0 | 1 if through => Edit::IgnoreFolder {
                    to: match s.ignore_folder.as_deref() {
                        Some(l) if l == IGNORE_LISTS[0] => IGNORE_LISTS[1],
                        Some(l) if l == IGNORE_LISTS[1] => IGNORE_LISTS[0],
                        _ => rng.pick(IGNORE_LISTS),
                    }
                    .to_string(),
                },
                0..=2 => Edit::IgnoreLink {
                    path,
                    target: format!("{up}{IGNORE_FOLDER}/list"),
                },
                // The file behind a link written: hiding attic/ or not (the
                // second manifests there), a service folder, or nothing.
                3..=7 if !s.ignore_links.is_empty() => {
                    let (path, _) = rng.pick(&s.ignore_links).clone();
                    let lines = if path.starts_with("apps/") {
                        match rng.below(3) {
                            0 => vec![],
                            1 => vec![format!("{team}/{leaf_name}/")],
                            _ => vec!["*.tmp".into()],
                        }
                    } else {
                        match rng.below(5) {
                            0 => vec![],
                            1 => vec!["attic/".into(), "*.tmp".into()],
                            2 => vec!["attic/".into(), format!("{}/", svc.dir)],
                            3 => vec!["*.tmp".into()],
                            _ => vec!["attic/".into()],
                        }
                    };
                    Edit::WriteBehind {
                        path,
                        lines,
                        how: *rng.pick(&[How::Replace, How::InPlace]),
                    }
                }
                _ => Edit::IgnoreLink {
                    path,
                    target: format!("{up}{lists}/{}/list", rng.pick(IGNORE_LISTS)),
                },
            }
        }
        "decoy" if !s.decoys.is_empty() && rng.chance(40) => Edit::Remove {
            path: any(rng, &s.decoys)?.clone(),
        },
        "decoy" => {
            let by_image: Vec<&Service> = s
                .team_services()
                .into_iter()
                .filter(|v| {
                    s.meshes().iter().any(|(_, m)| {
                        m.services
                            .iter()
                            .any(|e| e.manifest.is_none() && e.image == v.doc.to)
                    })
                })
                .collect();
            Edit::AddDecoy {
                of: format!("{}/service.yml", any(rng, &by_image)?.dir),
                dir: format!("attic/old-{}", s.next_id),
            }
        }
        "base" => {
            let n = rng.below(3);
            match rng.below(5) {
                0 | 1 => Edit::Write {
                    path: "base/etc/motd".into(),
                    content: text(rng),
                    how: *rng.pick(&[How::Replace, How::InPlace]),
                },
                2 => Edit::Write {
                    path: format!("base/etc/extra{n}.conf"),
                    content: text(rng),
                    how: How::Replace,
                },
                3 => Edit::Remove {
                    path: format!("base/etc/extra{n}.conf"),
                },
                // The layer keeps every bit: not only the exec bit is an
                // edit. One draw, as when this was a coin for the exec bit,
                // so that a seed draws the same sequence as before.
                _ => {
                    let (path, mode) = [
                        ("base/etc/motd", 0o644),
                        ("base/etc/motd", 0o755),
                        ("base/etc/motd", 0o600),
                        ("base/etc/motd", 0o4755),
                        ("base/etc", 0o755),
                        ("base/etc", 0o1777),
                        ("base/etc", 0o700),
                    ][rng.below(100) % 7];
                    Edit::Chmod {
                        path: path.into(),
                        mode,
                    }
                }
            }
        }
        "key" => Edit::ReplaceKey {
            key: *rng.pick(&[KeyId::A, KeyId::B]),
        },
        "key-link" => {
            // The other store than the one the link (or the folder link on
            // the way) leads to now: the key the build signs with changes,
            // unless a `key` edit through a link made both hold the same.
            let store_of = |text: Option<&str>, suffix: &str| {
                [Store::A, Store::B]
                    .into_iter()
                    .find(|st| text == Some(format!("{}{suffix}", st.dir()).as_str()))
            };
            let through = format!("{}/key.pem", leaf(KEY_FOLDER));
            let direct = store_of(s.key_link.as_deref(), "/key.pem");
            let folder = (s.key_link.as_deref() == Some(through.as_str()))
                .then(|| store_of(s.key_folder.as_deref(), ""))
                .flatten();
            let flip = |rng: &mut Rng, now: Option<Store>| match now {
                Some(st) => st.other(),
                None => *rng.pick(&[Store::A, Store::B]),
            };
            let route = match rng.below(10) {
                0..=3 => KeyRoute::Direct(flip(rng, direct)),
                4..=7 => KeyRoute::Folder(flip(rng, folder)),
                _ => KeyRoute::Plain(*rng.pick(&[KeyId::A, KeyId::B])),
            };
            Edit::KeyLink { route }
        }
        "signing-config" => Edit::SetSigning {
            key: rng.chance(60).then(|| KEY_PATH.to_string()),
        },
        "env" => {
            if rng.chance(60) {
                Edit::SetEnv {
                    name: "SOURCE_DATE_EPOCH".into(),
                    value: rng
                        .pick(&[None, Some("0"), Some("1700000000"), Some("1800000000")])
                        .map(String::from),
                }
            } else {
                Edit::SetEnv {
                    name: "SCONE_SIGNING_KEY".into(),
                    value: Some(rng.pick(&["user-a", "user-b"]).to_string()),
                }
            }
        }
        "while-building" => {
            let first = make("edit-file", s, root, rng, kinds)?;
            let delay_ms = *rng.pick(&[0, 2, 5, 10, 20, 40, 80, 150]);
            let mut inner = None;
            for _ in 0..20 {
                let kind = draw(rng, kinds, true);
                inner = make(kind, s, root, rng, kinds);
                if inner.is_some() {
                    break;
                }
            }
            Edit::WhileBuilding {
                first: Box::new(first),
                edit: Box::new(inner?),
                delay_ms,
            }
        }
        other => panic!("unknown edit kind {other}"),
    })
}

fn team_and_leaf(svc: &Service) -> Option<(String, String)> {
    let team = svc.team.clone()?;
    let leaf = svc.dir.rsplit('/').next()?.to_string();
    Some((team, leaf))
}
