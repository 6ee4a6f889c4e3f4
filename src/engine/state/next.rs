//! The state a build leaves: its steps' results and what they consulted,
//! the steps it reused or did not plan, and what its load read. Assembled and
//! written under the target lock, after every other file of the build.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::super::id::StepId;
use super::super::record::ActionRecord;
use super::super::stat::{content_digest, listing_digest, now_ns, Stat};
use super::{codec, BuildState, Consult, Digest, LastBuild, PathEntry, PathTable, StepEntry};
use super::{is_own_name, Watched, FILE};
use crate::watch::Watch;

/// A path a step that ran consulted, and what it depended on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Own {
    /// An input it read: the digest it was hashed to (through the path
    /// table), or `None` if it did not exist.
    Read(PathBuf, Option<Digest>),
    /// Something the build made: a published file with its digest (hex), or
    /// a published folder (`None`: listed when the state is written).
    Made(PathBuf, Option<String>),
    /// A blob of the store the step made, with its digest (hex): kept in the
    /// path table (so that checking the step's result later hashes nothing),
    /// not watched.
    Cached(PathBuf, String),
}

/// What a build that finished adds to the state.
#[derive(Default)]
pub struct NextState {
    /// The steps that ran (fresh, built or downloaded): id, record, consults.
    pub ran: Vec<(StepId, Arc<ActionRecord>, Vec<Own>)>,
    /// Steps reused as the last state had them.
    pub reused: Vec<StepId>,
    /// Every step the build planned, in plan order.
    pub planned: Vec<StepId>,
    /// Whether the plan covered the whole workspace: then the steps it did
    /// not plan (of removed services and meshes) are dropped.
    pub whole: bool,
    /// `None`: no replay next time (the build failed or had effects).
    pub last: Option<LastLoad>,
    /// Steps to forget (`scone clean -p`).
    pub dropped: Vec<StepId>,
}

/// What the build's load read, for [`LastBuild`].
pub struct LastLoad {
    pub key: Digest,
    pub started_ns: i64,
    /// The paths the load read, as [`observe`] saw them right after it.
    pub watched: Vec<Observed>,
    /// Names scone writes into the root besides `scone.lock`.
    pub own_names: Vec<std::ffi::OsString>,
    /// `scone.lock` as the build wrote it last, watched as it is now.
    pub lock: PathBuf,
    /// The output folders the build published into, watched as they are now.
    pub outputs: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// A path a load read, with its stat right after the load.
pub struct Observed {
    path: PathBuf,
    watch: Watch,
    stat: Option<Stat>,
    digest: Option<Digest>,
}

/// Stats the paths a load read (`watched`), right after it: anything that
/// changes later shows in its stat, and what changed while the load ran is
/// racy against `started_ns`. `root`: the workspace root and the digest of
/// its listing taken before the load (scone's own names left out), which
/// stands for the root's stat (the root changes when `scone.lock` is written).
pub fn observe(watched: &crate::watch::Watched, root: Option<(&Path, Digest)>) -> Vec<Observed> {
    use rayon::prelude::*;
    let mut strictest: BTreeMap<&Path, Watch> = BTreeMap::new();
    for (path, watch) in watched {
        let w = strictest.entry(path).or_insert(*watch);
        if *w == Watch::Kind {
            *w = *watch;
        }
    }
    let strictest: Vec<(&Path, Watch)> = strictest.into_iter().collect();
    strictest
        .into_par_iter()
        .map(|(path, watch)| {
            let stat = Stat::of_path(path);
            let digest = match (root, watch) {
                (Some((root, digest)), Watch::Listing) if root == path => Some(digest),
                (_, Watch::Kind) => stat
                    .filter(Stat::is_symlink)
                    .and_then(|s| content_digest(path, &s)),
                _ => None,
            };
            Observed {
                path: path.to_path_buf(),
                watch,
                stat,
                digest,
            }
        })
        .collect()
}

/// Paths of the next state, by path, each with its newest entry.
struct Paths {
    table: BTreeMap<Vec<u8>, PathEntry>,
}

impl NextState {
    /// Writes the state into `<target>/.scone/state`.
    pub fn write(self, target: &Path, table: PathTable) -> std::io::Result<()> {
        let state = self.assemble(target, table);
        match codec::encode(&state) {
            Some(bytes) => crate::durable::write_checked(&target.join(".scone").join(FILE), &bytes),
            None => crate::durable::remove_all(&target.join(".scone").join(FILE)),
        }
    }

    fn assemble(self, target: &Path, table: PathTable) -> BuildState {
        let recorded_ns = now_ns();
        let (previous, fresh, churned) = table.into_parts();
        let newest = |path: &Path| -> Option<PathEntry> {
            fresh
                .get(path)
                .cloned()
                .or_else(|| previous.path(path).cloned())
        };
        // The steps of the next state, by id: (record JSON, consults by path).
        struct Next {
            fingerprint: String,
            output: Arc<str>,
            record: Vec<u8>,
            consults: Vec<(PathBuf, Option<Digest>, bool)>,
        }
        let mut steps: BTreeMap<StepId, Next> = BTreeMap::new();
        let mut entries: HashMap<PathBuf, PathEntry> = HashMap::new();
        let keep_old = |id: &StepId| -> Option<Next> {
            let old = previous.step(id)?;
            Some(Next {
                fingerprint: old.fingerprint.clone(),
                output: Arc::clone(&old.output),
                record: old.record_bytes(&previous).to_vec(),
                consults: old
                    .consults
                    .iter()
                    .map(|c| {
                        let path = previous.paths[c.path as usize].path.clone();
                        (path, c.expect, c.watched)
                    })
                    .collect(),
            })
        };
        if !self.whole {
            for old in &previous.steps {
                if let Some(next) = keep_old(&old.id) {
                    steps.insert(old.id.clone(), next);
                }
            }
        }
        for id in &self.reused {
            if let Some(next) = keep_old(id) {
                steps.insert(id.clone(), next);
            }
        }
        for id in &self.dropped {
            steps.remove(id);
        }
        for (id, record, consulted) in self.ran {
            let mut consults = Vec::with_capacity(consulted.len());
            for own in consulted {
                match own {
                    Own::Read(path, expect) => consults.push((path, expect, true)),
                    Own::Made(path, digest) => {
                        let entry = made(&path, digest.as_deref(), fresh.get(&path), recorded_ns);
                        consults.push((path.clone(), entry.digest, true));
                        entries.insert(path, entry);
                    }
                    Own::Cached(path, digest) => {
                        let entry = made(&path, Some(&digest), fresh.get(&path), recorded_ns);
                        consults.push((path.clone(), entry.digest, false));
                        entries.insert(path, entry);
                    }
                }
            }
            // The fingerprint's inputs stay in the action cache (`--explain`
            // reads them there): the state holds what dependents read.
            let json = serde_json::to_vec(&super::super::record::RecordView::of(&record));
            let Ok(json) = json else {
                continue;
            };
            steps.insert(
                id,
                Next {
                    fingerprint: record.fingerprint.clone(),
                    output: record.output_digest().into(),
                    record: json,
                    consults,
                },
            );
        }
        // A blob another step published (the layer in every image of it) is
        // watched by its maker too, through the published hard link: a byte
        // changed there makes the maker check its result, and make it again.
        let store = target.join(".scone");
        let mut published: HashMap<Digest, &Path> = HashMap::new();
        for next in steps.values() {
            for (path, expect, watched) in &next.consults {
                if let (true, Some(d)) = (*watched, expect) {
                    if path.starts_with(target) && !path.starts_with(&store) {
                        published.entry(*d).or_insert(path);
                    }
                }
            }
        }
        let mut watch_links: Vec<(StepId, PathBuf, Digest)> = Vec::new();
        for (id, next) in &steps {
            let own: HashMap<Digest, &Path> = next
                .consults
                .iter()
                .filter(|(_, _, watched)| *watched)
                .filter_map(|(p, d, _)| Some(((*d)?, p.as_path())))
                .collect();
            for (_, expect, watched) in &next.consults {
                let Some(d) = expect.filter(|_| !*watched) else {
                    continue;
                };
                if own.contains_key(&d) {
                    continue;
                }
                if let Some(link) = published.get(&d) {
                    watch_links.push((id.clone(), link.to_path_buf(), d));
                }
            }
        }
        for (id, link, d) in watch_links {
            if let Some(next) = steps.get_mut(&id) {
                next.consults.push((link, Some(d), true));
            }
        }
        // Every path a step or the load consulted, with its newest entry.
        let mut paths = Paths {
            table: BTreeMap::new(),
        };
        let mut add = |path: &Path, entry: Option<PathEntry>| {
            let key = path.as_os_str().as_encoded_bytes().to_vec();
            if paths.table.contains_key(&key) {
                return;
            }
            let entry = entry.unwrap_or_else(|| PathEntry {
                path: path.to_path_buf(),
                stat: None,
                digest: None,
                taken_ns: recorded_ns,
            });
            paths.table.insert(key, entry);
        };
        for next in steps.values() {
            for (path, ..) in &next.consults {
                let entry = entries.get(path).cloned().or_else(|| newest(path));
                add(path, entry);
            }
        }
        let mut watched_raw = Vec::new();
        if let Some(load) = &self.last {
            let own: Vec<&std::ffi::OsStr> = load.own_names.iter().map(|n| n.as_os_str()).collect();
            for o in &load.watched {
                watched_raw.push((o.path.clone(), o.watch, o.stat, o.digest, load.started_ns));
            }
            let written = std::iter::once((&load.lock, Watch::Content))
                .chain(load.outputs.iter().map(|p| (p, Watch::Output)));
            for (path, watch) in written {
                let stat = Stat::of_path(path);
                let digest = stat.and_then(|s| {
                    if s.is_dir() {
                        listing_digest(path, |n| is_own_name(n, &own))
                    } else {
                        content_digest(path, &s)
                    }
                });
                watched_raw.push((path.clone(), watch, stat, digest, recorded_ns));
            }
            for (path, ..) in &watched_raw {
                let entry = newest(path);
                add(path, entry);
            }
        }
        // Publishing linked and unlinked shared inodes (a base layer is in
        // every image): their ctime moved under every path. An entry whose
        // stat differs from now in ctime alone keeps its digest.
        if !churned.is_empty() {
            use rayon::prelude::*;
            paths.table.par_iter_mut().for_each(|(_, entry)| {
                let Some(old) = entry.stat.filter(|s| churned.contains(&s.inode)) else {
                    return;
                };
                if let Some(now) = Stat::of_path(&entry.path) {
                    if now
                        == (Stat {
                            ctime_ns: now.ctime_ns,
                            ..old
                        })
                    {
                        entry.stat = Some(now);
                        entry.taken_ns = recorded_ns;
                    }
                }
            });
        }
        // Indices are positions in path order.
        let index: HashMap<&[u8], u32> = paths
            .table
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_slice(), i as u32))
            .collect();
        let at = |path: &Path| index.get(path.as_os_str().as_encoded_bytes()).copied();
        let mut bytes = Vec::new();
        let mut out_steps = Vec::with_capacity(steps.len());
        let mut position = HashMap::new();
        for (id, next) in steps {
            let start = bytes.len();
            bytes.extend_from_slice(&next.record);
            position.insert(id.clone(), out_steps.len() as u32);
            out_steps.push(StepEntry {
                id,
                fingerprint: next.fingerprint,
                output: next.output,
                record: start..bytes.len(),
                parsed: OnceLock::new(),
                consults: next
                    .consults
                    .iter()
                    .filter_map(|(path, expect, watched)| {
                        Some(Consult {
                            path: at(path)?,
                            expect: *expect,
                            watched: *watched,
                        })
                    })
                    .collect(),
            });
        }
        let last = self.last.map(|load| LastBuild {
            key: load.key,
            started_ns: load.started_ns,
            watched: watched_raw
                .into_iter()
                .filter_map(|(path, watch, stat, digest, taken_ns)| {
                    Some(Watched {
                        path: at(&path)?,
                        watch,
                        stat,
                        digest,
                        taken_ns,
                    })
                })
                .collect(),
            steps: self
                .planned
                .iter()
                .filter_map(|id| position.get(id).copied())
                .collect(),
            warnings: load.warnings,
        });
        // A planned step with no entry (it failed, or its record would not
        // encode): no replay.
        let last = last.filter(|l| l.steps.len() == self.planned.len());
        drop(index);
        BuildState {
            bytes: Arc::new(bytes),
            paths: paths.table.into_values().collect(),
            steps: out_steps,
            last,
        }
    }
}

/// The entry of a path the build made (`digest`: what it wrote there, hex;
/// `None` for a folder): this build's own entry while it still describes the
/// path, else its stat now with that digest (a folder's listing). Whoever
/// may write into `target/` while a build runs is trusted not to (see
/// docs/security.md): a file is not read back here.
fn made(path: &Path, digest: Option<&str>, fresh: Option<&PathEntry>, now_ns: i64) -> PathEntry {
    let stat = Stat::of_path(path);
    if let Some(e) = fresh.filter(|e| e.stat == stat && e.digest.is_some()) {
        return e.clone();
    }
    let digest = match (stat, digest) {
        (None, _) => None,
        (Some(s), None) if s.is_dir() => listing_digest(path, |_| false),
        (Some(_), Some(hex_digest)) => {
            let mut raw = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut raw)
                .ok()
                .map(|()| raw)
        }
        (Some(s), None) => content_digest(path, &s),
    };
    PathEntry {
        path: path.to_path_buf(),
        stat,
        digest,
        taken_ns: now_ns,
    }
}
