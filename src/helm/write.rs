//! Writing a rendered chart (or the plain manifests) as a whole folder, crash-safe: every
//! file is written and fsynced in a temporary sibling folder, which then replaces the target
//! by rename. A folder that already holds exactly these files is left alone (mtimes stay).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::HelmError;
use super::render::RenderedChart;

/// Writes the chart's files to `dir` (e.g. `target/helm`), replacing what was there.
pub fn write_chart(chart: &RenderedChart, dir: &Path) -> Result<(), HelmError> {
    write_tree(&chart.files, dir)
}

/// Writes the plain manifests to `dir` (e.g. `target/manifests`), replacing what was there.
pub fn write_manifests(chart: &RenderedChart, dir: &Path) -> Result<(), HelmError> {
    write_tree(&chart.manifests, dir)
}

/// Makes `dir` hold exactly `files` (relative paths → bytes), atomically per folder.
pub fn write_tree(files: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path) -> Result<(), HelmError> {
    for relative in files.keys() {
        let safe = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || relative.as_os_str().is_empty() {
            return Err(HelmError::Write {
                path: relative.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a plain relative path",
                ),
            });
        }
    }
    if holds_exactly(dir, files) {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HelmError::Write { path, source }
    };
    let base = dir.file_name().ok_or_else(|| HelmError::Write {
        path: dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no folder name"),
    })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let base = base.to_string_lossy();
    let pid = std::process::id();
    let staging = parent.join(format!(".{base}.tmp-{pid}"));
    let retired = parent.join(format!(".{base}.old-{pid}"));
    for leftover in [&staging, &retired] {
        if leftover.exists() {
            fs::remove_dir_all(leftover).map_err(io(leftover))?;
        }
    }

    fs::create_dir(&staging).map_err(io(&staging))?;
    let mut folders = vec![staging.clone()];
    for (relative, bytes) in files {
        let path = staging.join(relative);
        if let Some(folder) = path.parent() {
            if !folder.exists() {
                fs::create_dir_all(folder).map_err(io(folder))?;
                folders.push(folder.to_path_buf());
            }
        }
        let mut file = File::create(&path).map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
    }
    for folder in folders.iter().rev() {
        sync_dir(folder).map_err(io(folder))?;
    }

    if dir.exists() {
        fs::rename(dir, &retired).map_err(io(dir))?;
        fs::rename(&staging, dir).map_err(io(dir))?;
        fs::remove_dir_all(&retired).map_err(io(&retired))?;
    } else {
        fs::rename(&staging, dir).map_err(io(dir))?;
    }
    sync_dir(&parent).map_err(io(&parent))?;
    Ok(())
}

/// Whether `dir` holds exactly `files` and nothing else.
fn holds_exactly(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> bool {
    let mut seen = 0usize;
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let Ok(entry) = entry else { return false };
        if entry.file_type().is_dir() {
            continue;
        }
        if !entry.file_type().is_file() {
            return false;
        }
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            return false;
        };
        match files.get(relative) {
            Some(bytes) if fs::read(entry.path()).is_ok_and(|on_disk| &on_disk == bytes) => {
                seen += 1;
            }
            _ => return false,
        }
    }
    seen == files.len() && dir.is_dir()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, Vec<u8>> {
        entries
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn replaces_the_folder_and_leaves_no_temporaries() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("helm");
        write_tree(&tree(&[("a.yaml", "1"), ("templates/b.yaml", "2")]), &dir).expect("write");
        write_tree(&tree(&[("a.yaml", "3")]), &dir).expect("rewrite");
        assert_eq!(fs::read_to_string(dir.join("a.yaml")).expect("a"), "3");
        assert!(!dir.join("templates").exists(), "old files are gone");
        let names: Vec<_> = fs::read_dir(root.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("helm")]);
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("helm");
        let files = tree(&[("Chart.yaml", "name: x\n")]);
        write_tree(&files, &dir).expect("write");
        let chart = dir.join("Chart.yaml");
        let old = filetime::FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(&chart, old).expect("set mtime");
        write_tree(&files, &dir).expect("same again");
        let meta = fs::metadata(&chart).expect("stat");
        assert_eq!(filetime::FileTime::from_last_modification_time(&meta), old);
    }

    #[test]
    fn refuses_paths_that_escape() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = write_tree(&tree(&[("../x", "1")]), &root.path().join("helm"))
            .expect_err("must refuse");
        assert!(
            err.to_string().contains("not a plain relative path"),
            "{err}"
        );
    }
}
