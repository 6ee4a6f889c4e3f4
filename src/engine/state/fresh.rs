//! The fresh list: the last part of the state file, all a no-op build
//! reads. ninja decides "nothing to do" from a flat log of paths and their
//! times; this is the same for scone: the paths whose `lstat`s, if each is
//! still the one listed, make [`super::BuildState::check`] answer
//! [`super::Verdict::Fresh`] — so the check need not decode the rest.
//!
//! It is written only when that holds for the state being written
//! ([`certify`]): every path the check would look at is listed once with one
//! stat (or as absent); none of them was racy when its stat was taken (the
//! check would hash it again), and every consulted file's known digest is the
//! one its step depends on. What scone wrote itself late in the build
//! (`scone.lock`, the root; an output folder that could not be pinned) is
//! listed with its digest, and compared by it when its stat moved or was
//! racy, as the check compares it. Otherwise the list is written empty and
//! *uncertified*, and a build decodes the whole state as before. So the
//! list adds no rule of its own: it is the check's rule evaluated when the
//! state is written, for the case where nothing it lists changed.
//!
//! ```text
//! "sconeFR1", scone's version, certified (0 | 1), and if 1:
//! key, planned step count, stored warnings,
//! paths: in chunks of 512 (sorted; each looked at by one thread): the
//!        number of chunks, then each as a byte string: its count, then per
//!        path the length it shares with the one before in the chunk, the
//!        rest, its stat as a byte string (the state's stat encoding; empty:
//!        absent), then 0 (the stat alone), or 1 (not racy) or 2 (racy)
//!        and the digest of what scone wrote there
//! checksum
//! ```

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;

use super::super::stat::{content_digest, listing_digest, lstat_from, Stat};
use super::super::wire::{put_var, put_var_bytes, seal, unseal, Reader};
use super::check::is_own_name;
use super::{BuildState, Digest, PathEntry};
use crate::watch::Watch;

const MAGIC: &[u8; 8] = b"sconeFR1";

/// What a replayed no-op needs from the last build, when its list holds.
#[derive(Debug, PartialEq, Eq)]
pub struct FreshBuild {
    /// How many steps the last build planned.
    pub steps: usize,
    /// Its load's warnings, as stored (see `cli::output::stored_warnings`).
    pub warnings: Vec<String>,
}

/// Per path index of `state.paths`: the stat the check needs it to have
/// (`Some(None)`: absent), or `None` if the check does not look at it. `None`
/// as a whole if a path's stat alone cannot show that it holds.
fn certify(state: &BuildState) -> Option<Vec<Option<Need>>> {
    let last = state.last.as_ref()?;
    let mut need: Vec<Option<Need>> = vec![None; state.paths.len()];
    let mut put = |i: u32, stat: Option<Stat>, then: Then| -> Option<()> {
        let slot = need.get_mut(i as usize)?;
        match slot {
            None => *slot = Some(Need { stat, then }),
            Some(n) if n.stat != stat => return None,
            Some(n) if n.then == then => {}
            // A path some step consulted and the load watched by digest: the
            // stricter rule, the stat, holds for both; unless the digest
            // must be compared (racy), which the list cannot ask with it.
            Some(n) => match (n.then, then) {
                (Then::Stat, Then::StatOrDigest { racy: false, .. }) => {}
                (Then::StatOrDigest { racy: false, .. }, Then::Stat) => n.then = Then::Stat,
                _ => return None,
            },
        }
        Some(())
    };
    for w in &last.watched {
        // A kind is the same under the same stat. What scone wrote itself
        // late in the build is compared by what it holds when its stat moved
        // or was racy; anything else needs the stat, not racy (see
        // `check::watched_holds`).
        let then = match (w.stat, w.digest) {
            (Some(s), Some(digest)) if w.watch != Watch::Kind => Then::StatOrDigest {
                racy: s.is_racy(w.taken_ns),
                digest,
            },
            (Some(s), None) if w.watch != Watch::Kind && s.is_racy(w.taken_ns) => return None,
            _ => Then::Stat,
        };
        put(w.path, w.stat, then)?;
    }
    for &s in &last.steps {
        for c in state
            .steps
            .get(s as usize)?
            .consults
            .iter()
            .filter(|c| c.watched)
        {
            let entry = state.paths.get(c.path as usize)?;
            match (entry.stat, c.expect) {
                (None, None) => put(c.path, None, Then::Stat)?,
                (Some(stat), Some(want))
                    if !stat.is_racy(entry.taken_ns) && entry.digest == Some(want) =>
                {
                    put(c.path, Some(stat), Then::Stat)?
                }
                _ => return None,
            }
        }
    }
    Some(need)
}

/// What a listed path must be for the check to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Need {
    /// Its `lstat` (`None`: absent).
    stat: Option<Stat>,
    then: Then,
}

/// How a listed path is held to what the check needs of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Its `lstat` is the listed one.
    Stat,
    /// What scone wrote itself late in the build (`scone.lock`, the output
    /// folders, the root): its listed `lstat`, not racy when taken; or else
    /// (moved, or racy) what it holds has `digest` — a folder's listing
    /// without scone's own names, a file's content — as
    /// `check::watched_holds` compares it.
    StatOrDigest { racy: bool, digest: Digest },
}

/// A stat as the list holds it, into `out` (cleared first): compared as
/// bytes, never decoded. Empty: absent.
fn stat_bytes(stat: Option<&Stat>, out: &mut Vec<u8>) {
    out.clear();
    if let Some(s) = stat {
        super::codec::put_stat(out, s);
    }
}

/// Paths per chunk of the list: each chunk is decoded and looked at by one
/// thread, its prefix compression starting over.
const CHUNK: usize = 512;

/// The fresh list of `state`, sealed.
pub(super) fn encode(state: &BuildState) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_var_bytes(
        &mut out,
        super::super::fingerprint::tool_version().as_bytes(),
    );
    match (certify(state), &state.last) {
        (Some(need), Some(last)) => {
            out.push(1);
            out.extend_from_slice(&last.key);
            put_var(&mut out, last.steps.len() as u64);
            put_var(&mut out, last.warnings.len() as u64);
            for w in &last.warnings {
                put_var_bytes(&mut out, w.as_bytes());
            }
            let listed: Vec<(&PathEntry, &Need)> = state
                .paths
                .iter()
                .zip(&need)
                .filter_map(|(entry, need)| Some((entry, need.as_ref()?)))
                .collect();
            // A listed path takes at most its bytes and 100 more: the
            // buffer never grows (see `codec::head_capacity`).
            out.reserve(
                listed
                    .iter()
                    .map(|(e, _)| e.path.as_os_str().len() + 100)
                    .sum(),
            );
            put_var(&mut out, listed.chunks(CHUNK).len() as u64);
            let (mut chunk, mut stat) = (Vec::new(), Vec::new());
            for part in listed.chunks(CHUNK) {
                chunk.clear();
                put_var(&mut chunk, part.len() as u64);
                let mut previous: &[u8] = &[];
                for (entry, need) in part {
                    let bytes = entry.path.as_os_str().as_encoded_bytes();
                    let shared = bytes
                        .iter()
                        .zip(previous)
                        .take_while(|(a, b)| a == b)
                        .count();
                    put_var(&mut chunk, shared as u64);
                    put_var_bytes(&mut chunk, &bytes[shared..]);
                    previous = bytes;
                    stat_bytes(need.stat.as_ref(), &mut stat);
                    put_var_bytes(&mut chunk, &stat);
                    match need.then {
                        Then::Stat => chunk.push(0),
                        Then::StatOrDigest { racy, digest } => {
                            chunk.push(1 + u8::from(racy));
                            chunk.extend_from_slice(&digest);
                        }
                    }
                }
                put_var_bytes(&mut out, &chunk);
            }
        }
        _ => out.push(0),
    }
    seal(&mut out);
    out
}

/// What looking at the fresh list found.
#[derive(Debug)]
pub enum Look {
    /// Every listed path is as listed: the last build's summary.
    Holds(FreshBuild),
    /// A listed path moved: the `lstat` of every listed path, which
    /// [`super::BuildState::check_with`] takes instead of its own.
    Moved(Taken),
    /// No list for a build with this key (none, uncertified, damaged, or
    /// another scone's).
    Unknown,
}

impl Look {
    /// The last build's summary, if the list holds.
    pub fn into_fresh(self) -> Option<FreshBuild> {
        match self {
            Look::Holds(fresh) => Some(fresh),
            Look::Moved(_) | Look::Unknown => None,
        }
    }
}

/// The `lstat`s a look at the fresh list took, in its order: every path
/// the check looks at, in path-table order. So a build whose list did not
/// hold `lstat`s each path once, not once for the list and again for the
/// check. Kept as the list itself and what the look found in each chunk:
/// nothing is copied out of it until the check asks, which compares the
/// listed paths with its own as it takes their stats.
#[derive(Debug)]
pub struct Taken {
    /// The list, as read.
    list: Vec<u8>,
    /// Each chunk: where it is in `list`, and what the look found in it.
    chunks: Vec<(std::ops::Range<usize>, Chunk)>,
}

impl Taken {
    /// The stats, chunk by chunk, if the paths taken are the `n` paths
    /// `wanted(0)`, …, `wanted(n - 1)`, in that order (compared chunk by
    /// chunk, in parallel); with each chunk, whether the look found all its
    /// paths as listed — the check's own rule held for each (see
    /// [`certify`]), so the check need not hash or list them again.
    pub(super) fn stats_of<'a>(
        self,
        n: usize,
        wanted: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Option<Vec<(Vec<Option<Stat>>, bool)>> {
        let Taken { list, chunks } = self;
        // Where each chunk's paths start among the wanted ones.
        let mut starts = Vec::with_capacity(chunks.len());
        let mut count = 0;
        for (range, _) in &chunks {
            starts.push(count);
            count += Reader(list.get(range.clone())?).var_len()?;
        }
        if count != n {
            return None;
        }
        chunks
            .into_par_iter()
            .zip(starts)
            .map(|((range, looked), start)| {
                stats_in(list.get(range)?, looked, |j| wanted(start + j))
            })
            .collect()
    }
}

/// The stats of one chunk's paths, if they are `wanted(0)`, … in order:
/// those the look took again where the chunk moved, else the listed ones
/// (but the stat now of a path that held by its digest); and whether the
/// chunk held.
fn stats_in<'a>(
    chunk: &[u8],
    looked: Chunk,
    wanted: impl Fn(usize) -> &'a [u8],
) -> Option<(Vec<Option<Stat>>, bool)> {
    let (mut stats, by_digest) = match looked {
        Chunk::Taken(now) => (Some(now), Vec::new()),
        Chunk::Held(by_digest) => (None, by_digest),
        Chunk::Moved => return None,
    };
    let held = stats.is_none();
    let mut listed = Vec::new();
    let mut by_digest = by_digest.into_iter().peekable();
    let (mut at, mut same, mut decoded) = (0, true, true);
    walk(chunk, |path, want, _| {
        same = path == wanted(at);
        if same && stats.is_none() {
            listed.push(match by_digest.next_if(|(i, _)| *i == at) {
                Some((_, stat)) => stat,
                None if want.is_empty() => None,
                None => {
                    let mut r = Reader(want);
                    let stat = super::codec::stat(&mut r);
                    decoded &= stat.is_some() && r.is_empty();
                    stat
                }
            });
        }
        at += 1;
        same
    })?;
    let stats = stats.take().unwrap_or(listed);
    (same && decoded && stats.len() == at).then_some((stats, held))
}

/// Whether the fresh list in `bytes` (sealed) holds for a build with `key`:
/// its last build's summary if every listed path's `lstat` is the one listed,
/// else the `lstat`s taken (see [`Look`]).
/// `moved` is called as soon as a listed path is seen to have moved (maybe
/// more than once, from any thread).
pub(super) fn look(
    bytes: Vec<u8>,
    key: &Digest,
    own: &[&OsStr],
    moved: &(dyn Fn() + Sync),
) -> Look {
    look_at(bytes, key, own, moved).unwrap_or(Look::Unknown)
}

fn look_at(
    bytes: Vec<u8>,
    key: &Digest,
    own: &[&OsStr],
    on_moved: &(dyn Fn() + Sync),
) -> Option<Look> {
    let body = unseal(&bytes)?;
    let mut r = Reader(body);
    if r.take(8)? != MAGIC
        || r.var_bytes()? != super::super::fingerprint::tool_version().as_bytes()
        || r.take(1)? != [1]
        || r.take(32)? != key
    {
        return None;
    }
    let steps = r.var_len()?;
    let n = r.var_len()?;
    let mut warnings = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        warnings.push(String::from_utf8(r.var_bytes()?.to_vec()).ok()?);
    }
    // The chunks, each decoded and looked at on its own, in parallel; every
    // one to the end, so that the check gets every stat if one moved.
    let n = r.var_len()?;
    let mut chunks: Vec<std::ops::Range<usize>> = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let len = r.var_bytes()?.len();
        let end = body.len() - r.0.len();
        chunks.push(end - len..end);
    }
    if !r.is_empty() {
        return None;
    }
    let cwd = std::env::current_dir().ok();
    let cwd = cwd.as_ref().map(|c| c.as_os_str().as_encoded_bytes());
    let looked: Vec<Chunk> = chunks
        .par_iter()
        .map(|range| look_at_chunk(&bytes[range.clone()], cwd, own, on_moved))
        .collect::<Option<_>>()?;
    if looked.iter().all(|c| matches!(c, Chunk::Held(_))) {
        return Some(Look::Holds(FreshBuild { steps, warnings }));
    }
    // The stats for the check: a chunk that held has the listed ones (but
    // where it held by digest); one that moved is stat'ed again, whole.
    let chunks = chunks
        .into_par_iter()
        .zip(looked)
        .map(|(range, looked)| match looked {
            Chunk::Moved => {
                let now = stat_again(&bytes[range.clone()], cwd)?;
                Some((range, Chunk::Taken(now)))
            }
            held => Some((range, held)),
        })
        .collect::<Option<_>>()?;
    Some(Look::Moved(Taken {
        list: bytes,
        chunks,
    }))
}

/// What a look at one chunk found.
#[derive(Debug)]
enum Chunk {
    /// Every path as listed; the `lstat`s of those that held by digest
    /// with another stat, by their place in the chunk.
    Held(Vec<(usize, Option<Stat>)>),
    /// A path moved (the rest of the chunk was not looked at).
    Moved,
    /// A path moved, and every path's `lstat` was taken again, in order.
    Taken(Vec<Option<Stat>>),
}

/// Calls `each(path, listed stat bytes, then)` for every path of `chunk`, in
/// order, until it returns `false`; `None` if the chunk does not decode.
fn walk(chunk: &[u8], mut each: impl FnMut(&[u8], &[u8], Then) -> bool) -> Option<()> {
    let mut r = Reader(chunk);
    let n = r.var_len()?;
    let mut path: Vec<u8> = Vec::with_capacity(256);
    for _ in 0..n {
        let shared = r.var_len()?;
        if shared > path.len() {
            return None;
        }
        path.truncate(shared);
        path.extend_from_slice(r.var_bytes()?);
        let want = r.var_bytes()?;
        let then = match *r.take(1)?.first()? {
            0 => Then::Stat,
            code @ (1 | 2) => Then::StatOrDigest {
                racy: code == 2,
                digest: r.take(32)?.try_into().ok()?,
            },
            _ => return None,
        };
        if !each(&path, want, then) {
            return Some(());
        }
    }
    r.is_empty().then_some(())
}

/// Whether every path of one chunk is as listed; `None` if the chunk does
/// not decode.
fn look_at_chunk(
    chunk: &[u8],
    cwd: Option<&[u8]>,
    own: &[&OsStr],
    on_moved: &(dyn Fn() + Sync),
) -> Option<Chunk> {
    let mut moved = false;
    let mut by_digest = Vec::new();
    let mut now_bytes = Vec::with_capacity(64);
    let mut at = 0;
    walk(chunk, |path, want, then| {
        let p = Path::new(OsStr::from_bytes(path));
        let now = lstat_from(cwd, p);
        stat_bytes(now.as_ref(), &mut now_bytes);
        let same = now_bytes == want;
        let holds = match then {
            Then::Stat => same,
            Then::StatOrDigest { racy, digest } => {
                (same && !racy)
                    || now.is_some_and(|now| {
                        let held = if now.is_dir() {
                            listing_digest(p, |n| is_own_name(n, own))
                        } else {
                            content_digest(p, &now)
                        };
                        held == Some(digest)
                    })
            }
        };
        if holds && !same {
            by_digest.push((at, now));
        }
        at += 1;
        moved = !holds;
        holds
    })?;
    Some(if moved {
        on_moved();
        Chunk::Moved
    } else {
        Chunk::Held(by_digest)
    })
}

/// The `lstat`s now of a chunk's paths, in order.
fn stat_again(chunk: &[u8], cwd: Option<&[u8]>) -> Option<Vec<Option<Stat>>> {
    let mut now = Vec::new();
    walk(chunk, |path, _, _| {
        now.push(lstat_from(cwd, Path::new(OsStr::from_bytes(path))));
        true
    })?;
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{Consult, LastBuild, PathEntry, StepEntry, Watched};

    fn stat_of(path: &Path) -> Stat {
        Stat::of_path(path).expect("exists")
    }

    fn holds(bytes: &[u8], key: &Digest, own: &[&OsStr]) -> Option<FreshBuild> {
        look(bytes.to_vec(), key, own, &|| {}).into_fresh()
    }

    /// Writes `file` with an mtime long past (its stat is never racy).
    fn write_old(file: &Path, content: &str) {
        std::fs::write(file, content).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    /// A state whose last build watched `dir` and had one step consult
    /// `dir/a` (an old file, so its stat is not racy).
    fn state(dir: &Path) -> BuildState {
        let file = dir.join("a");
        write_old(&file, "a");
        let now = super::super::super::stat::now_ns();
        let mut state = BuildState {
            paths: vec![PathEntry {
                path: file.clone(),
                stat: Some(stat_of(&file)),
                digest: Some([7; 32]),
                taken_ns: now,
            }],
            ..BuildState::default()
        };
        state.steps.push(StepEntry {
            id: crate::engine::id::StepId::new("copy", "a"),
            fingerprint: "ab".repeat(32),
            output: "cd".repeat(32).into(),
            record: super::super::RecordAt::in_log(0, 0, [0; 32]),
            parsed: std::sync::OnceLock::new(),
            consults: vec![Consult {
                path: 0,
                expect: Some([7; 32]),
                watched: true,
            }],
        });
        state.last = Some(LastBuild {
            key: [1; 32],
            steps: vec![0],
            warnings: vec!["w".into()],
            plan: Default::default(),
            watched: vec![Watched {
                path: 0,
                watch: Watch::Content,
                stat: Some(stat_of(&file)),
                digest: None,
                taken_ns: now,
            }],
            ..LastBuild::default()
        });
        state
    }

    /// Adds `n` old files in `dir` (and `extra`) to the path table of
    /// [`state`]'s, sorted; the step consults every file and `dir/a`, which
    /// the load still watches. Returns the files.
    fn with_files(
        state: &mut BuildState,
        dir: &Path,
        n: usize,
        extra: Option<PathEntry>,
    ) -> Vec<std::path::PathBuf> {
        let files: Vec<_> = (0..n)
            .map(|i| {
                let file = dir.join(format!("f{i:05}"));
                write_old(&file, "x");
                file
            })
            .collect();
        let taken_ns = state.paths[0].taken_ns;
        state.paths.extend(extra);
        state.paths.extend(files.iter().map(|f| PathEntry {
            path: f.clone(),
            stat: Some(stat_of(f)),
            digest: Some([9; 32]),
            taken_ns,
        }));
        state
            .paths
            .sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        let at = |p: &Path| state.paths.iter().position(|e| e.path == p).unwrap() as u32;
        let a = at(&dir.join("a"));
        let consults = files
            .iter()
            .map(|f| (at(f), [9; 32]))
            .chain(std::iter::once((a, [7; 32])))
            .map(|(path, expect)| Consult {
                path,
                expect: Some(expect),
                watched: true,
            })
            .collect();
        state.steps[0].consults = consults;
        if let Some(last) = state.last.as_mut() {
            last.watched[0].path = a;
        }
        files
    }

    #[test]
    fn holds_while_every_listed_stat_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let bytes = encode(&state);
        let fresh = holds(&bytes, &[1; 32], &[]).expect("holds");
        assert_eq!(fresh.steps, 1);
        assert_eq!(fresh.warnings, vec!["w".to_string()]);
        assert_eq!(holds(&bytes, &[2; 32], &[]), None, "another key");
        std::fs::write(dir.path().join("a"), "b").unwrap();
        assert_eq!(holds(&bytes, &[1; 32], &[]), None, "an edited file");
    }

    #[test]
    fn a_list_of_many_chunks_sees_a_change_in_any_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state(dir.path());
        let files = with_files(&mut state, dir.path(), CHUNK * 2 + 40, None);
        let bytes = encode(&state);
        assert!(holds(&bytes, &[1; 32], &[]).is_some(), "all as listed");
        std::fs::write(&files[CHUNK * 2 + 30], "y").unwrap();
        assert_eq!(
            holds(&bytes, &[1; 32], &[]),
            None,
            "a file of the third chunk"
        );
        // Every listed path's stat is taken, in path-table order, as the
        // check would take them itself; with them the check answers the same.
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[], &|| {}) else {
            panic!("a moved path gives the stats taken");
        };
        let paths: Vec<&Path> = state.paths.iter().map(|e| e.path.as_path()).collect();
        let stats = taken
            .stats_of(paths.len(), |j| paths[j].as_os_str().as_bytes())
            .expect("the check's paths");
        let held: Vec<bool> = stats.iter().map(|(_, held)| *held).collect();
        assert_eq!(held, [true, true, false], "the third chunk moved");
        let stats: Vec<_> = stats.into_iter().flat_map(|(s, _)| s).collect();
        assert_eq!(stats, super::super::super::stat::stat_all(&paths));
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[], &|| {}) else {
            panic!("moved");
        };
        let other = |j: usize| state.paths[j + 1].path.as_os_str().as_bytes();
        assert_eq!(
            taken.stats_of(paths.len() - 1, other),
            None,
            "other paths: not used"
        );
        // The same number of paths, one of them another: not used either,
        // whichever chunk it is in.
        for changed in [0, CHUNK + 3, paths.len() - 1] {
            let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[], &|| {}) else {
                panic!("moved");
            };
            let elsewhere = dir.path().join("elsewhere");
            let wanted = |j: usize| match j == changed {
                true => elsewhere.as_os_str().as_bytes(),
                false => paths[j].as_os_str().as_bytes(),
            };
            assert_eq!(taken.stats_of(paths.len(), wanted), None, "path {changed}");
        }
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[], &|| {}) else {
            panic!("moved");
        };
        let (with, without) = (
            state.check_with(&[1; 32], &[], Some(taken)),
            state.check(&[1; 32], &[]),
        );
        match (with, without) {
            (
                crate::engine::state::Verdict::Dirty {
                    dirty: a,
                    reason: ra,
                    ..
                },
                crate::engine::state::Verdict::Dirty {
                    dirty: b,
                    reason: rb,
                    ..
                },
            ) => assert_eq!((a, ra), (b, rb)),
            other => panic!("both dirty, the same steps: {other:?}"),
        }
    }

    #[test]
    fn a_folder_scone_wrote_into_is_held_to_its_listing_when_its_stat_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state(dir.path());
        let root = dir.path().to_path_buf();
        let own = [OsStr::new("scone.lock")];
        let digest = listing_digest(&root, |n| is_own_name(n, &own)).unwrap();
        state.paths.insert(
            0,
            crate::engine::state::PathEntry {
                path: root.clone(),
                stat: Some(stat_of(&root)),
                digest: None,
                taken_ns: 0,
            },
        );
        state.steps[0].consults[0].path = 1;
        if let Some(last) = state.last.as_mut() {
            last.watched[0].path = 1;
            last.watched.push(Watched {
                path: 0,
                watch: Watch::Listing,
                stat: Some(stat_of(&root)),
                digest: Some(digest),
                taken_ns: super::super::super::stat::now_ns(),
            });
        }
        let bytes = encode(&state);
        assert!(holds(&bytes, &[1; 32], &own).is_some());
        // scone's own file written after the listing: the stat moved, the
        // listing without it did not.
        std::fs::write(root.join("scone.lock"), "lock").unwrap();
        assert!(holds(&bytes, &[1; 32], &own).is_some(), "its own name");
        std::fs::write(root.join("new.yml"), "x").unwrap();
        assert_eq!(
            holds(&bytes, &[1; 32], &own),
            None,
            "a name it did not write"
        );
    }

    /// [`state`] with `CHUNK + 20` files (two chunks) and `root`, which the
    /// load watched by its listing as the build left it: the state, the
    /// files and the root's place.
    fn with_root_listed(root: &Path, own: &[&OsStr]) -> (BuildState, Vec<std::path::PathBuf>, u32) {
        let mut state = state(root);
        let root_entry = crate::engine::state::PathEntry {
            path: root.to_path_buf(),
            ..Default::default()
        };
        let files = with_files(&mut state, root, CHUNK + 20, Some(root_entry));
        let digest = listing_digest(root, |n| is_own_name(n, own)).unwrap();
        let r = state.paths.iter().position(|e| e.path == root).unwrap() as u32;
        state.paths[r as usize].stat = Some(stat_of(root));
        if let Some(last) = state.last.as_mut() {
            last.watched.push(Watched {
                path: r,
                watch: Watch::Listing,
                stat: Some(stat_of(root)),
                digest: Some(digest),
                taken_ns: super::super::super::stat::now_ns(),
            });
        }
        (state, files, r)
    }

    /// When a path moved, the stats handed to the check are the ones it
    /// would take itself: listed ones for the chunks that held, the stat now
    /// of a folder that held by its listing, every stat of the chunk that
    /// moved.
    #[test]
    fn the_stats_handed_to_the_check_are_the_stats_now() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let own = [OsStr::new("scone.lock")];
        let (state, files, r) = with_root_listed(&root, &own);
        let bytes = encode(&state);
        assert!(holds(&bytes, &[1; 32], &own).is_some());
        // The root's stat moves (held by its listing), and a file of the
        // second chunk changes.
        std::fs::write(root.join("scone.lock"), "lock").unwrap();
        std::fs::write(files.last().unwrap(), "changed").unwrap();
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &own, &|| {}) else {
            panic!("a moved path gives the stats taken");
        };
        let paths: Vec<&Path> = state.paths.iter().map(|e| e.path.as_path()).collect();
        let stats: Vec<_> = taken
            .stats_of(paths.len(), |j| paths[j].as_os_str().as_bytes())
            .expect("the check's paths")
            .into_iter()
            .flat_map(|(s, _)| s)
            .collect();
        assert_eq!(stats, super::super::super::stat::stat_all(&paths));
        assert_ne!(
            stats[r as usize],
            Some(stat_of_listed(&state, r)),
            "the root's stat now, not the listed one"
        );
    }

    /// What the look showed by a digest (the root held by its listing, its
    /// stat moved) the check takes from it: the root is not listed again —
    /// a name added after the look is not seen by this build (the next one
    /// sees it) — while without the look the check lists it itself.
    #[test]
    fn the_check_does_not_list_again_what_the_look_held_by_its_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let own = [OsStr::new("scone.lock")];
        let (state, files, _) = with_root_listed(&root, &own);
        let bytes = encode(&state);
        std::fs::write(root.join("scone.lock"), "lock").unwrap();
        std::fs::write(files.last().unwrap(), "changed").unwrap();
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &own, &|| {}) else {
            panic!("a moved path gives the stats taken");
        };
        // A name the build did not write, after the look.
        std::fs::write(root.join("later.yml"), "x").unwrap();
        match state.check_with(&[1; 32], &own, Some(taken)) {
            crate::engine::state::Verdict::Dirty { dirty, .. } => {
                assert_eq!(dirty, [true], "the step of the changed file")
            }
            other => panic!("the root held when the look listed it: {other:?}"),
        }
        assert!(
            matches!(
                state.check(&[1; 32], &own),
                crate::engine::state::Verdict::Full { .. }
            ),
            "listed by the check itself, the root has a name it did not"
        );
    }

    fn stat_of_listed(state: &BuildState, i: u32) -> Stat {
        state.paths[i as usize].stat.expect("listed")
    }

    #[test]
    fn is_not_certified_where_a_stat_alone_cannot_show_the_check_s_answer() {
        let dir = tempfile::tempdir().unwrap();
        // The step depends on another digest than the path table knows.
        let mut s = state(dir.path());
        s.steps[0].consults[0].expect = Some([8; 32]);
        assert_eq!(holds(&encode(&s), &[1; 32], &[]), None);
        // The stat was taken right after the file was written (racy).
        let mut s = state(dir.path());
        s.paths[0].taken_ns = s.paths[0].stat.unwrap().mtime_ns + 1;
        assert_eq!(holds(&encode(&s), &[1; 32], &[]), None);
        // The load watched the file under another stat than the table's.
        let mut s = state(dir.path());
        if let Some(last) = s.last.as_mut() {
            last.watched[0].stat.as_mut().unwrap().size += 1;
        }
        assert_eq!(holds(&encode(&s), &[1; 32], &[]), None);
        // No last build.
        let mut s = state(dir.path());
        s.last = None;
        assert_eq!(holds(&encode(&s), &[1; 32], &[]), None);
        // Damage.
        let mut bytes = encode(&state(dir.path()));
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        assert_eq!(holds(&bytes, &[1; 32], &[]), None);
    }
}
