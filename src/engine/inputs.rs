//! Resolving a step's declared inputs: walking folders, hashing files through
//! the stat cache.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::statcache::{Stat, StatCache};
use super::step::{Input, InputKind, ResolvedInput};

/// Resolves every declared input, in declaration order (folders sorted). The
/// folders walked are added to `dirs` (their listing is an input too), each
/// with its stat taken *before* it was listed.
pub fn resolve(
    inputs: &[Input],
    stats: &StatCache,
    dirs: &mut Vec<(std::path::PathBuf, Option<Stat>)>,
) -> io::Result<Vec<ResolvedInput>> {
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::File { label, path } => out.push(resolve_one(label.clone(), path, stats)?),
            Input::Tree { label, path } => {
                let stat = fs::symlink_metadata(path).ok().map(|m| Stat::of(&m));
                dirs.push((path.clone(), stat));
                let walk = walkdir::WalkDir::new(path)
                    .follow_links(false)
                    .sort_by_file_name()
                    .min_depth(1);
                for entry in walk {
                    let entry = entry.map_err(|e| {
                        io::Error::other(format!("reading {}: {e}", path.display()))
                    })?;
                    if entry.file_type().is_dir() {
                        // Listed after this: the stat precedes the listing.
                        let stat = entry.metadata().ok().map(|m| Stat::of(&m));
                        dirs.push((entry.path().to_path_buf(), stat));
                        continue;
                    }
                    let rel = entry
                        .path()
                        .strip_prefix(path)
                        .map_err(io::Error::other)?
                        .to_string_lossy()
                        .into_owned();
                    out.push(resolve_one(format!("{label}/{rel}"), entry.path(), stats)?);
                }
            }
        }
    }
    Ok(out)
}

fn resolve_one(label: String, path: &Path, stats: &StatCache) -> io::Result<ResolvedInput> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        let digest = blake3::hash(target.to_string_lossy().as_bytes())
            .to_hex()
            .to_string();
        return Ok(ResolvedInput {
            label,
            path: path.to_path_buf(),
            kind: InputKind::Symlink,
            mode: 0o777,
            size: 0,
            digest,
            stat: Stat::of(&meta),
        });
    }
    // Not a symlink: the lstat above is the stat the cache needs.
    let d = stats
        .digest_as(path, &meta)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(ResolvedInput {
        label,
        path: path.to_path_buf(),
        kind: InputKind::File,
        mode: meta.permissions().mode() & 0o7777,
        size: meta.len(),
        digest: d.digest,
        stat: d.stat,
    })
}

/// The fingerprint value of a resolved input: content, kind and exec bit only
/// (not the other mode bits, so umask 022 and 077 checkouts share results).
pub fn fingerprint_value(input: &ResolvedInput) -> String {
    let kind = match input.kind {
        InputKind::File => "f",
        InputKind::Symlink => "l",
    };
    let exec = if input.mode & 0o111 != 0 { "x" } else { "-" };
    format!("{}:{kind}{exec}", input.digest)
}
