//! The links on the way to a file. A file read through links depends on
//! each of them as much as on the file it reaches: re-pointing any one
//! changes what is read. Both readers that follow links for the build
//! state — a step's [`Input::Read`](crate::engine::Input) (signing keys,
//! provenance key, manifests) and the discovery walk's ignore files — take
//! the chain from here, so they watch the same paths.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Links followed before a path is taken as a loop (the kernel's own bound).
pub const MAX_LINKS: usize = 40;

/// Each link met while resolving a path, in the order met, and the path it
/// resolves to (no link in any of its parts).
#[derive(Debug, PartialEq, Eq)]
pub struct LinkChain {
    pub links: Vec<PathBuf>,
    pub file: PathBuf,
}

/// Resolves `path` part by part, as the kernel does: the first part that is
/// a link is replaced by where it leads (relative to its folder), and the
/// walk starts again, at most [`MAX_LINKS`] times. The file at the end need
/// not exist.
pub fn follow(path: &Path) -> io::Result<LinkChain> {
    let mut links = Vec::new();
    let mut current = path.to_path_buf();
    while let Some((link, rest)) = first_link(&current) {
        if links.len() == MAX_LINKS {
            return Err(io::Error::other(format!(
                "{}: more than {MAX_LINKS} links on the way to the file",
                path.display()
            )));
        }
        let target = fs::read_link(&link)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", link.display())))?;
        current = link.parent().unwrap_or(Path::new("/")).join(target);
        // Not `join(rest)` when nothing follows the link: joining "" adds a
        // trailing `/`, and the file a last link leads to (`key.pem ->
        // store/key.pem`) was then taken for a folder ("Not a directory").
        if !rest.as_os_str().is_empty() {
            current.push(rest);
        }
        links.push(link);
    }
    Ok(LinkChain {
        links,
        file: current,
    })
}

/// The first leading part of `path` that is a link, and what follows it.
fn first_link(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut lead = PathBuf::new();
    let mut parts = path.components();
    while let Some(part) = parts.next() {
        lead.push(part);
        if matches!(part, Component::Normal(_))
            && fs::symlink_metadata(&lead).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Some((lead, parts.as_path().to_path_buf()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_path_without_links_is_its_own_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a");
        fs::write(&file, "x").unwrap();
        let chain = follow(&file).unwrap();
        assert_eq!(
            chain,
            LinkChain {
                links: vec![],
                file
            }
        );
    }

    #[test]
    fn links_in_any_part_are_met_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("real")).unwrap();
        fs::write(root.join("real/key"), "k").unwrap();
        symlink("real", root.join("folder")).unwrap();
        symlink("folder/key", root.join("key")).unwrap();
        let chain = follow(&root.join("key")).unwrap();
        assert_eq!(chain.links, vec![root.join("key"), root.join("folder")]);
        assert_eq!(chain.file, root.join("real/key"));
    }

    #[test]
    fn a_link_straight_to_a_file_leads_to_the_file_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("store")).unwrap();
        fs::write(root.join("store/key.pem"), "k").unwrap();
        symlink("store/key.pem", root.join("key.pem")).unwrap();
        let chain = follow(&root.join("key.pem")).unwrap();
        assert_eq!(chain.links, vec![root.join("key.pem")]);
        // Compared as text: `Path` equality would not see a trailing `/`,
        // which made the file unreadable ("Not a directory").
        assert_eq!(
            chain.file.as_os_str(),
            root.join("store/key.pem").as_os_str()
        );
        assert!(fs::symlink_metadata(&chain.file).unwrap().is_file());
    }

    #[test]
    fn a_loop_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let err = follow(&root.join("a")).unwrap_err();
        assert!(err.to_string().contains("more than 40 links"), "{err}");
        assert!(
            err.to_string()
                .contains(&root.join("a").display().to_string()),
            "{err}"
        );
    }
}
