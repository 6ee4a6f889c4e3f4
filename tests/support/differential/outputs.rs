//! What a build published (`target/images`, `target/enclave`, `target/policy`,
//! `target/helm`, `scone.lock`), the copy of a source tree a build from scratch
//! starts from, how a build ended, and the first difference between two results.

use std::collections::BTreeMap;
use std::path::Path;

/// The published folders compared, relative to the root.
pub const PUBLISHED: &[&str] = &[
    "target/images",
    "target/enclave",
    "target/policy",
    "target/helm",
];

/// One path of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Link(String),
    Dir,
}

/// A build's published outputs: path (relative to the root) → entry. Folders are
/// entries too: an empty folder left of a removed service is a difference.
pub type Outputs = BTreeMap<String, Entry>;

/// Reads the published outputs of the workspace at `root`.
pub fn outputs(root: &Path) -> Outputs {
    let mut out = Outputs::new();
    for dir in PUBLISHED {
        let top = root.join(dir);
        if top.symlink_metadata().is_err() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&top).sort_by_file_name() {
            let entry = entry.expect("walking the outputs");
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            let kind = entry.file_type();
            let value = if kind.is_dir() {
                Entry::Dir
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).expect("reading a link");
                Entry::Link(target.to_string_lossy().into_owned())
            } else {
                Entry::File(std::fs::read(entry.path()).expect("reading an output"))
            };
            out.insert(rel, value);
        }
    }
    if let Ok(lock) = std::fs::read(root.join("scone.lock")) {
        out.insert("scone.lock".into(), Entry::File(lock));
    }
    out
}

/// The first path (in sorted order) where the two results differ, with what differs:
/// for text files the first differing line.
pub fn first_difference(incremental: &Outputs, scratch: &Outputs) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> =
        incremental.keys().chain(scratch.keys()).collect();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| incremental.get(*k) != scratch.get(*k))
        .collect();
    let (&key, rest) = differing.split_first()?;
    let mut text = describe(key, incremental.get(key), scratch.get(key));
    if !rest.is_empty() {
        let more: Vec<&str> = rest.iter().take(4).map(|k| k.as_str()).collect();
        text.push_str(&format!(
            "; {} more paths differ: {}{}",
            rest.len(),
            more.join(", "),
            if rest.len() > 4 { ", …" } else { "" }
        ));
    }
    Some(text)
}

fn describe(key: &str, a: Option<&Entry>, b: Option<&Entry>) -> String {
    match (a, b) {
        (Some(_), None) => format!("{key}: only in the incremental build (stale)"),
        (None, Some(_)) => format!("{key}: missing from the incremental build"),
        (Some(Entry::File(x)), Some(Entry::File(y))) => {
            format!("{key}: differs ({})", first_line_difference(x, y))
        }
        (Some(x), Some(y)) => format!("{key}: {} incremental, {} from scratch", what(x), what(y)),
        (None, None) => unreachable!("a key of one of the two"),
    }
}

fn what(entry: &Entry) -> String {
    match entry {
        Entry::File(bytes) => format!("a file of {} bytes", bytes.len()),
        Entry::Link(target) => format!("a symlink to {target}"),
        Entry::Dir => "a folder".into(),
    }
}

fn first_line_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let mut lines = a.lines().zip(b.lines()).enumerate();
    match lines.find(|(_, (x, y))| x != y) {
        Some((n, (x, y))) => format!(
            "line {}: incremental {:?}, from scratch {:?}",
            n + 1,
            clip(x),
            clip(y)
        ),
        None => format!("{} bytes incremental, {} from scratch", a.len(), b.len()),
    }
}

fn clip(line: &str) -> String {
    line.chars().take(160).collect()
}

/// Copies the source tree at `root` to `dest` (created): everything but `target/`
/// and `scone.lock`, symlinks as symlinks, modes kept.
pub fn copy_source(root: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("the scratch folder");
    for entry in std::fs::read_dir(root).expect("reading the root") {
        let entry = entry.expect("a root entry");
        let name = entry.file_name();
        if name == "target" || name == "scone.lock" {
            continue;
        }
        super::apply::copy_tree(&entry.path(), &dest.join(&name)).expect("copying the source");
    }
}

/// How one `scone build` ended.
#[derive(Clone, Debug)]
pub struct Ended {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Ended {
    pub fn from_output(out: &std::process::Output) -> Ended {
        Ended {
            code: out.status.code(),
            stdout: out.stdout.clone(),
            stderr: out.stderr.clone(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The `build-finished` message, if the build printed one.
    pub fn finished(&self) -> Option<serde_json::Value> {
        crate::support::messages(&self.stdout)
            .into_iter()
            .find(|m| m["reason"] == "build-finished")
    }

    /// What a failure is compared by: the exit code, the first `error` (or panic)
    /// line of stderr, the error diagnostics and the failed steps with their errors,
    /// with `root` written as `ROOT`.
    pub fn failure(&self, root: &Path) -> String {
        let root = root.display().to_string();
        let stderr = String::from_utf8_lossy(&self.stderr);
        let first_error = stderr
            .lines()
            .find(|l| l.trim_start().starts_with("error") || l.contains("panicked at"))
            .unwrap_or("")
            .replace(&root, "ROOT");
        let mut failed: Vec<String> = crate::support::messages(&self.stdout)
            .into_iter()
            .filter(|m| m["status"] == "failed")
            .map(|m| {
                format!(
                    "{}:{}: {}",
                    m["step"].as_str().unwrap_or_default(),
                    m["unit"].as_str().unwrap_or_default(),
                    m["error"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(&root, "ROOT")
                )
            })
            .collect();
        failed.sort();
        // Diagnostics (`--message-format json` prints them as messages too).
        let diagnostics: Vec<String> = crate::support::messages(&self.stdout)
            .into_iter()
            .filter(|m| m["reason"] == "diagnostic" && m["level"] == "error")
            .map(|m| {
                format!(
                    "{}:{}:{}: {} [{}]",
                    m["file"].as_str().unwrap_or_default(),
                    m["line"],
                    m["column"],
                    m["message"].as_str().unwrap_or_default(),
                    m["code"].as_str().unwrap_or_default()
                )
                .replace(&root, "ROOT")
            })
            .collect();
        format!(
            "exit {:?}; first error: {first_error:?}; diagnostics: {diagnostics:?}; failed steps: {failed:?}",
            self.code
        )
    }
}
