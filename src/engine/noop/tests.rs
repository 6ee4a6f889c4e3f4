use super::*;

fn aged(path: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 5);
    filetime::set_file_mtime(path, t).unwrap();
}

fn step(unit: &str) -> StepMessage {
    StepMessage {
        kind: "copy".into(),
        unit: unit.into(),
        fingerprint: format!("fp-{unit}"),
        files: vec![],
    }
}

fn at(path: &Path, seen: Seen, owner: Option<u32>) -> Consulted {
    Consulted {
        path: path.to_path_buf(),
        seen,
        owner,
    }
}

fn unchanged(v: &Verdict) -> Option<usize> {
    match v {
        Verdict::Unchanged { count, .. } => Some(*count),
        _ => None,
    }
}

#[test]
fn matches_until_something_changes() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let a = dir.path().join("a");
    fs::write(&a, b"one").unwrap();
    aged(&a);
    let missing = dir.path().join("missing");
    let r = NoopRecord::capture(
        "key".into(),
        "t".into(),
        vec![at(&a, Seen::Read, None), at(&missing, Seen::Read, None)],
        vec![step("x")],
        now_ns(),
    )
    .unwrap();
    r.save(&rec).unwrap();
    match NoopRecord::check(&rec, "key", true) {
        Verdict::Unchanged {
            count,
            steps,
            target,
        } => {
            assert_eq!(count, 1);
            assert_eq!(steps, Some(vec![step("x")]));
            assert_eq!(target, PathBuf::from("t"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        NoopRecord::check(&rec, "other key", false),
        Verdict::Full
    ));
    fs::write(&missing, b"new").unwrap();
    assert!(matches!(
        NoopRecord::check(&rec, "key", false),
        Verdict::Full
    ));
    fs::remove_file(&missing).unwrap();
    fs::write(&a, b"two").unwrap();
    aged(&a);
    assert!(
        matches!(NoopRecord::check(&rec, "key", false), Verdict::Full),
        "same size and mtime, new ctime"
    );
}

#[test]
fn only_the_steps_whose_paths_changed_are_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b, shared, manifest] = ["a", "b", "shared", "service.yml"].map(|n| {
        let p = dir.path().join(n);
        fs::write(&p, n).unwrap();
        aged(&p);
        p
    });
    let stat = |p: &Path| Stat::of(&fs::symlink_metadata(p).unwrap());
    NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![
            at(&a, Seen::Stat(stat(&a)), Some(0)),
            at(&b, Seen::Stat(stat(&b)), Some(1)),
            at(&shared, Seen::Stat(stat(&shared)), Some(0)),
            at(&shared, Seen::Stat(stat(&shared)), Some(1)),
            at(&manifest, Seen::Read, None),
        ],
        vec![step("x"), step("y")],
        now_ns(),
    )
    .unwrap()
    .save(&rec)
    .unwrap();
    assert_eq!(unchanged(&NoopRecord::check(&rec, "k", false)), Some(2));
    fs::write(&b, "B").unwrap();
    match NoopRecord::check(&rec, "k", false) {
        Verdict::Dirty(prev) => {
            assert_eq!(prev.dirty, vec![false, true]);
            let r = &prev.record;
            let x: Vec<_> = r.steps[0]
                .files
                .iter()
                .map(|&f| r.files.path(f as usize))
                .collect();
            assert_eq!(x, vec![&a, &shared]);
        }
        other => panic!("{other:?}"),
    }
    fs::write(&shared, "S").unwrap();
    match NoopRecord::check(&rec, "k", false) {
        Verdict::Dirty(prev) => assert_eq!(prev.dirty, vec![true, true]),
        other => panic!("{other:?}"),
    }
    fs::write(&manifest, "changed").unwrap();
    assert!(
        matches!(NoopRecord::check(&rec, "k", false), Verdict::Full),
        "a workspace file changed"
    );
}

#[test]
fn a_path_both_a_step_and_the_workspace_consulted_is_the_workspace_s() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let d = dir.path().join("svc");
    fs::create_dir(&d).unwrap();
    aged(&d);
    let stat = Stat::of(&fs::symlink_metadata(&d).unwrap());
    NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![at(&d, Seen::Stat(stat), Some(0)), at(&d, Seen::Read, None)],
        vec![step("x")],
        now_ns(),
    )
    .unwrap()
    .save(&rec)
    .unwrap();
    fs::write(d.join("new"), "n").unwrap();
    assert!(matches!(NoopRecord::check(&rec, "k", false), Verdict::Full));
}

#[test]
fn a_just_written_file_is_recorded_by_content_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let a = dir.path().join("scone.lock");
    let out = dir.path().join("out");
    fs::write(&a, b"one").unwrap();
    fs::create_dir(&out).unwrap();
    fs::write(out.join("f"), b"f").unwrap();
    let r = NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![at(&a, Seen::Own, None), at(&out, Seen::Own, Some(0))],
        vec![step("x")],
        0,
    )
    .unwrap();
    // Both were written within the racy window of the record: recorded by
    // content, not waited out.
    assert!(r.files.iter().all(|(_, f)| {
        let f = f.unwrap();
        is_racy(f.stat.mtime_ns, r.written_at_ns) && f.content.is_some()
    }));
    r.save(&rec).unwrap();
    assert_eq!(unchanged(&NoopRecord::check(&rec, "k", false)), Some(1));
    // A new name in the written folder: only the step that wrote it is dirty.
    fs::write(out.join("g"), b"g").unwrap();
    match NoopRecord::check(&rec, "k", false) {
        Verdict::Dirty(prev) => assert_eq!(prev.dirty, vec![true]),
        other => panic!("{other:?}"),
    }
    fs::remove_file(out.join("g")).unwrap();
    fs::write(&a, b"two").unwrap();
    assert!(matches!(NoopRecord::check(&rec, "k", false), Verdict::Full));
}

#[test]
fn a_file_changed_during_the_build_means_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    fs::write(&a, b"one").unwrap();
    aged(&a);
    let seen = Stat::of(&fs::symlink_metadata(&a).unwrap());
    let started = now_ns();
    let capture = |paths: Vec<Consulted>| {
        NoopRecord::capture("k".into(), "t".into(), paths, vec![step("x")], started)
    };
    assert!(capture(vec![at(&a, Seen::Stat(seen), Some(0))]).is_some());
    // Edited after the build read it (same size, an old mtime: only ctime moves).
    fs::write(&a, b"two").unwrap();
    aged(&a);
    assert!(capture(vec![at(&a, Seen::Stat(seen), Some(0))]).is_none());
    // A manifest edited after the build started.
    let m = dir.path().join("service.yml");
    fs::write(&m, b"x").unwrap();
    assert!(capture(vec![at(&m, Seen::Read, None)]).is_none());
    // What the build wrote itself is recorded as it is.
    assert!(capture(vec![at(&m, Seen::Own, None)]).is_some());
}

#[test]
fn garbage_is_no_record() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join(".scone")).unwrap();
    fs::write(dir.path().join(".scone/noop.bin"), b"sconeNP2\xff\xff").unwrap();
    assert!(matches!(
        NoopRecord::check(dir.path(), "k", true),
        Verdict::Full
    ));
}

#[test]
fn a_patched_record_re_records_only_the_steps_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b, old, new, lock] = ["a", "b", "old", "new", "scone.lock"].map(|n| {
        let p = dir.path().join(n);
        fs::write(&p, n).unwrap();
        aged(&p);
        p
    });
    let stat = |p: &Path| Stat::of(&fs::symlink_metadata(p).unwrap());
    let first = NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![
            at(&a, Seen::Stat(stat(&a)), Some(0)),
            at(&old, Seen::Stat(stat(&old)), Some(0)),
            at(&b, Seen::Stat(stat(&b)), Some(1)),
            at(&lock, Seen::Own, None),
        ],
        vec![step("x"), step("y")],
        now_ns(),
    )
    .unwrap();
    // Step x ran again: it read `a` (changed) and `new`, no longer `old`.
    fs::write(&a, "A!").unwrap();
    aged(&a);
    let mut x = step("x");
    x.fingerprint = "fp-x2".into();
    let ran = vec![Ran {
        step: x,
        consulted: vec![
            (a.clone(), Seen::Stat(stat(&a))),
            (new.clone(), Seen::Stat(stat(&new))),
        ],
    }];
    let started = now_ns();
    let mut patched = first.clone().patched(ran, started).unwrap();
    // scone.lock is written while the record is patched, and recorded after.
    fs::write(&lock, "lock 2").unwrap();
    patched
        .own_written(std::slice::from_ref(&lock), started)
        .unwrap();
    assert!(
        patched
            .clone()
            .own_written(&[new.with_extension("x")], started)
            .is_none(),
        "a workspace file the record does not have"
    );
    let paths: Vec<&Path> = patched.files.iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        vec![a.as_path(), b.as_path(), new.as_path(), lock.as_path()]
    );
    assert_eq!(patched.steps[0].fingerprint, "fp-x2");
    let read = |s: &StepMessage| -> Vec<&Path> {
        s.files
            .iter()
            .map(|&f| patched.files.path(f as usize))
            .collect()
    };
    assert_eq!(read(&patched.steps[0]), vec![a.as_path(), new.as_path()]);
    assert_eq!(
        read(&patched.steps[1]),
        vec![b.as_path()],
        "y keeps what it had"
    );
    assert_eq!(patched.files.find(&old), None, "no one reads old any more");
    patched.save(&rec).unwrap();
    assert_eq!(unchanged(&NoopRecord::check(&rec, "k", false)), Some(2));

    // A step that ran saw a path a reused step read in another state: no record.
    fs::write(&b, "B!").unwrap();
    aged(&b);
    let shared = vec![Ran {
        step: step("x"),
        consulted: vec![(b.clone(), Seen::Stat(stat(&b)))],
    }];
    assert!(first.patched(shared, now_ns()).is_none());
}

#[test]
fn steps_are_recorded_in_id_order_whatever_order_they_finished_in() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = ["a", "b"].map(|n| {
        let p = dir.path().join(n);
        fs::write(&p, n).unwrap();
        aged(&p);
        p
    });
    let stat = |p: &Path| Stat::of(&fs::symlink_metadata(p).unwrap());
    let r = NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![
            at(&a, Seen::Stat(stat(&a)), Some(1)),
            at(&b, Seen::Stat(stat(&b)), Some(0)),
        ],
        vec![step("y"), step("x")],
        now_ns(),
    )
    .unwrap();
    let units: Vec<&str> = r.steps.iter().map(|s| s.unit.as_str()).collect();
    assert_eq!(units, vec!["x", "y"]);
    assert_eq!(r.steps[0].files, vec![0], "x read a");
    assert_eq!(r.steps[1].files, vec![1], "y read b");
}
