//! Applies an edit to a tree. An edit whose target is gone (a shrunk list may drop
//! the edit that made it) is skipped, so every sublist of an edit list replays.

use super::edits::{mesh_path, svc_dir, Edit, Env, How, KeyId, KeyRoute, Keys, Store};
use super::initial::{self, IGNORE_FOLDER, IGNORE_LISTS, KEY_FOLDER, KEY_PATH};
use super::layout::{image, ConfigDoc, MeshDoc, ServiceDoc};
use super::Rng;
use crate::support::monorepo::write_file;
use std::io;
use std::path::Path;

/// Reads, changes and writes back a document at `rel`; false if it is missing or
/// not one this generator wrote.
fn change<D>(
    root: &Path,
    rel: &str,
    parse: fn(&str) -> Option<D>,
    render: fn(&D) -> String,
    f: impl FnOnce(&mut D) -> bool,
) -> io::Result<bool> {
    let path = root.join(rel);
    if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    let Some(mut doc) = parse(&std::fs::read_to_string(&path)?) else {
        return Ok(false);
    };
    if !f(&mut doc) {
        return Ok(false);
    }
    write_file(&path, render(&doc).as_bytes(), 0o644)?;
    Ok(true)
}

pub fn change_service(
    root: &Path,
    rel: &str,
    f: impl FnOnce(&mut ServiceDoc) -> bool,
) -> io::Result<bool> {
    change(root, rel, ServiceDoc::parse, ServiceDoc::render, f)
}

pub fn change_mesh(
    root: &Path,
    rel: &str,
    f: impl FnOnce(&mut MeshDoc) -> bool,
) -> io::Result<bool> {
    change(root, rel, MeshDoc::parse, MeshDoc::render, f)
}

fn change_config(root: &Path, f: impl FnOnce(&mut ConfigDoc) -> bool) -> io::Result<bool> {
    change(root, "scone.toml", ConfigDoc::parse, ConfigDoc::render, f)
}

/// The index of the mesh entry that links the service in folder `svc` (`doc`).
pub fn entry_of(mesh: &MeshDoc, svc: &str, doc: &ServiceDoc) -> Option<usize> {
    let manifest = format!("{svc}/service.yml");
    mesh.services.iter().position(|e| match &e.manifest {
        Some(m) => *m == manifest,
        None => e.image == doc.to,
    })
}

fn read_service(root: &Path, rel: &str) -> Option<ServiceDoc> {
    ServiceDoc::parse(&std::fs::read_to_string(root.join(rel)).ok()?)
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777)
}

fn is_file(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_file())
}

/// Copies a file or a folder (symlinks as symlinks, modes kept; `from` itself
/// too: a link to a folder is copied as the link, not walked into).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(from)
        .follow_root_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let dest = if rel.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rel)
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)?;
            std::fs::set_permissions(
                &dest,
                entry.metadata().map_err(io::Error::other)?.permissions(),
            )?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// The last part of a path relative to the root (`keys/current`: `current`).
pub fn leaf(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Makes `path` a symlink to `target`, unless it already is one: a new link
/// beside it renamed over the file or link there, so that a reader sees the old
/// or the new one, never none (as kubelet swaps a Secret mount's `..data`).
fn relink(path: &Path, target: &str) -> io::Result<()> {
    if std::fs::read_link(path).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    let parent = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    std::fs::create_dir_all(parent)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no name"))?;
    let tmp = parent.join(format!(".{}.link-tmp", name.to_string_lossy()));
    if tmp.symlink_metadata().is_ok() {
        std::fs::remove_file(&tmp)?;
    }
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, path)
}

/// The key folders of `key-link` (`keys/store-a/key.pem` with key A,
/// `keys/store-b/key.pem` with key B), each written when missing: a `key` edit
/// made through a link since has changed one, and stays.
fn ensure_key_stores(root: &Path, keys: &Keys) -> io::Result<()> {
    for (store, key) in [(Store::A, KeyId::A), (Store::B, KeyId::B)] {
        let keys_dir = Path::new(KEY_PATH).parent().unwrap_or(Path::new(""));
        let path = root.join(keys_dir).join(store.dir()).join("key.pem");
        if path.symlink_metadata().is_err() {
            write_file(&path, keys.get(key), 0o600)?;
        }
    }
    Ok(())
}

/// The ignore lists of `ignore-link` (`ignores/one/list`, `ignores/two/list`),
/// each written when missing; both hide `attic/`, as the root's `.gitignore` does.
fn ensure_ignore_lists(root: &Path) -> io::Result<()> {
    let folder = Path::new(IGNORE_FOLDER).parent().unwrap_or(Path::new(""));
    for (name, text) in IGNORE_LISTS.iter().zip(["attic/\n", "attic/\n*.tmp\n"]) {
        let path = root.join(folder).join(name).join("list");
        if path.symlink_metadata().is_err() {
            write_file(&path, text.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}

impl Edit {
    /// Applies the edit to the tree at `root` (and `env`); false when its target is
    /// gone and nothing was done.
    pub fn apply(&self, root: &Path, keys: &Keys, env: &mut Env) -> io::Result<bool> {
        match self {
            Edit::AddService {
                team,
                svc,
                id,
                by_manifest,
                seed,
            } => {
                let dir = root.join(svc_dir(team, svc));
                if dir.exists() || !is_file(&root.join(mesh_path(team))) {
                    return Ok(false);
                }
                let heap = if id.is_multiple_of(3) { "2M" } else { "1M" };
                let doc = initial::service(team, svc, *id, heap);
                initial::write_service(&dir, &doc, &mut Rng::new(*seed))?;
                change_mesh(root, &mesh_path(team), |m| {
                    m.services.push(initial::entry(team, svc, *by_manifest));
                    true
                })
            }
            Edit::RemoveService { team, svc } => {
                let manifest = format!("{}/service.yml", svc_dir(team, svc));
                let Some(doc) = read_service(root, &manifest) else {
                    return Ok(false);
                };
                change_mesh(root, &mesh_path(team), |m| match entry_of(m, svc, &doc) {
                    Some(i) => {
                        m.services.remove(i);
                        true
                    }
                    None => false,
                })?;
                std::fs::remove_dir_all(root.join(svc_dir(team, svc)))?;
                Ok(true)
            }
            Edit::MoveService { team, from, to } => {
                let (src, dest) = (root.join(svc_dir(team, from)), root.join(svc_dir(team, to)));
                if !src.is_dir() || dest.exists() {
                    return Ok(false);
                }
                std::fs::rename(&src, &dest)?;
                change_mesh(root, &mesh_path(team), |m| {
                    let old = format!("{from}/service.yml");
                    let mut changed = false;
                    for e in m
                        .services
                        .iter_mut()
                        .filter(|e| e.manifest.as_ref() == Some(&old))
                    {
                        e.manifest = Some(format!("{to}/service.yml"));
                        changed = true;
                    }
                    changed
                })?;
                Ok(true)
            }
            Edit::RenameService {
                team,
                svc,
                mesh_name,
                build_name,
            } => {
                let manifest = format!("{}/service.yml", svc_dir(team, svc));
                let Some(doc) = read_service(root, &manifest) else {
                    return Ok(false);
                };
                change_mesh(root, &mesh_path(team), |m| match entry_of(m, svc, &doc) {
                    Some(i) => {
                        m.services[i].name = mesh_name.clone();
                        m.services[i].image = image(team, mesh_name);
                        true
                    }
                    None => false,
                })?;
                change_service(root, &manifest, |d| {
                    d.name = build_name.clone();
                    d.to = image(team, mesh_name);
                    true
                })
            }
            Edit::AddMesh {
                team,
                services,
                seed,
            } => {
                let dir = root.join("apps").join(team);
                if dir.exists() {
                    return Ok(false);
                }
                let mut rng = Rng::new(*seed);
                let mut entries = Vec::new();
                for (i, (svc, id)) in services.iter().enumerate() {
                    let doc = initial::service(team, svc, *id, "1M");
                    initial::write_service(&dir.join(svc), &doc, &mut rng)?;
                    entries.push(initial::entry(team, svc, i.is_multiple_of(2)));
                }
                let doc = initial::mesh(team, entries);
                write_file(&dir.join("mesh.yml"), doc.render().as_bytes(), 0o644)?;
                Ok(true)
            }
            Edit::RemoveMesh { team } => {
                let dir = root.join("apps").join(team);
                if !dir.is_dir() {
                    return Ok(false);
                }
                std::fs::remove_dir_all(dir)?;
                Ok(true)
            }
            Edit::MoveMesh { from, to } => {
                let (src, dest) = (root.join("apps").join(from), root.join("apps").join(to));
                if !src.is_dir() || dest.exists() {
                    return Ok(false);
                }
                std::fs::rename(src, dest)?;
                Ok(true)
            }
            Edit::SetNamespace { team, namespace } => change_mesh(root, &mesh_path(team), |m| {
                m.namespace = namespace.clone();
                true
            }),
            Edit::Write { path, content, how } => write(root, path, content, *how),
            Edit::Append { path, text } => {
                use std::io::Write as _;
                let path = root.join(path);
                if !is_file(&path) {
                    return Ok(false);
                }
                let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
                file.write_all(text.as_bytes())?;
                Ok(true)
            }
            Edit::Touch { path } => {
                let path = root.join(path);
                if path.symlink_metadata().is_err() {
                    return Ok(false);
                }
                filetime::set_symlink_file_times(
                    &path,
                    filetime::FileTime::now(),
                    filetime::FileTime::now(),
                )?;
                Ok(true)
            }
            Edit::TouchAhead { path } => {
                let path = root.join(path);
                if path.symlink_metadata().is_err() {
                    return Ok(false);
                }
                let now = filetime::FileTime::now();
                let ahead = filetime::FileTime::from_unix_time(
                    now.unix_seconds() + 3_600,
                    now.nanoseconds(),
                );
                filetime::set_symlink_file_times(&path, now, ahead)?;
                Ok(true)
            }
            Edit::Rewrite { path } => {
                let path = root.join(path);
                if !is_file(&path) {
                    return Ok(false);
                }
                let bytes = std::fs::read(&path)?;
                write_file(&path, &bytes, mode_of(&path))?;
                Ok(true)
            }
            Edit::Chmod { path, mode } => {
                use std::os::unix::fs::PermissionsExt;
                let path = root.join(path);
                if !path
                    .symlink_metadata()
                    .is_ok_and(|m| m.is_file() || m.is_dir())
                {
                    return Ok(false);
                }
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
                Ok(true)
            }
            Edit::ToSymlink { path, target } => {
                let path = root.join(path);
                if !is_file(&path) {
                    return Ok(false);
                }
                std::fs::remove_file(&path)?;
                std::os::unix::fs::symlink(target, &path)?;
                Ok(true)
            }
            Edit::FromSymlink { path, content } => {
                let path = root.join(path);
                if !path
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Ok(false);
                }
                std::fs::remove_file(&path)?;
                write_file(&path, content, 0o644)?;
                Ok(true)
            }
            Edit::Copy { from, to } => {
                let (src, dest) = (root.join(from), root.join(to));
                if src.symlink_metadata().is_err() || dest.symlink_metadata().is_ok() {
                    return Ok(false);
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                copy_tree(&src, &dest)?;
                Ok(true)
            }
            Edit::Remove { path } => {
                let path = root.join(path);
                match path.symlink_metadata() {
                    Err(_) => return Ok(false),
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path)?,
                    Ok(_) => std::fs::remove_file(&path)?,
                }
                Ok(true)
            }
            Edit::MakeDir { path } => {
                let path = root.join(path);
                if path.symlink_metadata().is_ok() {
                    return Ok(false);
                }
                std::fs::create_dir_all(&path)?;
                Ok(true)
            }
            Edit::SetCommand { manifest, command } => change_service(root, manifest, |d| {
                d.command = command.clone();
                true
            }),
            Edit::SetLocal {
                manifest,
                name,
                value,
            } => change_service(root, manifest, |d| {
                match d.locals.iter_mut().find(|(n, _)| n == name) {
                    Some(local) => local.1 = value.clone(),
                    None => d.locals.push((name.clone(), value.clone())),
                }
                true
            }),
            Edit::SetCopy { manifest, copy } => change_service(root, manifest, |d| {
                d.copy = copy.clone();
                true
            }),
            Edit::SetMeshEnv { mesh, name, value } => change_mesh(root, mesh, |m| {
                let at = m.env.iter().position(|(n, _)| n == name);
                match (at, value) {
                    (Some(i), Some(v)) => m.env[i].1 = v.clone(),
                    (None, Some(v)) => m.env.push((name.clone(), v.clone())),
                    (Some(i), None) => {
                        m.env.remove(i);
                    }
                    (None, None) => return false,
                }
                true
            }),
            Edit::SetMembers { members } => change_config(root, |c| {
                c.members = members.clone();
                true
            }),
            Edit::SetSigning { key } => change_config(root, |c| {
                c.key = key.clone();
                true
            }),
            Edit::SetIgnore { path, lines } => {
                let path = root.join(path);
                if !path.parent().is_some_and(Path::is_dir) {
                    return Ok(false);
                }
                if lines.is_empty() {
                    if path.symlink_metadata().is_ok() {
                        std::fs::remove_file(&path)?;
                    }
                } else {
                    write_file(&path, format!("{}\n", lines.join("\n")).as_bytes(), 0o644)?;
                }
                Ok(true)
            }
            Edit::AddDecoy { of, dir } => {
                let (Some(mut doc), false) = (read_service(root, of), root.join(dir).exists())
                else {
                    return Ok(false);
                };
                doc.name = format!("{}-{}", doc.name, dir.replace('/', "-"));
                doc.from = Some("dir:../../base".into());
                initial::write_service(&root.join(dir), &doc, &mut Rng::new(dir.len() as u64))?;
                Ok(true)
            }
            Edit::ReplaceKey { key } => {
                use std::io::Write as _;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .create(true)
                    .open(root.join(KEY_PATH))?;
                file.write_all(keys.get(*key))?;
                Ok(true)
            }
            Edit::KeyLink { route } => {
                let path = root.join(KEY_PATH);
                if !path.parent().is_some_and(Path::is_dir) {
                    return Ok(false);
                }
                match route {
                    KeyRoute::Plain(key) => write_file(&path, keys.get(*key), 0o600)?,
                    KeyRoute::Direct(store) => {
                        ensure_key_stores(root, keys)?;
                        relink(&path, &format!("{}/key.pem", store.dir()))?;
                    }
                    KeyRoute::Folder(store) => {
                        ensure_key_stores(root, keys)?;
                        relink(&root.join(KEY_FOLDER), store.dir())?;
                        relink(&path, &format!("{}/key.pem", leaf(KEY_FOLDER)))?;
                    }
                }
                Ok(true)
            }
            Edit::IgnoreLink { path, target } => {
                let path = root.join(path);
                if !path.parent().is_some_and(Path::is_dir)
                    || path.symlink_metadata().is_ok_and(|m| m.is_dir())
                {
                    return Ok(false);
                }
                ensure_ignore_lists(root)?;
                let folder = root.join(IGNORE_FOLDER);
                if target.contains(&format!("{IGNORE_FOLDER}/"))
                    && folder.symlink_metadata().is_err()
                {
                    relink(&folder, IGNORE_LISTS[0])?;
                }
                relink(&path, target)?;
                Ok(true)
            }
            Edit::IgnoreFolder { to } => {
                ensure_ignore_lists(root)?;
                relink(&root.join(IGNORE_FOLDER), to)?;
                Ok(true)
            }
            Edit::WriteBehind { path, lines, how } => {
                let path = root.join(path);
                if !path
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Ok(false);
                }
                let (Ok(behind), Ok(top)) = (path.canonicalize(), root.canonicalize()) else {
                    return Ok(false);
                };
                let Ok(rel) = behind.strip_prefix(&top) else {
                    return Ok(false);
                };
                let text = if lines.is_empty() {
                    String::new()
                } else {
                    format!("{}\n", lines.join("\n"))
                };
                write(&top, &rel.to_string_lossy(), text.as_bytes(), *how)
            }
            Edit::SetEnv { name, value } => {
                match value {
                    Some(v) => env.insert(name.clone(), v.clone()),
                    None => env.remove(name),
                };
                Ok(true)
            }
            Edit::WhileBuilding { first, edit, .. } => {
                let a = first.apply(root, keys, env)?;
                Ok(edit.apply(root, keys, env)? || a)
            }
        }
    }
}

fn write(root: &Path, rel: &str, content: &[u8], how: How) -> io::Result<bool> {
    use std::io::Write as _;
    let path = root.join(rel);
    let exists = is_file(&path);
    if path.symlink_metadata().is_ok() && !exists {
        return Ok(false);
    }
    match how {
        How::Replace => write_file(&path, content, mode_of(&path))?,
        How::InPlace | How::KeepMtime => {
            if !exists {
                return Ok(false);
            }
            let meta = std::fs::metadata(&path)?;
            if how == How::KeepMtime && meta.len() != content.len() as u64 {
                return Ok(false);
            }
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)?;
            file.write_all(content)?;
            drop(file);
            if how == How::KeepMtime {
                filetime::set_file_mtime(&path, mtime)?;
            }
        }
    }
    Ok(true)
}
