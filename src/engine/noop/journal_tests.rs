use super::super::{Ran, Recorded, Seen, StepMessage, Verdict};
use super::*;
use crate::engine::noop::Consulted;
use crate::engine::statcache::Stat;
use std::fs;
use std::path::Path;

fn aged(path: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 5);
    filetime::set_file_mtime(path, t).unwrap();
}

fn stat(p: &Path) -> Stat {
    Stat::of(&fs::symlink_metadata(p).unwrap())
}

fn step(unit: &str, fingerprint: &str) -> StepMessage {
    StepMessage {
        kind: "copy".into(),
        unit: unit.into(),
        fingerprint: fingerprint.into(),
        files: vec![],
    }
}

/// Files `names` in a fresh folder, old enough not to be racy.
fn files<const N: usize>(dir: &Path, names: [&str; N]) -> [PathBuf; N] {
    names.map(|n| {
        let p = dir.join(n);
        fs::write(&p, n).unwrap();
        aged(&p);
        p
    })
}

/// A record of steps x (reads `a`) and y (reads `b`), saved whole in `rec`.
fn recorded(rec: &Path, a: &Path, b: &Path) {
    let at = |p: &Path, owner| Consulted {
        path: p.to_path_buf(),
        seen: Seen::Stat(stat(p)),
        owner: Some(owner),
    };
    NoopRecord::capture(
        "k".into(),
        "t".into(),
        vec![at(a, 0), at(b, 1)],
        vec![step("x", "x1"), step("y", "y1")],
        crate::engine::noop::now_ns(),
    )
    .unwrap()
    .save(rec)
    .unwrap();
}

fn dirty(rec: &Path) -> crate::engine::noop::Previous {
    match NoopRecord::check(rec, "k", false) {
        Verdict::Dirty(previous) => *previous,
        other => panic!("expected dirty, got {other:?}"),
    }
}

fn unchanged_steps(rec: &Path) -> Vec<StepMessage> {
    match NoopRecord::check(rec, "k", true) {
        Verdict::Unchanged { steps, .. } => steps.unwrap(),
        other => panic!("expected unchanged, got {other:?}"),
    }
}

/// Step `unit` ran again with `fingerprint`, reading `paths` as they are now.
fn ran(unit: &str, fingerprint: &str, paths: &[&Path]) -> Vec<Ran> {
    vec![Ran {
        step: step(unit, fingerprint),
        consulted: paths
            .iter()
            .map(|p| (p.to_path_buf(), Seen::Stat(stat(p))))
            .collect(),
    }]
}

/// [`recorded`], then `a` changes and x runs again ("x2"): saved as a journal.
fn journaled(rec: &Path, a: &Path, b: &Path) {
    recorded(rec, a, b);
    fs::write(a, "A!").unwrap();
    aged(a);
    dirty(rec)
        .record
        .patched(ran("x", "x2", &[a]), crate::engine::noop::now_ns())
        .unwrap()
        .save(rec)
        .unwrap();
}

#[test]
fn an_incremental_build_writes_a_journal_and_leaves_the_record_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b] = files(dir.path(), ["a", "b"]);
    recorded(&rec, &a, &b);
    let whole = fs::read(rec.join(".scone/noop.bin")).unwrap();

    // a changes: x runs again; the record is saved as a journal.
    fs::write(&a, "A!").unwrap();
    aged(&a);
    let previous = dirty(&rec);
    assert_eq!(previous.dirty, vec![true, false]);
    let patched = previous
        .record
        .patched(ran("x", "x2", &[&a]), crate::engine::noop::now_ns())
        .unwrap();
    patched.save(&rec).unwrap();
    assert_eq!(fs::read(rec.join(".scone/noop.bin")).unwrap(), whole);
    let journal = fs::read(rec.join(".scone/noop.log")).unwrap();
    assert!(journal.len() < 200, "{} bytes", journal.len());
    let steps = unchanged_steps(&rec);
    assert_eq!(steps[0].fingerprint, "x2", "the journal's step");
    assert_eq!(steps[1].fingerprint, "y1");

    // Then b changes: the next journal holds both changes.
    fs::write(&b, "B!").unwrap();
    aged(&b);
    let previous = dirty(&rec);
    assert_eq!(
        previous.dirty,
        vec![false, true],
        "a is as the journal has it"
    );
    previous
        .record
        .patched(ran("y", "y2", &[&b]), crate::engine::noop::now_ns())
        .unwrap()
        .save(&rec)
        .unwrap();
    assert_eq!(fs::read(rec.join(".scone/noop.bin")).unwrap(), whole);
    let steps = unchanged_steps(&rec);
    let prints: Vec<&str> = steps.iter().map(|s| s.fingerprint.as_str()).collect();
    assert_eq!(prints, ["x2", "y2"]);

    // Without its journal the record is the first build's: a and b changed.
    fs::remove_file(rec.join(".scone/noop.log")).unwrap();
    assert_eq!(dirty(&rec).dirty, vec![true, true]);
}

/// The record in `rec` as the next build reads it (its file and journal).
fn read_back(rec: &Path) -> NoopRecord {
    let bytes = fs::read(rec.join(".scone/noop.bin")).unwrap();
    let journal = fs::read(rec.join(".scone/noop.log")).ok();
    let journal = journal.as_deref().map(|j| decode(j).unwrap());
    super::super::encode::Lazy::decode(&bytes, journal)
        .unwrap()
        .into_record()
        .unwrap()
}

/// Whether `a` and `b` record the same paths and steps (their lists as
/// paths: indices differ once paths were added or dropped) at the same time.
fn same_record(a: &NoopRecord, b: &NoopRecord) {
    let paths = |r: &NoopRecord| -> Vec<(PathBuf, Option<Recorded>)> {
        r.files.iter().map(|(p, s)| (p.to_path_buf(), *s)).collect()
    };
    assert_eq!(paths(a), paths(b));
    let steps = |r: &NoopRecord| -> Vec<(String, Vec<PathBuf>)> {
        r.steps
            .iter()
            .map(|s| {
                let mut l: Vec<PathBuf> = s
                    .files
                    .iter()
                    .map(|&f| r.files.path(f as usize).to_path_buf())
                    .collect();
                l.sort();
                (s.fingerprint.clone(), l)
            })
            .collect()
    };
    assert_eq!(steps(a), steps(b));
    assert_eq!(a.written_at_ns, b.written_at_ns);
}

#[test]
fn paths_added_and_dropped_go_in_the_journal_too() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b, c, d] = files(dir.path(), ["a", "b", "c", "0d"]);
    recorded(&rec, &a, &b);
    let whole = fs::read(rec.join(".scone/noop.bin")).unwrap();

    // x now reads c and d as well (an image's new blob names, say).
    fs::write(&a, "A!").unwrap();
    aged(&a);
    let patched = dirty(&rec)
        .record
        .patched(ran("x", "x2", &[&a, &c, &d]), crate::engine::noop::now_ns())
        .unwrap();
    patched.save(&rec).unwrap();
    assert_eq!(fs::read(rec.join(".scone/noop.bin")).unwrap(), whole);
    same_record(&read_back(&rec), &patched);
    let steps = unchanged_steps(&rec);
    assert_eq!(steps[0].fingerprint, "x2");
    assert_eq!(steps[0].files.len(), 3);
    fs::write(&d, "D!").unwrap();
    assert_eq!(dirty(&rec).dirty, vec![true, false], "d is x's");

    // Then x reads a and d only: c is dropped, a and b renumbered.
    aged(&d);
    let patched = dirty(&rec)
        .record
        .patched(ran("x", "x3", &[&a, &d]), crate::engine::noop::now_ns())
        .unwrap();
    patched.save(&rec).unwrap();
    assert_eq!(fs::read(rec.join(".scone/noop.bin")).unwrap(), whole);
    let back = read_back(&rec);
    same_record(&back, &patched);
    assert_eq!(back.files.find(&c), None);
    fs::write(&c, "C!").unwrap();
    assert_eq!(unchanged_steps(&rec)[0].fingerprint, "x3", "c is no one's");
    fs::write(&b, "B!").unwrap();
    assert_eq!(dirty(&rec).dirty, vec![false, true], "y keeps b");

    // Written whole, the added and dropped paths are put in order.
    let mut whole = patched;
    whole.origin = None;
    whole.save(&rec).unwrap();
    assert!(!rec.join(".scone/noop.log").exists());
    let back = read_back(&rec);
    same_record(&back, &whole);
    assert!(back.files.is_ordered());
}

#[test]
fn a_new_step_writes_the_record_whole_and_removes_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b] = files(dir.path(), ["a", "b"]);
    journaled(&rec, &a, &b);
    assert!(rec.join(".scone/noop.log").exists());
    fs::write(&a, "A!!").unwrap();
    aged(&a);
    let mut both = ran("x", "x3", &[&a]);
    both.extend(ran("z", "z1", &[&a]));
    let patched = dirty(&rec)
        .record
        .patched(both, crate::engine::noop::now_ns())
        .unwrap();
    assert!(patched.origin.is_none(), "saved whole");
    patched.save(&rec).unwrap();
    assert!(!rec.join(".scone/noop.log").exists());
    let prints: Vec<String> = unchanged_steps(&rec)
        .into_iter()
        .map(|s| s.fingerprint)
        .collect();
    assert_eq!(prints, ["x3", "y1", "z1"]);
}

#[test]
fn a_journal_of_another_record_is_left_out_and_a_damaged_one_is_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let [a, b] = files(dir.path(), ["a", "b"]);
    journaled(&rec, &a, &b);
    let journal = fs::read(rec.join(".scone/noop.log")).unwrap();

    // A full save interrupted before it removed the journal.
    recorded(&rec, &a, &b);
    fs::write(rec.join(".scone/noop.log"), &journal).unwrap();
    let steps = unchanged_steps(&rec);
    assert_eq!(
        steps[0].fingerprint, "x1",
        "the new record's, not the journal's"
    );

    let mut damaged = journal.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    fs::write(rec.join(".scone/noop.log"), &damaged).unwrap();
    assert!(matches!(NoopRecord::check(&rec, "k", false), Verdict::Full));
    NoopRecord::invalidate(&rec).unwrap();
    assert!(!rec.join(".scone/noop.log").exists());
    assert!(!rec.join(".scone/noop.bin").exists());
}

#[test]
fn a_journal_too_big_to_be_worth_it_is_a_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let p = dir.path().join(n);
            fs::write(&p, n).unwrap();
            aged(&p);
            p
        })
        .collect();
    let consulted = paths
        .iter()
        .map(|p| Consulted {
            path: p.clone(),
            seen: Seen::Stat(stat(p)),
            owner: Some(0),
        })
        .collect();
    let record = NoopRecord::capture(
        "k".into(),
        "t".into(),
        consulted,
        vec![step("x", "x1")],
        crate::engine::noop::now_ns(),
    )
    .unwrap();
    let bytes = crate::engine::noop::encode::encode(&record);
    let read = crate::engine::noop::encode::Lazy::decode(&bytes, None)
        .unwrap()
        .into_record()
        .unwrap();
    let mut origin = read.origin.clone().unwrap();
    assert_eq!(paths.len(), 300);
    for i in 0..256 {
        origin.set(i);
    }
    assert!(encode(&read, &origin).is_some(), "256 of 300 paths");
    for i in 0..300 {
        origin.set(i);
    }
    assert!(encode(&read, &origin).is_none(), "300 of 300 paths");
    let mut other = read.clone();
    other.workspace = Some([9; 32]);
    assert!(encode(&other, &read.origin.unwrap()).is_none());
}
