//! What one edit is: a concrete change to the workspace (paths, bytes, values),
//! shown as one readable line (applying it is in [`super::apply`]).

use super::initial::{IGNORE_FOLDER, KEY_FOLDER, KEY_PATH};
use super::layout::image;
use std::collections::BTreeMap;
use std::fmt;

/// The two signing keys an edit may put in place: A is the public sig1 test key,
/// B another RSA-3072 key with e = 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyId {
    A,
    B,
}

/// The PEM bytes of the two keys.
#[derive(Clone, Debug)]
pub struct Keys {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
}

impl Keys {
    pub fn get(&self, id: KeyId) -> &[u8] {
        match id {
            KeyId::A => &self.a,
            KeyId::B => &self.b,
        }
    }
}

/// One of the two folders that keep a signing key behind a link (`key-link`):
/// `keys/store-a/key.pem` and `keys/store-b/key.pem`, written with keys A and B
/// when missing (a `key` edit through a link may change them later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    A,
    B,
}

impl Store {
    /// The folder's name, in `keys/`.
    pub fn dir(self) -> &'static str {
        match self {
            Store::A => "store-a",
            Store::B => "store-b",
        }
    }

    pub fn other(self) -> Store {
        match self {
            Store::A => Store::B,
            Store::B => Store::A,
        }
    }
}

/// What a `key-link` edit makes of the signing key's path ([`KEY_PATH`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRoute {
    /// A plain file again (a new inode), holding this key.
    Plain(KeyId),
    /// A relative link to `store-x/key.pem`.
    Direct(Store),
    /// A relative link to `current/key.pem`, and the folder link [`KEY_FOLDER`]
    /// pointed at `store-x` (a new link renamed over the old one, as kubelet
    /// rotates a Secret mount): with the key's link already there, only the
    /// folder link changes.
    Folder(Store),
}

/// The environment variables the edits set, by name (absent: unset). The value of
/// `SCONE_SIGNING_KEY` is a key name (`user-a`, `user-b`) the runner turns into a path.
pub type Env = BTreeMap<String, String>;

/// How a file's new bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// A new file beside it, renamed over it (a new inode), as most editors save.
    Replace,
    /// Truncated and written through the same inode.
    InPlace,
    /// In place, the same size, and the old mtime set again (as `cp -p` or an
    /// archive extraction would): only the ctime tells.
    KeepMtime,
}

/// One edit. Paths are relative to the workspace root, with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    AddService {
        team: String,
        svc: String,
        id: usize,
        by_manifest: bool,
        seed: u64,
    },
    RemoveService {
        team: String,
        svc: String,
    },
    MoveService {
        team: String,
        from: String,
        to: String,
    },
    RenameService {
        team: String,
        svc: String,
        mesh_name: String,
        build_name: String,
    },
    AddMesh {
        team: String,
        services: Vec<(String, usize)>,
        seed: u64,
    },
    RemoveMesh {
        team: String,
    },
    MoveMesh {
        from: String,
        to: String,
    },
    SetNamespace {
        team: String,
        namespace: String,
    },
    Write {
        path: String,
        content: Vec<u8>,
        how: How,
    },
    /// Appends through the same inode (a comment line to a manifest, a line to a file).
    Append {
        path: String,
        text: String,
    },
    Touch {
        path: String,
    },
    /// The same bytes, dated an hour ahead of the clock (an archive made on
    /// a machine whose clock is ahead); a later `KeepMtime` write sets that
    /// date again.
    TouchAhead {
        path: String,
    },
    Rewrite {
        path: String,
    },
    /// A file's or folder's permission bits (of a `dir:` base's, every one
    /// counts: its layer keeps them).
    Chmod {
        path: String,
        mode: u32,
    },
    ToSymlink {
        path: String,
        target: String,
    },
    FromSymlink {
        path: String,
        content: Vec<u8>,
    },
    Copy {
        from: String,
        to: String,
    },
    Remove {
        path: String,
    },
    /// An empty folder (and its parents): in a copied folder, the layer holds it.
    MakeDir {
        path: String,
    },
    SetCommand {
        manifest: String,
        command: String,
    },
    SetLocal {
        manifest: String,
        name: String,
        value: String,
    },
    SetCopy {
        manifest: String,
        copy: Vec<String>,
    },
    SetMeshEnv {
        mesh: String,
        name: String,
        value: Option<String>,
    },
    SetMembers {
        members: Vec<String>,
    },
    SetSigning {
        key: Option<String>,
    },
    /// Writes an ignore file (`.gitignore` or `.ignore`, both read by the discovery
    /// walk); no lines: removes it.
    SetIgnore {
        path: String,
        lines: Vec<String>,
    },
    AddDecoy {
        of: String,
        dir: String,
    },
    /// Writes the key's bytes to [`KEY_PATH`] in place, through its links when
    /// it is one (then the file behind it changes).
    ReplaceKey {
        key: KeyId,
    },
    /// The signing key's path made a link to a key kept elsewhere in `keys/`
    /// (directly or through a folder link), a link re-pointed, or a plain file
    /// again.
    KeyLink {
        route: KeyRoute,
    },
    /// An ignore file (at the root or in `apps/`) made a relative symlink to
    /// `target`: `ignores/one/list` or `ignores/two/list` (both written with
    /// `attic/` lines when missing), or `ignores/current/list` through the folder
    /// link (made, pointing at `one`, when missing).
    IgnoreLink {
        path: String,
        target: String,
    },
    /// The folder link [`IGNORE_FOLDER`] pointed at `ignores/<to>` (a new link
    /// renamed over the old one).
    IgnoreFolder {
        to: String,
    },
    /// Writes the file the ignore file `path`, a link, leads to (through every
    /// link on the way, all kept); no lines: an empty file. Only `Replace` (a new
    /// file renamed over the one behind) and `InPlace`.
    WriteBehind {
        path: String,
        lines: Vec<String>,
        how: How,
    },
    SetEnv {
        name: String,
        value: Option<String>,
    },
    /// `first` (which gives the build work), then a build, and `edit` applied
    /// while it runs, `delay_ms` after it was started.
    WhileBuilding {
        first: Box<Edit>,
        edit: Box<Edit>,
        delay_ms: u64,
    },
}

/// One entry of an edit list: the edit, the kind the generator chose it as, and
/// whether the build waits out the racy window first (30 ms) or starts at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub kind: &'static str,
    pub edit: Edit,
    pub pause: bool,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.edit)?;
        if !self.pause {
            write!(f, " [build at once]")?;
        }
        Ok(())
    }
}

pub fn mesh_path(team: &str) -> String {
    format!("apps/{team}/mesh.yml")
}

pub fn svc_dir(team: &str, svc: &str) -> String {
    format!("apps/{team}/{svc}")
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::AddService {
                team,
                svc,
                id,
                by_manifest,
                ..
            } => write!(
                f,
                "add service {} (build.name b{id}, linked by {}) to {}",
                svc_dir(team, svc),
                if *by_manifest { "manifest:" } else { "image" },
                mesh_path(team)
            ),
            Edit::RemoveService { team, svc } => write!(
                f,
                "remove service {} and its entry in {}",
                svc_dir(team, svc),
                mesh_path(team)
            ),
            Edit::MoveService { team, from, to } => write!(
                f,
                "move service folder {} to {} (and its manifest: link)",
                svc_dir(team, from),
                svc_dir(team, to)
            ),
            Edit::RenameService {
                team,
                svc,
                mesh_name,
                build_name,
            } => write!(
                f,
                "rename service {}: mesh name {mesh_name}, build.name {build_name}, image {}",
                svc_dir(team, svc),
                image(team, mesh_name)
            ),
            Edit::AddMesh { team, services, .. } => {
                let names: Vec<&str> = services.iter().map(|(s, _)| s.as_str()).collect();
                write!(
                    f,
                    "add mesh {} with services {}",
                    mesh_path(team),
                    names.join(", ")
                )
            }
            Edit::RemoveMesh { team } => write!(f, "remove mesh apps/{team}/ (the whole folder)"),
            Edit::MoveMesh { from, to } => write!(f, "move mesh folder apps/{from}/ to apps/{to}/"),
            Edit::SetNamespace { team, namespace } => write!(
                f,
                "set policy.namespace of {} to {namespace}",
                mesh_path(team)
            ),
            Edit::Write { path, content, how } => {
                let how = match how {
                    How::Replace => "a new file renamed over it",
                    How::InPlace => "in place",
                    How::KeepMtime => "in place, same size, old mtime set again",
                };
                write!(f, "write {} bytes to {path} ({how})", content.len())
            }
            Edit::Append { path, text } => write!(f, "append {text:?} to {path}"),
            Edit::Touch { path } => write!(f, "touch {path} (same bytes, new mtime)"),
            Edit::TouchAhead { path } => {
                write!(
                    f,
                    "touch {path} an hour ahead (same bytes, mtime in the future)"
                )
            }
            Edit::Rewrite { path } => write!(f, "write the same bytes to {path} again (new inode)"),
            Edit::Chmod { path, mode } => write!(f, "chmod {mode:o} {path}"),
            Edit::ToSymlink { path, target } => {
                write!(f, "replace {path} by a symlink to {target}")
            }
            Edit::FromSymlink { path, content } => write!(
                f,
                "replace the symlink {path} by a file of {} bytes",
                content.len()
            ),
            Edit::Copy { from, to } => write!(f, "copy {from} to {to}"),
            Edit::Remove { path } => write!(f, "remove {path}"),
            Edit::MakeDir { path } => write!(f, "make the empty folder {path}"),
            Edit::SetCommand { manifest, command } => {
                write!(f, "set build.command of {manifest} to \"{command}\"")
            }
            Edit::SetLocal {
                manifest,
                name,
                value,
            } => {
                write!(f, "set the local {name}=\"{value}\" in {manifest}")
            }
            Edit::SetCopy { manifest, copy } => {
                write!(f, "set build.copy of {manifest} to [{}]", copy.join(", "))
            }
            Edit::SetMeshEnv {
                mesh,
                name,
                value: Some(v),
            } => {
                write!(f, "set env {name}=\"{v}\" in {mesh}")
            }
            Edit::SetMeshEnv {
                mesh,
                name,
                value: None,
            } => {
                write!(f, "remove env {name} from {mesh}")
            }
            Edit::SetMembers { members } => {
                write!(f, "set scone.toml members = [{}]", members.join(", "))
            }
            Edit::SetSigning { key: Some(k) } => write!(f, "set scone.toml [signing] key = {k}"),
            Edit::SetSigning { key: None } => write!(
                f,
                "remove [signing] key from scone.toml (SCONE_SIGNING_KEY applies)"
            ),
            Edit::SetIgnore { path, lines } if lines.is_empty() => write!(f, "remove {path}"),
            Edit::SetIgnore { path, lines } => {
                write!(f, "write {path}: {}", lines.join(" | "))
            }
            Edit::AddDecoy { of, dir } => {
                write!(f, "add {dir}/service.yml building the same image as {of}")
            }
            Edit::ReplaceKey { key } => {
                write!(
                    f,
                    "replace {KEY_PATH} in place with key {key:?} (through its links, if any)"
                )
            }
            Edit::KeyLink {
                route: KeyRoute::Plain(key),
            } => write!(f, "make {KEY_PATH} a plain file holding key {key:?}"),
            Edit::KeyLink {
                route: KeyRoute::Direct(store),
            } => write!(f, "make {KEY_PATH} a symlink to {}/key.pem", store.dir()),
            Edit::KeyLink {
                route: KeyRoute::Folder(store),
            } => write!(
                f,
                "point the folder link {KEY_FOLDER} at {}, {KEY_PATH} a symlink to current/key.pem",
                store.dir()
            ),
            Edit::IgnoreLink { path, target } => {
                write!(f, "make {path} a symlink to {target}")
            }
            Edit::IgnoreFolder { to } => {
                write!(f, "point the folder link {IGNORE_FOLDER} at {to}")
            }
            Edit::WriteBehind { path, lines, how } => {
                let how = match how {
                    How::Replace => "a new file renamed over it",
                    _ => "in place",
                };
                write!(
                    f,
                    "write the file behind the link {path} ({how}; the links kept): "
                )?;
                if lines.is_empty() {
                    write!(f, "nothing (empty)")
                } else {
                    write!(f, "{}", lines.join(" | "))
                }
            }
            Edit::SetEnv {
                name,
                value: Some(v),
            } => write!(f, "set {name}={v} in the environment"),
            Edit::SetEnv { name, value: None } => write!(f, "unset {name} in the environment"),
            Edit::WhileBuilding {
                first,
                edit,
                delay_ms,
            } => write!(f, "{first}; then, {delay_ms} ms into the build: {edit}"),
        }
    }
}
