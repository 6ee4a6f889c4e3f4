//! The build state's codec and its check, on real files.

use super::*;
use crate::engine::stat::Stat;
use std::fs;

fn entry(path: &Path) -> PathEntry {
    let stat = Stat::of_path(path);
    let digest = stat.and_then(|s| crate::engine::stat::content_digest(path, &s));
    PathEntry {
        path: path.to_path_buf(),
        stat,
        digest,
        taken_ns: crate::engine::stat::now_ns() + 1_000_000_000,
    }
}

fn record_json(step: &str, fp: &str) -> Vec<u8> {
    serde_json::to_vec(&ActionRecord {
        step: step.into(),
        fingerprint: fp.into(),
        record: serde_json::json!({"digest": "d"}),
        files: Default::default(),
        publish: Vec::new(),
        info: serde_json::Value::Null,
        inputs: vec![("file:a".into(), "x".into())],
    })
    .unwrap()
}

/// A state of one step that consulted `files`, planned by a last build with
/// `key` that watched `watched`.
fn state(files: &[&Path], watched: &[(&Path, Watch)], key: Digest) -> BuildState {
    let mut all: Vec<&Path> = files
        .iter()
        .chain(watched.iter().map(|(p, _)| p))
        .copied()
        .collect();
    all.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    all.dedup();
    let paths: Vec<PathEntry> = all.iter().map(|p| entry(p)).collect();
    let at = |p: &Path| paths.iter().position(|e| e.path == p).unwrap() as u32;
    let fp = "ab".repeat(32);
    let mut records = super::Records::default();
    let record = records.add(&record_json("copy:a", &fp));
    let steps = vec![StepEntry {
        id: StepId::new("copy", "a"),
        fingerprint: fp,
        output: "cd".repeat(32).into(),
        record,
        parsed: OnceLock::new(),
        consults: files
            .iter()
            .map(|p| Consult {
                path: at(p),
                expect: paths[at(p) as usize].digest,
                watched: true,
            })
            .collect(),
    }];
    let watched = watched
        .iter()
        .map(|(p, w)| Watched {
            path: at(p),
            watch: *w,
            stat: Stat::of_path(p),
            digest: None,
            taken_ns: crate::engine::stat::now_ns() + 1_000_000_000,
        })
        .collect();
    BuildState {
        records,
        paths,
        steps,
        last: Some(LastBuild {
            key,
            started_ns: 0,
            watched,
            steps: vec![0],
            warnings: vec!["w".into()],
            plan: Arc::from(&b"a plan"[..]),
        }),
        ..BuildState::default()
    }
}

fn age(path: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// `s` with its records in the log of `dir`, encoded: the state file.
fn written(s: &mut BuildState, dir: &Path) -> Vec<u8> {
    let store = dir.join(".scone");
    fs::create_dir_all(&store).unwrap();
    records::commit(s, &store, false).unwrap();
    head::encode(s).unwrap().to_vec()
}

/// A file `a` and a `mesh.yml` in `dir`, and the state of one step that
/// consulted `a`, last planned by a build with key `[7; 32]` that watched
/// the mesh, written to `dir/.scone/state`: `a` and the file's bytes.
fn one_step_written(dir: &Path) -> (PathBuf, Vec<u8>) {
    let (a, m) = (dir.join("a"), dir.join("mesh.yml"));
    fs::write(&a, "a").unwrap();
    fs::write(&m, "kind: mesh").unwrap();
    let mut s = state(&[&a], &[(&m, Watch::Content)], [7; 32]);
    let bytes = written(&mut s, dir);
    fs::write(dir.join(".scone").join(FILE), &bytes).unwrap();
    (a, bytes)
}

/// [`one_step_written`], the step's record in the log's layout (`record`
/// first) rather than the action cache's.
fn one_step_logged(dir: &Path) {
    let (a, m) = (dir.join("a"), dir.join("mesh.yml"));
    fs::write(&a, "a").unwrap();
    fs::write(&m, "kind: mesh").unwrap();
    let mut s = state(&[&a], &[(&m, Watch::Content)], [7; 32]);
    let whole: ActionRecord =
        serde_json::from_slice(&record_json("copy:a", &"ab".repeat(32))).unwrap();
    let logged = serde_json::to_vec(&crate::engine::record::RecordView::of(&whole)).unwrap();
    s.steps[0].record = s.records.add(&logged);
    let bytes = written(&mut s, dir);
    fs::write(dir.join(".scone").join(FILE), &bytes).unwrap();
}

fn log(dir: &Path) -> PathBuf {
    dir.join(".scone").join(records::FILE)
}

#[test]
fn the_codec_round_trips_and_damage_is_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let (a, m) = (dir.path().join("a"), dir.path().join("mesh.yml"));
    fs::write(&a, "a").unwrap();
    fs::write(&m, "kind: mesh").unwrap();
    let mut s = state(
        &[&a, &dir.path().join("gone")],
        &[(&m, Watch::Content)],
        [7; 32],
    );
    let bytes = written(&mut s, dir.path());
    let back = head::decode(bytes.clone(), log(dir.path())).unwrap();
    assert_eq!(back.paths, s.paths);
    assert_eq!(back.steps.len(), 1);
    assert_eq!(back.steps[0].consults, s.steps[0].consults);
    assert_eq!(back.steps[0].record, s.steps[0].record);
    assert_eq!(back.steps[0].record(&back).unwrap().inputs.len(), 1);
    let last = back.last.as_ref().unwrap();
    assert_eq!(last.watched, s.last.as_ref().unwrap().watched);
    assert_eq!(last.warnings, ["w"]);
    assert_eq!(&*last.plan, b"a plan");
    // Damage in the head is no state; in the fresh list after it (or its
    // length), the head still reads, and a no-op finds no list.
    let head_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for at in [0, 8, 16, 24, head_end / 2, head_end - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1;
        assert!(
            head::decode(damaged, log(dir.path())).is_none(),
            "a flipped byte at {at}"
        );
    }
    let cut = bytes[..bytes.len() - 1].to_vec();
    let mut longer = bytes.clone();
    longer.push(0);
    let mut fresh_damaged = bytes.clone();
    fresh_damaged[head_end + 3] ^= 1;
    for tail in [cut, longer, fresh_damaged] {
        let back = head::decode(tail.clone(), log(dir.path())).expect("the head reads");
        assert_eq!(back.paths, s.paths);
        assert_eq!(back.steps[0].consults, s.steps[0].consults);
        fs::write(dir.path().join(".scone").join(FILE), &tail).unwrap();
        assert!(
            matches!(BuildState::fresh(dir.path(), &[7; 32], &[]), Look::Unknown),
            "no list"
        );
    }
    assert!(head::decode(bytes[..head_end - 1].to_vec(), log(dir.path())).is_none());
}

#[test]
fn records_are_read_when_first_asked_for_and_damage_there_loses_only_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = one_step_written(dir.path());
    let file = dir.path().join(".scone").join(FILE);

    let back = BuildState::load(dir.path());
    assert!(
        back.records.file.get().is_none(),
        "loading the state reads no record"
    );
    assert_eq!(
        back.steps[0].record(&back).unwrap().fingerprint,
        "ab".repeat(32)
    );

    // A flipped byte in the record: the head (and so the check) still holds,
    // the record is not trusted.
    let good = fs::read(log(dir.path())).unwrap();
    let mut damaged = good.clone();
    damaged[good.len() / 2] ^= 1;
    fs::write(log(dir.path()), &damaged).unwrap();
    let back = BuildState::load(dir.path());
    assert_eq!(back.steps.len(), 1);
    assert!(back.last.is_some());
    assert!(back.steps[0].record(&back).is_none());

    // The log cut short, or gone: the same.
    fs::write(log(dir.path()), &good[..good.len() - 1]).unwrap();
    let back = BuildState::load(dir.path());
    assert!(back.last.is_some());
    assert!(back.steps[0].record(&back).is_none());
    fs::remove_file(log(dir.path())).unwrap();
    let back = BuildState::load(dir.path());
    assert!(back.last.is_some());
    assert!(back.steps[0].record(&back).is_none());

    // The state file cut off inside its head: no state at all.
    fs::write(log(dir.path()), &good).unwrap();
    let head_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    fs::write(&file, &bytes[..head_end - 1]).unwrap();
    assert!(BuildState::load(dir.path()).steps.is_empty());
}

#[test]
fn the_check_tells_fresh_dirty_and_full_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, m, lib) = (d.join("a"), d.join("mesh.yml"), d.join("lib"));
    fs::write(&a, "a").unwrap();
    fs::write(&m, "kind: mesh").unwrap();
    fs::create_dir(&lib).unwrap();
    for p in [&a, &m, &lib] {
        age(p);
    }
    let key = [1; 32];
    let fresh = || state(&[&a], &[(&m, Watch::Content), (&lib, Watch::Listing)], key);
    assert!(matches!(fresh().check(&key, &[]), Verdict::Fresh));
    assert!(
        matches!(fresh().check(&[2; 32], &[]), Verdict::Full { .. }),
        "another key"
    );
    let no_last = BuildState {
        last: None,
        ..fresh()
    };
    assert!(matches!(no_last.check(&key, &[]), Verdict::Full { .. }));
    // A consulted file edited: that step is dirty.
    let s = fresh();
    fs::write(&a, "b").unwrap();
    match s.check(&key, &[]) {
        Verdict::Dirty { dirty, reason, .. } => {
            assert_eq!(dirty, [true]);
            assert!(reason.contains("/a changed"), "{reason}");
        }
        v => panic!("{v:?}"),
    }
    // A watched listing gains an entry: the workspace is loaded again.
    let s = fresh();
    fs::write(lib.join("new"), "n").unwrap();
    assert!(matches!(s.check(&key, &[]), Verdict::Full { .. }));
}

#[test]
fn a_kind_watch_ignores_edits_but_not_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, "one").unwrap();
    age(&f);
    let key = [1; 32];
    let s = state(&[], &[(&f, Watch::Kind)], key);
    fs::write(&f, "two, longer").unwrap();
    assert!(
        matches!(s.check(&key, &[]), Verdict::Fresh),
        "an edit is no kind change"
    );
    fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &f).unwrap();
    assert!(matches!(s.check(&key, &[]), Verdict::Full { .. }));
}

#[test]
fn a_no_op_reads_only_the_fresh_list_and_a_foreign_length_is_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, bytes) = one_step_written(dir.path());
    let file = dir.path().join(".scone").join(FILE);
    let fresh = BuildState::fresh(dir.path(), &[7; 32], &[])
        .into_fresh()
        .expect("the list holds");
    assert_eq!(fresh.steps, 1);
    assert_eq!(fresh.warnings, ["w"]);
    assert!(
        matches!(BuildState::fresh(dir.path(), &[8; 32], &[]), Look::Unknown),
        "another key"
    );

    // The head damaged: a no-op still trusts the list (sealed on its own), a
    // build that must look further finds no state.
    let mut damaged = bytes.clone();
    damaged[8 + 20] ^= 1;
    fs::write(&file, &damaged).unwrap();
    assert!(BuildState::fresh(dir.path(), &[7; 32], &[])
        .into_fresh()
        .is_some());
    assert!(BuildState::load(dir.path()).last.is_none());

    // A file of another layout, whose first or last word is a huge length:
    // nothing of that size is allocated; no list, and no state where the
    // head's length is foreign.
    let mut foreign = bytes.clone();
    let end = foreign.len();
    foreign[end - 8..].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    fs::write(&file, &foreign).unwrap();
    assert!(matches!(
        BuildState::fresh(dir.path(), &[7; 32], &[]),
        Look::Unknown
    ));
    let mut foreign = bytes.clone();
    foreign[..8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    fs::write(&file, &foreign).unwrap();
    assert!(BuildState::load(dir.path()).last.is_none());

    // An edited file: the list no longer holds, and hands the check what
    // it stat'ed.
    fs::write(&file, &bytes).unwrap();
    fs::write(&a, "b").unwrap();
    assert!(matches!(
        BuildState::fresh(dir.path(), &[7; 32], &[]),
        Look::Moved(_)
    ));
}

#[test]
fn the_record_log_is_never_written_or_read_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (a, m) = (dir.path().join("a"), dir.path().join("mesh.yml"));
    fs::write(&a, "a").unwrap();
    fs::write(&m, "kind: mesh").unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    fs::create_dir_all(dir.path().join(".scone")).unwrap();
    std::os::unix::fs::symlink(&victim, log(dir.path())).unwrap();

    // A link planted where the log goes is replaced, not appended through.
    let mut s = state(&[&a], &[(&m, Watch::Content)], [7; 32]);
    let bytes = written(&mut s, dir.path());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(fs::symlink_metadata(log(dir.path())).unwrap().is_file());
    fs::write(dir.path().join(".scone").join(FILE), &bytes).unwrap();
    let back = BuildState::load(dir.path());
    assert!(back.steps[0].record(&back).is_some());

    // A link to a good log is not read through.
    let good = dir.path().join("good-log");
    fs::rename(log(dir.path()), &good).unwrap();
    std::os::unix::fs::symlink(&good, log(dir.path())).unwrap();
    let back = BuildState::load(dir.path());
    assert!(back.steps[0].record(&back).is_none());
    back.records.read_all();
    assert!(back.steps[0].record(&back).is_none());

    // Nor is the state file, nor a FIFO in its place (it would block).
    let file = dir.path().join(".scone").join(FILE);
    let copy = dir.path().join("good-state");
    fs::rename(&file, &copy).unwrap();
    std::os::unix::fs::symlink(&copy, &file).unwrap();
    assert!(BuildState::load(dir.path()).last.is_none());
    assert!(matches!(
        BuildState::fresh(dir.path(), &[7; 32], &[]),
        Look::Unknown
    ));
    fs::remove_file(&file).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(BuildState::load(dir.path()).last.is_none());
}

/// A state file made of `first`'s head up to the end of its first part
/// and `second`'s after it: the lengths made to fit, `second`'s fresh
/// list after.
fn spliced(first: &[u8], second: &[u8]) -> Vec<u8> {
    let number =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let first_end = |b: &[u8]| 24 + number(b, 8);
    let head_end = |b: &[u8]| 8 + number(b, 0);
    let mut out = first[..first_end(first)].to_vec();
    out.extend_from_slice(&second[first_end(second)..head_end(second)]);
    let head_len = (out.len() - 8) as u64;
    out[..8].copy_from_slice(&head_len.to_le_bytes());
    out.extend_from_slice(&second[head_end(second)..]);
    out
}

#[test]
fn a_state_that_does_not_read_is_named_as_such_not_as_no_build() {
    let dir = tempfile::tempdir().unwrap();
    let reason = |state: BuildState| match state.check(&[7; 32], &[]) {
        Verdict::Full { reason } => reason,
        other => panic!("a full build, not {other:?}"),
    };
    assert!(reason(BuildState::load(dir.path())).contains("no earlier build in this target folder"));
    let (_, bytes) = one_step_written(dir.path());
    let file = dir.path().join(".scone").join(FILE);
    // Another scone's (a byte of its version flipped; its seal fails too).
    let mut other = bytes.clone();
    let version = super::super::fingerprint::tool_version();
    let version = version.as_bytes();
    let at = bytes
        .windows(version.len())
        .position(|w| w == version)
        .unwrap();
    other[at] ^= 1;
    for unread in [other, b"not a state".to_vec()] {
        fs::write(&file, &unread).unwrap();
        let said = reason(BuildState::load(dir.path()));
        assert!(
            said.contains("another version of scone, or is damaged"),
            "{said}"
        );
    }
}

#[test]
fn the_two_parts_of_a_head_are_of_one_head() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, a) = one_step_written(one.path());
    let (_, b) = one_step_written(two.path());
    // Each file spliced with itself is itself, and reads.
    assert_eq!(spliced(&a, &a), a);
    assert!(head::decode(spliced(&b, &b), log(two.path())).is_some());
    // The paths of one state with the steps of another (both sealed with
    // this user's key): no state.
    assert!(head::decode(spliced(&a, &b), log(two.path())).is_none());
    assert!(head::decode(spliced(&b, &a), log(one.path())).is_none());
    // The opening's lengths are not sealed: any other split is no state.
    for (at, by) in [(8, 1u64), (8, u64::MAX), (16, 1), (0, 1)] {
        let mut moved = a.clone();
        let n = u64::from_le_bytes(moved[at..at + 8].try_into().unwrap());
        moved[at..at + 8].copy_from_slice(&n.wrapping_add(by).to_le_bytes());
        assert!(
            head::decode(moved, log(one.path())).is_none(),
            "the number at {at} moved by {by}"
        );
    }
}

#[test]
fn a_record_field_is_read_without_parsing_the_whole_record_and_trusted_as_much() {
    let dir = tempfile::tempdir().unwrap();
    one_step_logged(dir.path());

    let back = BuildState::load(dir.path());
    let step = &back.steps[0];
    let digest = || step.record_fields(&back, &["digest"]);
    assert_eq!(digest(), Some(Ok(vec!["d".to_string()])));
    assert!(
        step.parsed.get().is_none(),
        "the whole record is not parsed for its field"
    );
    // Once the whole record is parsed, the field is its.
    let parsed = step.record(&back).unwrap();
    assert_eq!(digest(), Some(fields_of(&parsed.record, &["digest"])));

    // A flipped byte in the log: no field, as no record.
    let good = fs::read(log(dir.path())).unwrap();
    let mut damaged = good.clone();
    damaged[good.len() - 3] ^= 1;
    fs::write(log(dir.path()), &damaged).unwrap();
    let back = BuildState::load(dir.path());
    assert_eq!(back.steps[0].record_fields(&back, &["digest"]), None);
    assert!(back.steps[0].record(&back).is_none());
}

#[test]
fn a_record_field_is_read_alone_where_the_record_starts_with_it() {
    let whole = ActionRecord {
        step: "image:a".into(),
        fingerprint: "ab".repeat(32),
        record: serde_json::json!({"reference": "r:1", "layers": ["x", {"y": "}"}]}),
        files: [("f".to_string(), "d".to_string())].into(),
        publish: Vec::new(),
        info: serde_json::json!({"ms": 3}),
        inputs: vec![("file:a".into(), "x".into())],
    };
    // As the log writes it: `record` first, the rest not read.
    let logged = serde_json::to_vec(&crate::engine::record::RecordView::of(&whole)).unwrap();
    assert!(logged.starts_with(b"{\"record\":"));
    let reference = |bytes: &[u8]| super::fields::text_fields(bytes, &["reference"]);
    assert_eq!(reference(&logged), Some(Ok(vec!["r:1".to_string()])));
    let back: ActionRecord = serde_json::from_slice(&logged).unwrap();
    assert_eq!(back.record, whole.record, "and the whole record reads back");
    // As the action cache writes it (`record` third): none here; a dep
    // reads such a record whole (`engine::dep`).
    let cached = serde_json::to_vec_pretty(&whole).unwrap();
    assert_eq!(reference(&cached), None);
    // Cut short: none.
    assert_eq!(reference(b"{\"record\":{\"a\":"), None);
}

/// A build that keeps the last plan observes the last load's paths by their
/// places in the state: the same entries `observe` gives for them.
#[test]
fn the_last_load_observed_by_place_is_the_load_observed_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a, mesh, link, out, lock) = (
        root.join("a"),
        root.join("mesh.yml"),
        root.join("link"),
        root.join("out"),
        root.join("scone.lock"),
    );
    fs::write(&a, "a").unwrap();
    fs::write(&mesh, "kind: mesh").unwrap();
    std::os::unix::fs::symlink("a", &link).unwrap();
    fs::create_dir(&out).unwrap();
    fs::write(&lock, "lock").unwrap();
    let watched = [
        (root, Watch::Listing),
        (link.as_path(), Watch::Kind),
        (mesh.as_path(), Watch::Content),
        (out.as_path(), Watch::Output),
        (lock.as_path(), Watch::Content),
    ];
    let s = state(&[&a], &watched, [7; 32]);
    fs::write(&a, "b").unwrap();
    let own = [std::ffi::OsStr::new("scone.lock")];
    let Verdict::Dirty { seen, .. } = s.check(&[7; 32], &own) else {
        panic!("an edited file: dirty");
    };
    let listing = crate::engine::stat::listing_digest(root, |n| is_own_name(n, &own));
    let root_listing = listing.map(|d| (root, d));
    let by_place = observe_load(&s, &lock, root_listing, &seen);
    let by_path = observe(&s.load_paths(&lock), root_listing, |p| seen.get(&s, p));
    assert_eq!(by_place, by_path);
    assert_eq!(
        by_place.len(),
        3,
        "the lock and the output folder are not the load's"
    );
}

/// A reused dep's fields: read alone from a record the log wrote (`record`
/// first), and from the whole record where its bytes are in another layout
/// (here the action cache's): the same values either way.
#[test]
fn a_reused_dep_gives_its_fields_in_either_layout() {
    use crate::engine::dep::{Dep, DepRecord};
    use crate::engine::store::Store;
    let id = StepId::new("copy", "a");
    for alone in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        match alone {
            false => drop(one_step_written(dir.path())),
            true => one_step_logged(dir.path()),
        }
        let state = Arc::new(BuildState::load(dir.path()));
        let fields = state.steps[0].record_fields(&state, &["digest"]);
        assert_eq!(fields.is_some(), alone);
        let store = Store::open(dir.path(), Arc::clone(&state)).unwrap();
        let dep = Dep::new(&id, "d".into(), DepRecord::Previous(0));
        assert_eq!(
            dep.fields(&store, &["digest"]),
            Some(Ok(vec!["d".to_string()])),
            "read alone: {alone}"
        );
        assert_eq!(
            state.steps[0].parsed.get().is_none(),
            alone,
            "the whole record parsed only where the field is not read alone"
        );
    }
}
