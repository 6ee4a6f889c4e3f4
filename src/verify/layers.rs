//! Which files differ between two layers: what a verifier says when an
//! image under a tag is not the one built ("print_env.py changed").

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::oci::rootfs::open_layer;

/// Path → SHA-256 (hex) of every regular file of a layer blob; `None` when it
/// cannot be read.
pub fn file_digests(layer: &Path) -> Option<BTreeMap<String, String>> {
    let mut archive = tar::Archive::new(open_layer(layer).ok()?);
    let mut out = BTreeMap::new();
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path: Vec<&str> = raw
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = entry.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        out.insert(format!("/{}", path.join("/")), hex::encode(ctx.finish()));
    }
    Some(out)
}

/// The files that differ between `built` and `found`: changed, added (only in
/// `found`) and removed, each with a word saying which.
pub fn differences(
    built: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, digest) in found {
        match built.get(path) {
            Some(d) if d == digest => {}
            Some(_) => out.push(format!("{path} changed")),
            None => out.push(format!("{path} added")),
        }
    }
    for path in built.keys().filter(|p| !found.contains_key(*p)) {
        out.push(format!("{path} removed"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_changed_added_and_removed_files() {
        let a = BTreeMap::from([
            ("/a".to_string(), "1".to_string()),
            ("/b".into(), "2".into()),
        ]);
        let b = BTreeMap::from([
            ("/a".to_string(), "9".to_string()),
            ("/c".into(), "3".into()),
        ]);
        assert_eq!(
            differences(&a, &b),
            ["/a changed", "/c added", "/b removed"]
        );
    }
}
