//! Resolving a step's declared inputs: walking folders, hashing files through
//! the path table; and checking, after the step ran, that they did not change
//! meanwhile (a step must not store what it read from a file edited after it
//! was hashed under the old digest).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::stat::Stat;
use super::state::{Own, PathTable};
use super::step::{Input, InputKind, ResolvedInput};

/// Resolves every declared input, in declaration order (folders sorted).
/// The folders walked are added to `consulted` with the digest of their
/// listing (taken after their stat).
pub fn resolve(
    inputs: &[Input],
    paths: &PathTable,
    consulted: &mut Vec<Own>,
) -> io::Result<Vec<ResolvedInput>> {
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::File { label, path } => out.push(resolve_one(label.clone(), path, paths)?),
            Input::Read { label, path } => resolve_read(label, path, paths, &mut out)?,
            Input::Tree { label, path } => walk(label, path, false, paths, consulted, &mut out)?,
            Input::Rootfs { label, path } => walk(label, path, true, paths, consulted, &mut out)?,
        }
    }
    Ok(out)
}

/// The files under `root` (sorted), into `out`; its folders into
/// `consulted` with their listings' digests, or, when `rootfs` (every mode
/// bit counts), into `out` as inputs of their own (but `root` itself, which
/// no layer holds). Of a copied folder (not `rootfs`), an empty folder is an
/// input of its own (`root` too): no file makes it in the layer.
fn walk(
    label: &str,
    root: &Path,
    rootfs: bool,
    paths: &PathTable,
    consulted: &mut Vec<Own>,
    out: &mut Vec<ResolvedInput>,
) -> io::Result<()> {
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walk {
        let entry =
            entry.map_err(|e| io::Error::other(format!("reading {}: {e}", root.display())))?;
        let rel = || -> io::Result<String> {
            let rel = entry.path().strip_prefix(root).map_err(io::Error::other)?;
            Ok(format!("{label}/{}", rel.to_string_lossy()))
        };
        if entry.file_type().is_dir() {
            let (stat, digest) = paths.listing(entry.path())?;
            // A copied folder's folders are made in the layer as its files'
            // parents; an empty one, which is no file's parent, is an input
            // of its own (the copied folder itself too, when it is empty).
            let empty = !rootfs && fs::read_dir(entry.path())?.next().is_none();
            if (rootfs && entry.depth() == 0) || (!rootfs && !empty) {
                consulted.push(Own::Read(entry.path().to_path_buf(), Some(digest)));
            } else {
                out.push(ResolvedInput {
                    label: match entry.depth() {
                        0 => label.to_string(),
                        _ => rel()?,
                    },
                    path: entry.path().to_path_buf(),
                    kind: InputKind::Dir,
                    mode: stat.mode & 0o7777,
                    rootfs,
                    size: 0,
                    digest: hex::encode(digest),
                    stat,
                });
            }
            continue;
        }
        // A FIFO, device or socket is never opened (reading one may
        // never end); no layer holds one (docs/security.md).
        if crate::regular_file::special_kind(&entry.file_type()).is_some() {
            continue;
        }
        let mut input = resolve_one(rel()?, entry.path(), paths)?;
        input.rootfs = rootfs;
        out.push(input);
    }
    Ok(())
}

/// [`Input::Read`]: each link met while resolving `path`, then the file
/// (`crate::link_chain`, which the discovery walk's ignore files share).
fn resolve_read(
    label: &str,
    path: &Path,
    paths: &PathTable,
    out: &mut Vec<ResolvedInput>,
) -> io::Result<()> {
    let chain = crate::link_chain::follow(path)?;
    for (n, link) in chain.links.iter().enumerate() {
        out.push(resolve_one(format!("{label}:link{}", n + 1), link, paths)?);
    }
    out.push(resolve_one(label.to_string(), &chain.file, paths)?);
    Ok(())
}

fn resolve_one(label: String, path: &Path, paths: &PathTable) -> io::Result<ResolvedInput> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if meta.file_type().is_symlink() {
        let stat = Stat::of(&meta);
        let target = fs::read_link(path)?;
        let digest = blake3::hash(target.as_os_str().as_encoded_bytes());
        paths.record_link(path, stat, *digest.as_bytes());
        return Ok(ResolvedInput {
            label,
            path: path.to_path_buf(),
            kind: InputKind::Symlink,
            mode: 0o777,
            rootfs: false,
            size: 0,
            digest: digest.to_hex().to_string(),
            stat,
        });
    }
    if !meta.file_type().is_file() {
        // A FIFO, device or socket is never opened (reading one may never end).
        let what = crate::regular_file::not_a_file(&meta).unwrap_or("not a file");
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {what}, where a file was expected", path.display()),
        ));
    }
    let d = paths
        .digest_as(path, &meta)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(ResolvedInput {
        label,
        path: path.to_path_buf(),
        kind: InputKind::File,
        mode: meta.permissions().mode() & 0o7777,
        rootfs: false,
        size: meta.len(),
        digest: d.digest,
        stat: d.stat,
    })
}

/// What the build state records of a resolved input: the digest it depended on.
pub fn consult(input: &ResolvedInput) -> Own {
    let mut raw = [0u8; 32];
    let digest = hex::decode_to_slice(&input.digest, &mut raw)
        .ok()
        .map(|()| raw);
    Own::Read(input.path.clone(), digest)
}

/// The first input whose `lstat` is not the one it was resolved under: it
/// changed while the step used it. (A write within the same timestamp tick
/// is the build state's to catch: such an input is racy, and is hashed again
/// next time.)
pub fn changed_since(inputs: &[ResolvedInput]) -> Option<&PathBuf> {
    inputs
        .iter()
        .find(|i| Stat::of_path(&i.path) != Some(i.stat))
        .map(|i| &i.path)
}

/// The fingerprint label of a resolved input: `file:<label>`, or
/// `dir:<label>` for a folder (a root file system's, or an empty one of a
/// copied folder).
pub fn fingerprint_label(input: &ResolvedInput) -> String {
    match input.kind {
        InputKind::Dir => format!("dir:{}", input.label),
        InputKind::File | InputKind::Symlink => format!("file:{}", input.label),
    }
}

/// The fingerprint value of a resolved input: its content (a folder's: its
/// listing), its kind and its exec bit; not the other mode bits, so umask
/// 022 and 077 checkouts share results — but of a root file system's files
/// and folders ([`Input::Rootfs`]), whose layer keeps them, every one.
pub fn fingerprint_value(input: &ResolvedInput) -> String {
    let kind = match input.kind {
        InputKind::File => "f",
        InputKind::Symlink => "l",
        InputKind::Dir => "d",
    };
    if input.rootfs && input.kind != InputKind::Symlink {
        return format!("{}:{kind}{:04o}", input.digest, input.mode & 0o7777);
    }
    if input.kind == InputKind::Dir {
        // An empty folder of a copied folder: 0755 in the layer whatever its
        // mode (its listing's digest holds the mode, so it is left out).
        return "empty:d".to_string();
    }
    let exec = if input.mode & 0o111 != 0 { "x" } else { "-" };
    format!("{}:{kind}{exec}", input.digest)
}
