//! The build state: everything scone remembers between two builds, in
//! `target/.scone/state` and the log of action records beside it
//! (`records`), written under the target lock at the end of every build
//! (cargo's `fingerprint/mod.rs` and ninja's `.ninja_log` + `.ninja_deps`
//! are the models).
//!
//! # What lives under `target/.scone`
//!
//! | file | what it holds | written | trusted when |
//! |---|---|---|---|
//! | `lock` | nothing: an `flock` | held from the start of a build until its last file is written | — |
//! | `state` | this module: the head (paths, steps with where each one's action record is in `records`, the last build), the patches of the builds since ([`patch`]), the fresh list | at the end of every build: a patch appended where the fresh list began, then the new list; whole (temp file, rename) when the steps are not the last state's, after eight patches or when they outgrow a quarter of the head, or when the record log was written whole | each part's seal (a blake3 keyed with this user's [`seal_key`](super::seal_key)) and scone's version match: a damaged head is no state (a full build), a damaged patch ends the state before it, a damaged list is no list |
//! | `records` | the action records the steps name, one after the other ([`records`]): a log | before `state`: a build appends the records that changed; written whole when less than half of it is named, or by `scone clean --gc` | per record: its bytes hash to the digest its step names; else it reads as none, and is taken from `actions/` |
//! | `actions/<name>.json` | the action cache: fingerprint → [`ActionRecord`](super::ActionRecord) (with the fingerprint's inputs, for `--explain`), named by the fingerprint's hash keyed with this user's [`seal_key`](super::seal_key) | when a step runs | it is found under that name (a record placed by anyone else is never looked up), parses, names its fingerprint, and every blob it names is intact |
//! | `blobs/<2 hex>/<blake3>` | every file a step made, by content | when a step runs | its content hashes to its name (through the path table) |
//! | `parse-cache.bin` | parsed manifests by their rendered text (`workspace::load`) | when a manifest was parsed | its seal holds; a pure function of the text, never stale |
//! | `memo/` | the sign step's memos: base layer indexes, an entry binary's digests, measured enclaves, SIGSTRUCTs (`steps::sign::memo`, docs/enclave.md) | when a sign step measured something new | sealed and keyed by the digests of all it depends on; a kept SIGSTRUCT only if it verifies |
//! | `memo/fields-<key>` | what a mesh step read of its deps' records, by their output digests ([`dep_memo`](super::dep_memo)) | when a step read a sixteenth of its deps of a kind (or 64) from their records | sealed; an entry only for the same dep with the same output digest, which hashes the record it was read from |
//! | `tmp/` | scratch folders of running steps | during a build | never: wiped at the start of each build |
//!
//! # What the state holds, and when each part is invalid
//!
//! | part | what | invalid when (the rule) |
//! |---|---|---|
//! | path table | per path: its last `lstat`, the digest of what it held under that stat (content, link target or listing), and when the stat was taken | the path's `lstat` differs, or it was changed within [`RACY_WINDOW_NS`](super::stat::RACY_WINDOW_NS) of the stat (racy): then the digest is unknown until hashed again |
//! | steps | per step id: its last fingerprint, output digest, where its action record is in the log, and every path it consulted with the digest it depended on (inputs, folders it listed, its published outputs and blobs) | a consulted path's digest is not known to be the one depended on: the step is *dirty* and is checked again (its fingerprint recomputed) |
//! | last build | the invocation key (scone's version, the folder, the command line and the environment that shape a build), the steps it planned, and every path the load read: `scone.toml` candidates, the files given, manifests, every folder the discovery walk listed and the ignore files it honoured, the kinds of the paths validation looked at (the entry-binary check's too), `scone.lock`, the output folders (pinned: see `next`); and the plan it ran (opaque here: `crate::plan::stored`) | another key; any of those paths changed (a listing, a manifest's stat, a kind): the workspace is loaded and planned again; an output folder's stat moved: the outputs are pruned. The plan also when the settings of the next plan have another digest (`scone.lock`'s pins, the keys' paths, …: compared by `plan::stored`) |
//!
//! So a build asks one question, [`BuildState::check`], and gets a
//! [`Verdict`]. The state file ends with the *fresh list* ([`fresh`]): the
//! check's own rule evaluated when the state was written, as a flat list of
//! paths and the `lstat` each must still have for the answer to be
//! [`Verdict::Fresh`]; a no-op reads only that ([`BuildState::fresh`]), as
//! ninja reads only its log. Any other answer decodes the state; where a
//! listed stat moved, the look hands the check every `lstat` it took
//! ([`Look::Moved`], [`BuildState::check_with`]), so each path is stat'ed once.
//!
//! | verdict | the build |
//! |---|---|
//! | [`Verdict::Fresh`] | nothing to do: the last build's step messages are replayed |
//! | [`Verdict::Dirty`] | takes the last build's plan if its settings are the same, else loads and plans (observing the load's paths through the stats the check took, either way); the steps none of whose paths changed (and none of whose deps' outputs change) are reused without being fingerprinted |
//! | [`Verdict::Full`] | loads and plans; every step is fingerprinted (through the path table, so unchanged files are not hashed) |
//!
//! A step's result is never trusted on a stat alone: a dirty step recomputes
//! its fingerprint, and a fingerprint is a hit only when its action record's
//! blobs are intact. Steps of units the last build did not plan (a `-p`
//! build) are kept, so a later full build finds them; a build that planned
//! the whole workspace drops the steps of removed units (their blobs and
//! actions stay in the store until `scone clean --gc`).

mod assemble;
mod check;
mod codec;
mod fields;
mod fresh;
mod head;
mod next;
mod patch;
mod paths;
mod records;

pub use check::{is_own_name, Seen, Verdict};
pub use fields::{fields_of, Fields};
pub use fresh::{FreshBuild, Look, Taken};
pub use next::{observe, observe_load, LastLoad, NextState, Observed, Own, Spent};
pub use paths::PathTable;
pub use records::RecordAt;
use records::Records;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::id::StepId;
use super::record::ActionRecord;
use super::stat::Stat;
use crate::watch::Watch;

/// A path as the state orders and indexes it: its bytes (`Path`'s own
/// order compares component by component, and costs milliseconds).
fn path_key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// The file's name under `target/.scone`.
pub const FILE: &str = "state";

/// A 32-byte digest (blake3), raw.
pub type Digest = [u8; 32];

/// What the state knows of one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathEntry {
    pub path: PathBuf,
    /// `None`: the path did not exist.
    pub stat: Option<Stat>,
    /// The digest of what it held under `stat`, if known.
    pub digest: Option<Digest>,
    /// When `stat` was taken (for [`Stat::is_racy`]).
    pub taken_ns: i64,
}

impl PathEntry {
    /// The digest of what the path holds now, if the entry still knows it:
    /// the stat is the same and was not racy.
    pub fn digest_if(&self, now: Option<&Stat>) -> Option<Digest> {
        match (&self.stat, now) {
            (Some(old), Some(now)) if old == now && !old.is_racy(self.taken_ns) => self.digest,
            _ => None,
        }
    }
}

/// A path a step depended on, and on what of it: `Some(digest)` of what it
/// held, `None` that it did not exist. An unwatched one (a blob of the store)
/// is not looked at by [`BuildState::check`]: it is kept only so that its
/// path table entry spares hashing it when the step's result is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consult {
    /// Index into [`BuildState::paths`].
    pub path: u32,
    pub expect: Option<Digest>,
    pub watched: bool,
}

/// The last result of one step.
#[derive(Debug)]
pub struct StepEntry {
    pub id: StepId,
    /// Hex, as the action cache names it.
    pub fingerprint: String,
    /// [`ActionRecord::output_digest`], hex.
    pub output: Arc<str>,
    /// Where its action record's JSON is ([`records`]).
    record: RecordAt,
    /// Parsed on first use.
    parsed: OnceLock<Option<Arc<ActionRecord>>>,
    pub consults: Vec<Consult>,
}

/// A path the last build's load read, and what of it that build depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// Index into [`BuildState::paths`].
    pub path: u32,
    pub watch: Watch,
    pub stat: Option<Stat>,
    /// For a listing scone writes into itself (the root, the output
    /// folders): the digest of the listing the build relied on, compared
    /// when the stat moved.
    pub digest: Option<Digest>,
    pub taken_ns: i64,
}

/// The last build that finished: what it planned and what its load read.
#[derive(Debug, Default)]
pub struct LastBuild {
    pub key: Digest,
    pub started_ns: i64,
    pub watched: Vec<Watched>,
    /// Indices into [`BuildState::steps`], in the order the build planned them.
    pub steps: Vec<u32>,
    /// The load's warnings, printed again when the build is replayed.
    pub warnings: Vec<String>,
    /// The plan it ran (`crate::plan::stored`), opaque here; empty: none.
    /// Valid while the load's paths and key hold, as the workspace is.
    pub plan: Arc<[u8]>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct BuildState {
    /// The log of the steps' action records ([`records`]).
    records: Records,
    /// Sorted by path bytes, but for the paths patches appended ([`patch`]),
    /// which are at the end, in `appended`.
    pub paths: Vec<PathEntry>,
    /// The paths at the end of [`Self::paths`] that are not in order, by
    /// their bytes.
    appended: HashMap<Vec<u8>, u32>,
    /// Sorted by id.
    pub steps: Vec<StepEntry>,
    /// `None` after a build that failed or had effects: no replay.
    pub last: Option<LastBuild>,
    /// Where the state file this was read from ends its head and patches
    /// (the next patch goes there), and how long its head is: `None` if it
    /// was not read from a file.
    file: Option<head::Extent>,
    /// There was a state file, and it did not read: another scone's (the
    /// first build after an upgrade), or damaged.
    unread: bool,
}

impl StepEntry {
    /// The step's action record, parsed once; `None` if its bytes are not
    /// the ones the state names, or do not parse.
    pub fn record(&self, state: &BuildState) -> Option<Arc<ActionRecord>> {
        self.parsed
            .get_or_init(|| {
                let bytes = state.records.read(&self.record)?;
                serde_json::from_slice(&bytes).ok().map(Arc::new)
            })
            .clone()
    }
}

impl BuildState {
    /// The paths the last build's load read, as it watched them: all it
    /// watched but `lock` and the output folders, which the build wrote and
    /// [`NextState`] watches apart.
    #[cfg(test)]
    pub fn load_paths(&self, lock: &Path) -> crate::watch::Watched {
        self.load_entries(lock)
            .map(|w| (self.paths[w.path as usize].path.clone(), w.watch))
            .collect()
    }

    /// The entries of [`Self::load_paths`].
    fn load_entries<'a>(&'a self, lock: &'a Path) -> impl Iterator<Item = &'a Watched> + 'a {
        self.last
            .iter()
            .flat_map(|last| last.watched.iter())
            .filter(|w| w.watch != Watch::Output && (w.path as usize) < self.paths.len())
            .filter(move |w| {
                !(w.watch == Watch::Content && self.paths[w.path as usize].path == lock)
            })
    }

    /// The state in `<target>/.scone`; empty if it is missing, damaged or
    /// written by another scone.
    pub fn load(target: &Path) -> BuildState {
        let dir = target.join(".scone");
        match records::open_regular(&dir.join(FILE)) {
            Some(file) => head::read(file, dir.join(records::FILE)).unwrap_or_else(|| BuildState {
                unread: true,
                ..BuildState::default()
            }),
            None => BuildState::default(),
        }
    }

    /// Writes the state in `<target>/.scone` again, its record log holding
    /// only the records its steps name (`scone clean --gc`).
    pub fn compact(target: &Path) -> std::io::Result<()> {
        let dir = target.join(".scone");
        let mut state = BuildState::load(target);
        if state.steps.is_empty() {
            return crate::durable::remove_all(&dir.join(records::FILE));
        }
        records::commit(&mut state, &dir, true)?;
        match head::encode(&state) {
            Some(encoded) => crate::durable::write_parts_checked(&dir.join(FILE), &encoded.parts()),
            None => Ok(()),
        }
    }

    /// A look at the fresh list of the state in `<target>/.scone` for a
    /// build with `key`: if it holds, [`Self::check`] would answer
    /// [`Verdict::Fresh`], and the rest of the state need not be read; if a
    /// listed path moved, the `lstat`s taken, for [`Self::check_with`] (see
    /// [`fresh`]). `own` as for [`Self::check`].
    pub fn fresh(target: &Path, key: &Digest, own: &[&std::ffi::OsStr]) -> Look {
        let Some(file) = records::open_regular(&target.join(".scone").join(FILE)) else {
            return Look::Unknown;
        };
        match head::read_fresh(&file) {
            Some(bytes) => fresh::look(bytes, key, own),
            None => Look::Unknown,
        }
    }

    /// The path table's entry for `path`.
    pub fn path(&self, path: &Path) -> Option<&PathEntry> {
        self.index_of(path_key(path))
            .map(|i| &self.paths[i as usize])
    }

    /// Where the path with these bytes is in [`Self::paths`].
    pub fn index_of(&self, key: &[u8]) -> Option<u32> {
        let sorted = self.paths.len() - self.appended.len();
        match self.paths[..sorted].binary_search_by(|e| path_key(&e.path).cmp(key)) {
            Ok(i) => Some(i as u32),
            Err(_) => self.appended.get(key).copied(),
        }
    }

    /// Adds a path the table does not hold, at its end.
    fn append_path(&mut self, entry: PathEntry) -> u32 {
        let at = self.paths.len() as u32;
        self.appended.insert(path_key(&entry.path).to_vec(), at);
        self.paths.push(entry);
        at
    }

    /// Indexes the paths from `sorted` on, the first that is not after the
    /// one before it: those at the end of the table that are out of order
    /// (appended by patches), after they were decoded.
    fn index_appended(&mut self, sorted: usize) {
        self.appended = (sorted.min(self.paths.len())..self.paths.len())
            .map(|i| (path_key(&self.paths[i].path).to_vec(), i as u32))
            .collect();
    }

    /// The places of the paths in path order (the table's own order unless
    /// patches appended paths).
    fn path_order(&self) -> Option<Vec<u32>> {
        if self.appended.is_empty() {
            return None;
        }
        let key = |i: &u32| path_key(&self.paths[*i as usize].path);
        let mut order: Vec<u32> = (0..self.paths.len() as u32).collect();
        order.sort_unstable_by(|a, b| key(a).cmp(key(b)));
        Some(order)
    }

    /// The last result of step `id`.
    pub fn step(&self, id: &StepId) -> Option<&StepEntry> {
        self.position(id).map(|i| &self.steps[i])
    }

    /// Where step `id` is in [`BuildState::steps`], looked for first where
    /// the last build planned its `n`th step: a plan kept, or planned again,
    /// lists its steps in the order the last one did (a binary search of
    /// thousands of ids per build, twice, cost milliseconds).
    pub fn planned_position(&self, n: usize, id: &StepId) -> Option<usize> {
        let last = self.last.as_ref().and_then(|l| l.steps.get(n));
        match last.map(|&p| p as usize) {
            Some(p) if self.steps.get(p).is_some_and(|s| &s.id == id) => Some(p),
            _ => self.position(id),
        }
    }

    /// Where step `id` is in [`BuildState::steps`].
    pub fn position(&self, id: &StepId) -> Option<usize> {
        let key = (id.kind.as_str(), id.unit.as_str());
        self.steps
            .binary_search_by(|s| (s.id.kind.as_str(), s.id.unit.as_str()).cmp(&key))
            .ok()
    }

    /// Whether the last build's load is still what the workspace is, and
    /// which of its steps may have changed: see [`Verdict`]. `own`: names
    /// scone writes into the workspace root besides `scone.lock` (the target
    /// folder's).
    pub fn check(&self, key: &Digest, own: &[&std::ffi::OsStr]) -> Verdict {
        check::check(self, key, own, None)
    }

    /// [`Self::check`], with the `lstat`s a look at the fresh list took
    /// ([`Look::Moved`]): used where they are the paths the check looks at
    /// (they are, when the list was written with this state), so that each
    /// is stat'ed once.
    pub fn check_with(
        &self,
        key: &Digest,
        own: &[&std::ffi::OsStr],
        taken: Option<Taken>,
    ) -> Verdict {
        check::check(self, key, own, taken)
    }
}

#[cfg(test)]
mod tests;
