//! The step contract: what a step declares, what it receives, what it returns.
//!
//! A step is a pure function of its declared inputs:
//!
//! * **params** — canonical key/value pairs (command line, env, settings…);
//! * **inputs** — workspace files and folders it reads, hashed by the engine;
//! * **deps** — upstream steps, whose *outputs* (record + blob digests) it reads.
//!
//! From those the engine computes the fingerprint (see [`super::fingerprint`]).
//! On a miss it calls [`Step::run`] with a [`StepContext`] that hands over exactly
//! the declared inputs (with digests), the upstream results and a scratch folder;
//! the step returns a [`StepOutput`]: a small JSON record, the files it made
//! (moved into the content-addressed blob store) and what to publish under
//! `target/`. A step never reads anything it did not declare and never writes
//! outside its scratch folder; the engine does all publishing.
//!
//! A step whose run has a part that needs only some of its deps can split
//! that part off into [`Step::prepare`]: the engine runs it, on a core the
//! build leaves free, as soon as those deps are done, and hands what it made
//! to [`Step::run`] ([`StepContext::take_prepared`]). A head start, never an
//! input: `run` makes the same output without it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::dep::Dep;
use super::dep_memo;
pub use super::id::StepId;
use super::store::{ActionRecord, Store};

/// A workspace path a step reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One file, under a label (shown by `--explain`). A link is taken as
    /// the link (its target's text), as a layer keeps it.
    File { label: String, path: PathBuf },
    /// One file the step reads through whatever links lead to it (a key in a
    /// Kubernetes Secret mount: `enclave.pem -> ..data/enclave.pem`, `..data
    /// -> ..2026_12_07`): every link met on the way, in any component of the
    /// path, is an input by its target's text (`<label>:link1`, …), then the
    /// file it leads to by content. Retargeting a link and editing the file
    /// both change the fingerprint.
    Read { label: String, path: PathBuf },
    /// Every file under a folder (sorted, recursive; symlinks not followed),
    /// each labelled `<label>/<relative path>`; of their modes only the exec
    /// bit counts (the layer normalizes the rest). An empty folder (the
    /// folder itself too) is an input of its own, of kind
    /// [`InputKind::Dir`]: no file makes it in the layer.
    Tree { label: String, path: PathBuf },
    /// A root file system (a `dir:` base): a [`Input::Tree`] whose layer
    /// keeps every permission bit of its files and folders, so all of them
    /// count, and its folders are inputs too.
    Rootfs { label: String, path: PathBuf },
}

/// Whether a resolved input is a regular file, a symlink, or a folder (of
/// an [`Input::Rootfs`], or an empty one of an [`Input::Tree`]: its digest
/// is its listing's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    File,
    Symlink,
    Dir,
}

/// A declared input after the engine resolved and hashed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedInput {
    pub label: String,
    pub path: PathBuf,
    pub kind: InputKind,
    /// Unix permission bits (the exec bit matters for layers).
    pub mode: u32,
    /// Of an [`Input::Rootfs`]: every permission bit counts, not only the
    /// exec bit (see `inputs::fingerprint_value`).
    pub rootfs: bool,
    pub size: u64,
    /// blake3 of the content (of the link target for symlinks).
    pub digest: String,
    /// The `lstat` the digest was taken under: checked again after the step
    /// ran (an input edited meanwhile fails the step), and recorded in the
    /// build state.
    pub stat: super::stat::Stat,
}

/// How a step failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
        }
    }

    /// Wraps any error with what the step was doing.
    pub fn context(what: impl fmt::Display, err: impl fmt::Display) -> StepError {
        StepError::new(format!("{what}: {err}"))
    }
}

/// Where a published file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobSource {
    /// A file this step returned in [`StepOutput::files`], by name.
    Own(String),
    /// A blob already in the store (e.g. an upstream step's), by digest.
    Stored(String),
}

/// One file of a published folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishFile {
    /// Path inside the published folder.
    pub path: String,
    pub source: BlobSource,
}

/// Something a step publishes under `target/`. Folders are replaced as a whole,
/// atomically: a reader never sees a half-written one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    Dir {
        /// Relative to the target dir, e.g. `images/python_hello_user`.
        dir: String,
        files: Vec<PublishFile>,
    },
    File {
        /// Relative to the target dir, e.g. `policy/myPythonApp.yaml`.
        path: String,
        source: BlobSource,
    },
}

/// What a step returns.
#[derive(Debug, Default)]
pub struct StepOutput {
    /// A small JSON record (digests, MRENCLAVE, …) that downstream steps and
    /// messages read. Never put a secret here.
    pub record: serde_json::Value,
    /// Files the step made in its scratch folder, by name; moved into the store.
    pub files: BTreeMap<String, PathBuf>,
    /// Files already put into the store with [`StepContext::store_file`], by
    /// name → digest; checked for integrity like `files`.
    pub stored: BTreeMap<String, String>,
    /// What to publish under `target/`.
    pub publish: Vec<Publish>,
    /// For effect steps (not cached): whether the effect did anything.
    pub changed: bool,
    /// What this run did (e.g. an upload's predecessor): shown in messages, but
    /// not part of the output downstream steps see, so it does not dirty them.
    pub info: serde_json::Value,
    /// Warnings of this run, printed once (`warning: …`) when the step ran;
    /// kept nowhere: a fresh step, or a build replayed, does not show them.
    pub warnings: Vec<String>,
}

/// What a step gets to work with.
pub struct StepContext<'a> {
    /// The declared inputs, resolved and hashed, in declaration order.
    pub inputs: &'a [ResolvedInput],
    /// The declared deps, in declaration order; their records are parsed on
    /// first use.
    pub(crate) deps: &'a [Dep<'a>],
    /// The step this context is for (whose memo of its deps' fields
    /// [`StepContext::dep_fields`] keeps).
    pub(crate) step: &'a StepId,
    /// A fresh, empty folder for this run.
    pub scratch: &'a Path,
    pub(crate) store: &'a Store,
    /// What [`Step::prepare`] made, until the run takes it.
    pub(crate) prepared: Mutex<Option<Prepared>>,
}

/// What [`Step::prepare`] made, for the step's own [`Step::run`] to take
/// ([`StepContext::take_prepared`]).
pub type Prepared = Box<dyn std::any::Any + Send>;

/// The text fields [`StepContext::dep_fields`] read, by dep unit.
#[derive(Debug)]
pub struct DepFields<'s> {
    width: usize,
    at: HashMap<&'s str, usize>,
    values: Vec<String>,
}

impl<'s> DepFields<'s> {
    /// The values of the dep of this unit, in the order the names were given.
    pub fn get(&self, unit: &str) -> Option<&[String]> {
        let at = *self.at.get(unit)?;
        self.values.get(at..at + self.width)
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

/// The error of a dep whose result neither the build state nor the action
/// cache can give.
fn unreadable(dep: &Dep<'_>) -> StepError {
    StepError::new(format!(
        "the build state has no readable result of {}; run `scone clean` and build again",
        dep.id()
    ))
}

impl StepContext<'_> {
    /// The declared deps, in declaration order.
    pub fn deps(&self) -> &[Dep<'_>] {
        self.deps
    }

    /// The result of this dep, parsed on first use.
    pub fn record<'d>(&self, dep: &'d Dep<'_>) -> Result<&'d ActionRecord, StepError> {
        dep.record(self.store).ok_or_else(|| unreadable(dep))
    }

    /// The result of the dep with this kind (the first, if several).
    pub fn dep(&self, kind: &str) -> Result<&ActionRecord, StepError> {
        let dep = self
            .deps
            .iter()
            .find(|d| d.id().kind == kind)
            .ok_or_else(|| StepError::new(format!("internal: no `{kind}` dependency")))?;
        self.record(dep)
    }

    /// The text fields `names` of the `record` of every dep of `kind`, by the
    /// dep's unit (the first dep of a unit, if several): kept from this
    /// step's last run where the dep's output digest is the one kept then
    /// ([`super::dep_memo`]), else read from its record (on all cores). A
    /// missing or non-text field is an error.
    pub fn dep_fields(&self, kind: &str, names: &[&str]) -> Result<DepFields<'_>, StepError> {
        self.dep_fields_of(kind, names, |_| true)
    }

    /// [`StepContext::dep_fields`] of the deps of `kind` whose unit `wanted`
    /// takes (e.g. those a [`Step::prepare`] did not have).
    pub fn dep_fields_of(
        &self,
        kind: &str,
        names: &[&str],
        wanted: impl Fn(&str) -> bool,
    ) -> Result<DepFields<'_>, StepError> {
        use rayon::prelude::*;
        // Every unit of the kind (the first dep of each), and those asked for.
        let mut all = HashSet::new();
        let of_kind: Vec<&Dep<'_>> = self
            .deps
            .iter()
            .filter(|d| {
                let unit = d.id().unit.as_str();
                d.id().kind == kind && all.insert(unit) && wanted(unit)
            })
            .collect();
        let width = names.len();
        let place = dep_memo::worth_reading(of_kind.len(), all.len())
            .then(|| dep_memo::Place::new(self.store.root(), self.step, kind, names));
        let mut kept = place
            .as_ref()
            .map(|p| dep_memo::read(p, width))
            .unwrap_or_default();
        let mut values: Vec<Option<Vec<String>>> = of_kind
            .iter()
            .map(|d| {
                kept.remove(d.id().unit.as_str())
                    .filter(|k| k.digest == d.digest())
                    .map(|k| k.values)
            })
            .collect();
        let missed: Vec<usize> = (0..of_kind.len())
            .filter(|&i| values[i].is_none())
            .collect();
        let read: Vec<_> = missed
            .par_iter()
            .map(|&i| of_kind[i].fields(self.store, names))
            .collect();
        let read_count = missed.len();
        for (i, fields) in missed.into_iter().zip(read) {
            let dep = of_kind[i];
            match fields {
                Some(Ok(v)) => values[i] = Some(v),
                Some(Err(name)) => {
                    return Err(StepError::new(format!(
                        "internal: the record of {} has no text field `{name}`",
                        dep.id()
                    )))
                }
                None => return Err(unreadable(dep)),
            }
        }
        let values: Vec<Vec<String>> = values.into_iter().flatten().collect();
        if let Some(place) = place.filter(|_| dep_memo::worth_writing(read_count, all.len())) {
            // What this call read, and what it did not ask for of the deps
            // the step still has (a prepare's memo, as the run adds to it).
            let asked: HashSet<&str> = of_kind.iter().map(|d| d.id().unit.as_str()).collect();
            let others: Vec<(&str, &dep_memo::Kept)> = kept
                .iter()
                .filter(|(unit, _)| all.contains(unit.as_str()) && !asked.contains(unit.as_str()))
                .map(|(unit, k)| (unit.as_str(), k))
                .collect();
            let entries: Vec<(&str, &str, &[String])> = of_kind
                .iter()
                .zip(&values)
                .map(|(d, v)| (d.id().unit.as_str(), d.digest(), &v[..]))
                .chain(
                    others
                        .iter()
                        .map(|(unit, k)| (*unit, k.digest.as_str(), &k.values[..])),
                )
                .collect();
            dep_memo::write(&place, entries.into_iter());
        }
        let mut out = DepFields {
            width,
            at: HashMap::with_capacity(of_kind.len()),
            values: Vec::with_capacity(of_kind.len() * width),
        };
        for (dep, v) in of_kind.into_iter().zip(values) {
            out.at.insert(dep.id().unit.as_str(), out.values.len());
            out.values.extend(v);
        }
        Ok(out)
    }

    /// What [`Step::prepare`] made for this run, if it ran and made a `T`
    /// (taken: a second call gives `None`).
    pub fn take_prepared<T: 'static>(&self) -> Option<Box<T>> {
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?
            .downcast()
            .ok()
    }

    /// The store path of a file an upstream step made, checked (see
    /// [`StepContext::blob_path`]).
    pub fn dep_file(&self, record: &ActionRecord, name: &str) -> Result<PathBuf, StepError> {
        let digest = record.files.get(name).ok_or_else(|| {
            StepError::new(format!("internal: `{}` made no file `{name}`", record.step))
        })?;
        self.blob_path(digest)
    }

    /// The store path of a blob by digest, once the blob is known to hold it
    /// (through the path table: an untouched blob is not read again). A
    /// blob damaged since it was made is an error, never read: the step that
    /// made it runs again next time.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StepError> {
        if !self.store.blob_intact(digest) {
            return Err(StepError::new(format!(
                "the cached blob {digest} is missing or damaged; build again to make it anew"
            )));
        }
        Ok(self.store.blob_path(digest))
    }

    /// Puts bytes made in memory into the store now (to name in
    /// [`StepOutput::stored`]) and returns their digest: no scratch file to
    /// write and read back, and nothing written if the store has them.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<String, StepError> {
        self.store.ingest_bytes(bytes).map_err(|e| {
            StepError::context(
                format!("storing an output in {}", self.store.root().display()),
                e,
            )
        })
    }

    /// Puts the workspace files `files` into the store now, each with the
    /// digest its input was hashed to ([`crate::engine::Store::ingest_copies`]):
    /// a file that changed since is refused.
    pub fn store_files(&self, files: &[(&Path, &str)]) -> Result<(), StepError> {
        self.store.ingest_copies(files).map_err(|e| {
            StepError::context(
                format!(
                    "storing the files to copy in {}",
                    self.store.root().display()
                ),
                e,
            )
        })
    }

    /// Puts a file into the store now (e.g. a base layer a later step publishes)
    /// and returns its digest.
    pub fn store_file(&self, path: &Path) -> Result<String, StepError> {
        self.store.ingest_copy(path).map_err(|e| {
            StepError::context(
                format!(
                    "storing {} in {}",
                    path.display(),
                    self.store.root().display()
                ),
                e,
            )
        })
    }
}

/// A step of the build graph. See the module documentation.
pub trait Step: Send + Sync {
    fn id(&self) -> &StepId;
    /// Everything besides inputs and deps that decides the output.
    fn params(&self) -> BTreeMap<String, String>;
    /// What the params add to the fingerprint (see
    /// [`super::fingerprint::param_pairs`]); a step that has them at hand
    /// (a stored one, see `plan::stored`) gives them without its params.
    fn param_pairs(&self) -> Vec<(String, String)> {
        super::fingerprint::param_pairs(&self.params())
    }
    /// Workspace files and folders the step reads.
    fn inputs(&self) -> Vec<Input> {
        Vec::new()
    }
    /// Effect steps (upload, push) are not cached: they run every time and say
    /// through [`StepOutput::changed`] whether they did anything.
    fn cacheable(&self) -> bool {
        true
    }
    /// The step as JSON, for the plan the build state keeps
    /// (`plan::stored`, `docs/cache.md`); `None` (the default): the state
    /// keeps no plan with this step in it (effects: upload, push).
    fn stored(&self) -> Option<String> {
        None
    }
    /// The kind of dep [`Step::prepare`] does without; `None` (the default):
    /// the step has no `prepare`.
    fn prepare_without(&self) -> Option<&str> {
        None
    }
    /// The part of [`Step::run`] that needs no dep of the kind
    /// [`Step::prepare_without`] names. The engine may call it once, on a
    /// free worker while other steps run, for a step that will likely run:
    /// when every other dep is done, and those of that kind that are not are
    /// about to be (see the scheduler). `run` then waits for it and takes
    /// what it made with [`StepContext::take_prepared`]. Its context
    /// has the deps that are done, no inputs and no scratch folder (it may
    /// store bytes). It must not decide the output: `run` without it (not
    /// called, failed, or `None`) makes the same one; it only moves work off
    /// the build's critical path.
    fn prepare(&self, cx: &StepContext<'_>) -> Result<Option<Prepared>, StepError> {
        let _ = cx;
        Ok(None)
    }
    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A store that cannot take a file (a full disk, a folder in the way)
    /// is named in the error: the target dir's store, not the file read.
    #[test]
    fn a_store_that_cannot_take_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let store = Store::open(&target, Arc::default()).unwrap();
        std::fs::remove_dir_all(target.join(".scone/blobs")).unwrap();
        std::fs::write(target.join(".scone/blobs"), b"in the way").unwrap();
        let source = dir.path().join("layer.tar");
        std::fs::write(&source, b"bytes").unwrap();
        let id = StepId::new("base", "x");
        let cx = StepContext {
            inputs: &[],
            deps: &[],
            step: &id,
            scratch: dir.path(),
            store: &store,
            prepared: Mutex::new(None),
        };
        let root = target.join(".scone").display().to_string();
        for err in [
            cx.store_file(&source).unwrap_err().to_string(),
            cx.store_bytes(b"made").unwrap_err().to_string(),
        ] {
            assert!(err.contains(&format!("in {root}")), "{err}");
        }
    }
}
