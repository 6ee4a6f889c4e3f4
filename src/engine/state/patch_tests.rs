//! A state written as patches reads back as the state written whole would,
//! and a patch cut off leaves the state before it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::next::WHOLE_ONLY;
use super::super::{BuildState, Digest, LastLoad, NextState, Own, PathTable, FILE};
use crate::engine::id::StepId;
use crate::engine::record::ActionRecord;
use crate::engine::stat::{content_digest, Stat};
use crate::watch::Watch;

/// What a state says, by path and step id rather than by place: paths no
/// step and no load uses are left out, and when a stat was taken.
/// A step: fingerprint, output, record, consults by path.
type StepView = (
    String,
    String,
    serde_json::Value,
    Vec<(PathBuf, Option<Digest>, bool)>,
);
/// The last build: key, watched paths, planned steps by id, plan.
type LastView = (
    Digest,
    Vec<(PathBuf, Watch, Option<Stat>, Option<Digest>)>,
    Vec<String>,
    Vec<u8>,
);

#[derive(Debug, PartialEq)]
struct View {
    steps: BTreeMap<String, StepView>,
    paths: BTreeMap<PathBuf, (Option<Stat>, Option<Digest>)>,
    last: Option<LastView>,
}

fn view(state: &BuildState) -> View {
    let mut paths = BTreeMap::new();
    let mut path = |i: u32| {
        let e = &state.paths[i as usize];
        paths.insert(e.path.clone(), (e.stat, e.digest));
        e.path.clone()
    };
    let steps = state
        .steps
        .iter()
        .map(|s| {
            let mut consults: Vec<_> = s
                .consults
                .iter()
                .map(|c| (path(c.path), c.expect, c.watched))
                .collect();
            consults.sort();
            let record = s.record(state).map(|r| r.record.clone());
            let value = (
                s.fingerprint.clone(),
                s.output.to_string(),
                record.unwrap_or_default(),
                consults,
            );
            (s.id.to_string(), value)
        })
        .collect();
    let last = state.last.as_ref().map(|l| {
        let watched = l
            .watched
            .iter()
            .map(|w| (path(w.path), w.watch, w.stat, w.digest))
            .collect();
        let planned = l
            .steps
            .iter()
            .map(|&s| state.steps[s as usize].id.to_string())
            .collect();
        (l.key, watched, planned, l.plan.to_vec())
    });
    View { steps, paths, last }
}

/// Sets `path`'s times long ago: not racy.
fn age(path: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

fn record(unit: &str, version: usize) -> Arc<ActionRecord> {
    Arc::new(ActionRecord {
        step: format!("k:{unit}"),
        fingerprint: format!("{version:02x}").repeat(32),
        record: serde_json::json!({ "unit": unit, "version": version }),
        files: BTreeMap::new(),
        publish: Vec::new(),
        info: serde_json::Value::Null,
        inputs: Vec::new(),
    })
}

/// A workspace of three units, `a`, `b` and `c`, each reading `src/<unit>`
/// and publishing `out/<unit>`; a mesh file the load reads.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        for d in ["src", "out"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for u in ["a", "b", "c"] {
            fs::write(dir.path().join("src").join(u), u).unwrap();
        }
        fs::write(dir.path().join("mesh.yml"), "kind: mesh").unwrap();
        let w = Workspace { dir };
        for p in ["src/a", "src/b", "src/c", "mesh.yml", "src", "out", ""] {
            age(&w.root().join(p));
        }
        w
    }

    /// Writes `text` into `src/<name>`, long ago.
    fn edit(&self, name: &str, text: &str) {
        let p = self.root().join("src").join(name);
        fs::write(&p, text).unwrap();
        age(&p);
        age(&self.root().join("src"));
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self) -> PathBuf {
        self.root().join(".scone").join(FILE)
    }

    /// A build in which `ran` ran (`(unit, version, extra input)`), the
    /// rest reused; the state written as a patch where it can be, unless
    /// `whole`. Returns what the state file then says.
    fn build(&self, ran: &[(&str, usize, Option<&str>)], whole: bool) -> View {
        let last = Arc::new(BuildState::load(self.root()));
        let table = PathTable::new(Arc::clone(&last), self.root());
        let ids: Vec<StepId> = ["a", "b", "c"]
            .iter()
            .map(|u| StepId::new("k", u))
            .collect();
        // Read through the table, as steps read their inputs.
        let read = |p: &Path| -> Option<Digest> {
            let hex = table.digest(p).ok()?.digest;
            let mut raw = [0; 32];
            hex::decode_to_slice(hex, &mut raw).ok()?;
            Some(raw)
        };
        let ran_now: Vec<_> = ran
            .iter()
            .map(|&(u, version, extra)| {
                let input = self.root().join("src").join(u);
                let out = self.root().join("out").join(u);
                let made = format!("{u}{version}");
                if fs::read_to_string(&out).ok().as_deref() != Some(made.as_str()) {
                    fs::write(&out, made).unwrap();
                    age(&out);
                }
                let digest = content_digest(&out, &Stat::of_path(&out).unwrap());
                let mut consults = vec![
                    Own::Read(input.clone(), read(&input)),
                    Own::Made(out.clone(), digest.map(hex::encode)),
                ];
                if let Some(extra) = extra {
                    let p = self.root().join("src").join(extra);
                    consults.push(Own::Read(p.clone(), read(&p)));
                }
                (StepId::new("k", u), record(u, version), consults)
            })
            .collect();
        let reused = ids
            .iter()
            .filter(|id| !ran.iter().any(|(u, ..)| id.unit == *u))
            .filter_map(|id| last.position(id))
            .collect();
        let mesh = self.root().join("mesh.yml");
        let watched = vec![(mesh, Watch::Content)];
        let load = LastLoad {
            key: [7; 32],
            started_ns: crate::engine::stat::now_ns(),
            watched: super::super::observe(&watched, None, |_| None),
            own_names: Vec::new(),
            lock: self.root().join("scone.lock"),
            outputs: vec![self.root().join("out")],
            warnings: vec!["w".into()],
            plan: Arc::from(&b"the plan"[..]),
        };
        let next = NextState {
            ran: ran_now,
            reused,
            planned: ids,
            whole: true,
            last: Some(load),
            dropped: Vec::new(),
        };
        drop(last);
        WHOLE_ONLY.with(|w| w.set(whole));
        next.write(self.root(), table).unwrap();
        WHOLE_ONLY.with(|w| w.set(false));
        view(&BuildState::load(self.root()))
    }
}

/// Build by build, the state patched reads back as the same builds written
/// whole do: the steps that ran replaced, a path new to the table, a step
/// that stops reading one, `scone.lock` appearing; and written whole again,
/// a patched state reads the same.
#[test]
fn a_patched_state_reads_back_as_the_state_written_whole() {
    let w = Workspace::new();
    let first = w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let len = fs::metadata(w.file()).unwrap().len();
    let builds: [&[(&str, usize, Option<&str>)]; 4] = [
        &[("a", 1, None)],
        &[("b", 1, Some("new"))],
        &[("b", 2, None), ("c", 1, Some("a"))],
        &[("a", 2, None), ("b", 3, None), ("c", 2, None)],
    ];
    let mut previous = first;
    for (n, ran) in builds.into_iter().enumerate() {
        if n == 1 {
            w.edit("new", "new");
        }
        if n == 2 {
            fs::write(w.root().join("scone.lock"), "pins").unwrap();
        }
        w.edit(ran[0].0, &format!("edit {n}"));
        let saved = fs::read(w.file()).unwrap();
        let whole = w.build(ran, true);
        assert_ne!(whole, previous, "build {n} changed the state");
        fs::write(w.file(), &saved).unwrap();
        let patched = w.build(ran, false);
        assert_eq!(patched, whole, "build {n}");
        let head = 8 + u64::from_le_bytes(saved[..8].try_into().unwrap()) as usize;
        assert!(
            fs::read(w.file()).unwrap().starts_with(&saved[..head]),
            "build {n} appended a patch"
        );
        previous = patched;
    }
    assert!(fs::metadata(w.file()).unwrap().len() > len);
    // Written whole (`scone clean --gc`), the patched state reads the same.
    BuildState::compact(w.root()).unwrap();
    assert_eq!(view(&BuildState::load(w.root())), previous);
}

/// A build killed while it appended its patch: the state is the one before
/// it, whatever was cut; no fresh list holds; the next build writes over the
/// cut patch.
#[test]
fn a_cut_patch_leaves_the_state_before_it() {
    let w = Workspace::new();
    let before = w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let end = fs::metadata(w.file()).unwrap().len();
    let whole = fs::read(w.file()).unwrap();
    w.edit("a", "edited");
    let after = w.build(&[("a", 1, None)], false);
    let patched = fs::read(w.file()).unwrap();
    assert_ne!(before, after);
    // The old fresh list and its length were at the end: the patch went
    // where the list began.
    let fresh_len = u64::from_le_bytes(whole[whole.len() - 8..].try_into().unwrap());
    let at = (end - 8 - fresh_len) as usize;
    assert_eq!(patched[..at], whole[..at]);
    for cut in [
        at + 1,
        at + 8,
        at + 40,
        patched.len() - 40,
        patched.len() - 1,
    ] {
        // What a killed write leaves: the new bytes up to the cut, the old
        // ones after it.
        let mut left = patched[..cut].to_vec();
        if cut < whole.len() {
            left.extend_from_slice(&whole[cut..]);
        }
        fs::write(w.file(), &left).unwrap();
        let state = BuildState::load(w.root());
        let read = view(&state);
        assert!(
            read == before || (read == after && cut >= patched.len() - 40),
            "cut at {cut}"
        );
        if cut < patched.len() - 40 {
            assert_eq!(read, before, "cut at {cut}");
        }
    }
    // The next build writes over what was cut, and reads back.
    fs::write(w.file(), &patched[..at + 40]).unwrap();
    w.edit("b", "edited");
    let next = w.build(&[("b", 1, None)], false);
    assert_eq!(view(&BuildState::load(w.root())), next);
    assert_ne!(next, before);
    // Its fresh list reads: `src/a`, edited by the build that was cut off,
    // is seen to have moved since the state the file holds.
    assert!(matches!(
        BuildState::fresh(w.root(), &[7; 32], &[]),
        super::super::Look::Moved(_)
    ));
    w.build(&[("a", 1, None)], false);
    let fresh = BuildState::fresh(w.root(), &[7; 32], &[]);
    assert!(fresh.into_fresh().is_some(), "then nothing moved");
}

/// Patches are appended until there are [`super::MOST`] of them; then the
/// state is written whole, and patches start again after it.
#[test]
fn patches_grow_to_their_budget_then_the_state_is_written_whole() {
    let w = Workspace::new();
    w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let head = |bytes: &[u8]| 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let patches = |bytes: &[u8]| {
        let fresh = 8 + u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
        bytes.len() as u64 - head(bytes) - fresh
    };
    let mut first = fs::read(w.file()).unwrap();
    for round in 0..2 {
        for n in 1..=super::MOST as usize + 1 {
            let version = round * 100 + n;
            w.edit("a", &format!("edit {version}"));
            let view = w.build(&[("a", version, None)], false);
            let bytes = fs::read(w.file()).unwrap();
            let whole = !bytes.starts_with(&first[..head(&first) as usize]);
            assert_eq!(whole, n > super::MOST as usize, "round {round}, build {n}");
            assert_eq!(patches(&bytes) == 0, whole, "round {round}, build {n}");
            assert_eq!(view.steps["k:a"].2["version"], version, "it reads back");
        }
        first = fs::read(w.file()).unwrap();
    }
}

/// The paths a read indexes apart (those out of order) are exactly the ones
/// patches appended before a path they sort after: none after a whole
/// write, the new one after a patch, still it after the patched table is
/// written whole as it is (`scone clean --gc`); and each is found where it
/// is.
#[test]
fn only_the_paths_patches_appended_are_out_of_order() {
    let w = Workspace::new();
    w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let state = BuildState::load(w.root());
    assert!(state.paths.len() > state.steps.len() + 1);
    assert!(state.appended.is_empty());
    w.edit("0new", "new");
    w.edit("b", "edit");
    w.build(&[("b", 1, Some("0new"))], false);
    let check = |state: &BuildState| {
        let new = w.root().join("src").join("0new");
        let appended: Vec<&Vec<u8>> = state.appended.keys().collect();
        assert_eq!(appended, [&new.as_os_str().as_encoded_bytes().to_vec()]);
        for (i, p) in state.paths.iter().enumerate() {
            assert_eq!(state.path(&p.path), Some(p), "path {i}");
        }
    };
    check(&BuildState::load(w.root()));
    BuildState::compact(w.root()).unwrap();
    check(&BuildState::load(w.root()));
}

/// A step's place looked for where the last build planned it is its place,
/// whether the plan's order is the last build's or not.
#[test]
fn a_step_is_found_where_it_was_planned_and_elsewhere() {
    let w = Workspace::new();
    w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let state = BuildState::load(w.root());
    let planned: Vec<StepId> = state
        .last
        .as_ref()
        .unwrap()
        .steps
        .iter()
        .map(|&p| state.steps[p as usize].id.clone())
        .collect();
    assert!(planned.len() >= 3);
    for (n, id) in planned.iter().enumerate() {
        let at = state.position(id);
        assert!(at.is_some());
        assert_eq!(state.planned_position(n, id), at, "{id} in its place");
        let elsewhere = (n + 1) % planned.len();
        assert_eq!(state.planned_position(elsewhere, id), at, "{id} elsewhere");
        assert_eq!(
            state.planned_position(planned.len() + 5, id),
            at,
            "{id} past the plan"
        );
    }
    let unknown = StepId {
        kind: "copy".into(),
        unit: "nowhere".into(),
    };
    assert_eq!(state.planned_position(0, &unknown), None);
}

/// The budget: fewer than [`super::MOST`] patches, together no longer than a
/// quarter of the head and [`super::SLACK`] — each bound on its own.
#[test]
fn a_patch_follows_while_the_patches_are_few_and_short() {
    use super::super::head::Extent;
    use super::{has_room, HEAD_PER_PATCHES, MOST, SLACK};
    let head = 4_000_000;
    let at = |patches: u32, bytes: u64| Extent {
        head,
        end: head + bytes,
        patches,
    };
    let most_bytes = head / HEAD_PER_PATCHES + SLACK;
    assert!(has_room(&at(0, 0)));
    assert!(has_room(&at(MOST - 1, most_bytes)));
    assert!(!has_room(&at(MOST, 0)), "eight patches");
    assert!(!has_room(&at(1, most_bytes + 1)), "one byte too long");
    // A small head: the slack alone.
    let small = Extent {
        head: 100,
        end: 100 + SLACK + 25,
        patches: 1,
    };
    assert!(has_room(&small));
    assert!(!has_room(&Extent {
        end: small.end + 1,
        ..small
    }));
}

/// The output folders a build wrote into are pinned: the next build holds
/// one by its stat alone (never racy, not listed), and a name written into
/// it later moves that stat — the check prunes.
#[test]
fn an_output_folder_is_held_by_its_pinned_stat_alone() {
    use super::super::{Look, Verdict};
    let w = Workspace::new();
    w.build(&[("a", 0, None), ("b", 0, None), ("c", 0, None)], false);
    let out = w.root().join("out");
    let stat = Stat::of_path(&out).unwrap();
    assert_eq!(
        stat.mtime_ns,
        crate::engine::stat::PINNED_MTIME_SECS * 1_000_000_000
    );
    let state = BuildState::load(w.root());
    let last = state.last.as_ref().unwrap();
    let entry = last
        .watched
        .iter()
        .find(|x| state.paths[x.path as usize].path == out)
        .unwrap();
    assert_eq!((entry.stat, entry.digest), (Some(stat), None), "not listed");
    assert!(
        matches!(BuildState::fresh(w.root(), &[7; 32], &[]), Look::Holds(_)),
        "held by its stat"
    );
    fs::write(out.join("foreign"), "x").unwrap();
    assert!(matches!(
        BuildState::fresh(w.root(), &[7; 32], &[]),
        Look::Moved(_)
    ));
    match state.check(&[7; 32], &[]) {
        Verdict::Dirty { prune: true, .. } => {}
        other => panic!("a name in an output folder: prune, {other:?}"),
    }
}
