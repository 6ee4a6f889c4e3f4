//! What the generator sees of a tree: teams and their Meshfiles, services and their
//! manifests, the files, links and folders in service folders and `base/`, the
//! second manifests in `attic/`, the links in front of the signing key and of
//! the ignore files, and the next free number for a name.

use super::initial::{IGNORE_FOLDER, KEY_FOLDER, KEY_PATH};
use super::layout::{ConfigDoc, MeshDoc, ServiceDoc};
use std::path::Path;

/// One service folder: `apps/<team>/<dir>` (or `solo/tool`) and its manifest.
#[derive(Clone, Debug)]
pub struct Service {
    pub dir: String,
    pub doc: ServiceDoc,
    /// The team (None: the solo service).
    pub team: Option<String>,
}

/// What the generator sees of the tree.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// `apps/<team>/` folders and their Meshfile (if parseable).
    pub teams: Vec<(String, Option<MeshDoc>)>,
    pub services: Vec<Service>,
    pub config: Option<ConfigDoc>,
    /// Regular files in service folders (not the manifests) and in `base/`.
    pub files: Vec<String>,
    /// Symlinks in service folders.
    pub links: Vec<String>,
    /// Folders in service folders (`lib`, `lib/sub`, …).
    pub dirs: Vec<String>,
    /// The folders under `attic/` (second manifests of image-linked services).
    pub decoys: Vec<String>,
    /// One more than every number in a team, folder or build name.
    pub next_id: usize,
    /// Where the signing key's path leads when it is a symlink (the link's text).
    pub key_link: Option<String>,
    /// Where the folder link `keys/current` points, if there is one.
    pub key_folder: Option<String>,
    /// Where the folder link `ignores/current` points, if there is one.
    pub ignore_folder: Option<String>,
    /// The ignore files at the root and in `apps/` that are symlinks, with their
    /// text.
    pub ignore_links: Vec<(String, String)>,
}

/// The ignore files an `ignore-link` edit may make links.
pub const LINKABLE_IGNORES: &[&str] = &[".gitignore", ".ignore", "apps/.gitignore", "apps/.ignore"];

fn link_text(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_link(root.join(rel))
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

fn number(name: &str) -> usize {
    let digits: String = name
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

impl State {
    pub fn read(root: &Path) -> State {
        let mut state = State {
            config: std::fs::read_to_string(root.join("scone.toml"))
                .ok()
                .and_then(|t| ConfigDoc::parse(&t)),
            next_id: 1,
            key_link: link_text(root, KEY_PATH),
            key_folder: link_text(root, KEY_FOLDER),
            ignore_folder: link_text(root, IGNORE_FOLDER),
            ignore_links: LINKABLE_IGNORES
                .iter()
                .filter_map(|p| Some((p.to_string(), link_text(root, p)?)))
                .collect(),
            ..State::default()
        };
        let mut dirs = Vec::new();
        for team in sorted_dirs(&root.join("apps")) {
            let mesh = std::fs::read_to_string(root.join("apps").join(&team).join("mesh.yml"))
                .ok()
                .and_then(|t| MeshDoc::parse(&t));
            for svc in sorted_dirs(&root.join("apps").join(&team)) {
                dirs.push((format!("apps/{team}/{svc}"), Some(team.clone())));
            }
            state.next_id = state.next_id.max(number(&team) + 1);
            state.teams.push((team, mesh));
        }
        dirs.push(("solo/tool".to_string(), None));
        state.decoys = sorted_dirs(&root.join("attic"))
            .into_iter()
            .map(|d| format!("attic/{d}"))
            .collect();
        for (dir, team) in dirs {
            let Some(doc) = std::fs::read_to_string(root.join(&dir).join("service.yml"))
                .ok()
                .and_then(|t| ServiceDoc::parse(&t))
            else {
                continue;
            };
            let leaf = dir.rsplit('/').next().unwrap_or_default();
            state.next_id = state
                .next_id
                .max(number(leaf) + 1)
                .max(number(&doc.name) + 1);
            for entry in walkdir::WalkDir::new(root.join(&dir))
                .min_depth(1)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok)
            {
                let path = rel(root, entry.path());
                let kind = entry.file_type();
                if kind.is_symlink() {
                    state.links.push(path);
                } else if kind.is_dir() {
                    state.dirs.push(path);
                } else if !path.ends_with("/service.yml") {
                    state.files.push(path);
                }
            }
            state.services.push(Service { dir, doc, team });
        }
        for entry in walkdir::WalkDir::new(root.join("base"))
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            state.files.push(rel(root, entry.path()));
        }
        state
    }

    pub fn meshes(&self) -> Vec<(&String, &MeshDoc)> {
        self.teams
            .iter()
            .filter_map(|(t, m)| m.as_ref().map(|m| (t, m)))
            .collect()
    }

    pub fn team_services(&self) -> Vec<&Service> {
        self.services.iter().filter(|s| s.team.is_some()).collect()
    }
}

fn sorted_dirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
