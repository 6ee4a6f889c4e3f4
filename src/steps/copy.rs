//! `copy:<service>`: stage the `copy:` inputs (content, path under `pwd`, exec
//! bit) in the store, for the layer step. A copied folder's empty folders are
//! staged too, as `dir` entries: the layer holds them (0755) as it holds the
//! folders it makes as its files' parents.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{image_path, param, to_record};
use crate::engine::{Input, InputKind, Step, StepContext, StepError, StepId, StepOutput};

/// One staged entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedEntry {
    /// Path inside the image, without a leading `/`.
    pub path: String,
    /// `file`, `symlink` or `dir` (an empty folder: the others are made as
    /// their files' parents).
    pub kind: String,
    pub executable: bool,
    pub size: u64,
    /// Store digest of the content (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The record of a copy step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    pub entries: Vec<StagedEntry>,
}

/// See the module documentation.
#[derive(Serialize, Deserialize)]
pub struct CopyStep {
    pub id: StepId,
    /// The service manifest's folder.
    pub dir: PathBuf,
    pub pwd: String,
    /// `copy:` paths, relative to `dir`, as written.
    pub copy: Vec<String>,
}

impl Step for CopyStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("pwd".to_string(), self.pwd.clone()),
            ("copy".to_string(), param(&self.copy)),
        ])
    }

    /// A folder is walked; anything else, a symlink to a folder too (and
    /// written with a trailing `/`), is one input: a symlink is copied as the
    /// link, as one inside a copied folder is.
    fn inputs(&self) -> Vec<Input> {
        self.copy
            .iter()
            .map(|rel| {
                let rel = match rel.trim_end_matches('/') {
                    "" => rel.as_str(),
                    trimmed => trimmed,
                };
                let label = rel.trim_start_matches("./").to_string();
                let path = self.dir.join(rel);
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    Input::Tree { label, path }
                } else {
                    Input::File { label, path }
                }
            })
            .collect()
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        // Validation refused links out of the service folder when the
        // workspace was loaded; one made since is refused here, where it is
        // read.
        let folder = self.dir.canonicalize().ok();
        // The files first, all at once: stored with one flush of the disk,
        // each checked against the digest it was hashed to.
        let files: Vec<(&std::path::Path, &str)> = cx
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::File)
            .map(|i| (i.path.as_path(), i.digest.as_str()))
            .collect();
        cx.store_files(&files)?;
        let mut entries = Vec::new();
        let mut stored = BTreeMap::new();
        for input in cx.inputs {
            // Validation refused a name or link target that is not UTF-8
            // when the workspace was loaded (the image names them as text);
            // one made since is refused here, never renamed.
            let named = input.path.strip_prefix(&self.dir).unwrap_or(&input.path);
            if named.to_str().is_none() {
                return Err(StepError::new(format!(
                    "{} is not a UTF-8 name; rename it",
                    input.path.display()
                )));
            }
            let path = image_path(&self.pwd, &input.label);
            match input.kind {
                InputKind::File => {
                    stored.insert(path.clone(), input.digest.clone());
                    entries.push(StagedEntry {
                        path,
                        kind: "file".into(),
                        executable: input.mode & 0o111 != 0,
                        size: input.size,
                        blob: Some(input.digest.clone()),
                        target: None,
                    });
                }
                InputKind::Symlink => {
                    let resolved = input.path.canonicalize().ok();
                    if let (Some(folder), Some(resolved)) = (&folder, &resolved) {
                        if !resolved.starts_with(folder) {
                            return Err(StepError::new(format!(
                                "{} is a symlink that resolves outside the service folder",
                                input.path.display()
                            )));
                        }
                    }
                    let target = std::fs::read_link(&input.path)
                        .map_err(|e| StepError::context(input.path.display(), e))?;
                    let digest = blake3::hash(target.as_os_str().as_encoded_bytes());
                    if digest.to_hex().as_str() != input.digest {
                        return Err(StepError::new(format!(
                            "{} changed during the build; build again",
                            input.path.display()
                        )));
                    }
                    let Some(target) = target.to_str() else {
                        return Err(StepError::new(format!(
                            "{} is a symlink whose target is not UTF-8; point it elsewhere",
                            input.path.display()
                        )));
                    };
                    entries.push(StagedEntry {
                        path,
                        kind: "symlink".into(),
                        executable: false,
                        size: 0,
                        blob: None,
                        target: Some(target.to_string()),
                    });
                }
                // A copied folder's folders are made in the layer as its
                // files' parents; an empty one, no file's parent, is an
                // input and an entry of its own.
                InputKind::Dir => entries.push(StagedEntry {
                    path,
                    kind: "dir".into(),
                    executable: false,
                    size: 0,
                    blob: None,
                    target: None,
                }),
            }
        }
        Ok(StepOutput {
            record: to_record(&CopyRecord { entries })?,
            stored,
            ..StepOutput::default()
        })
    }
}
