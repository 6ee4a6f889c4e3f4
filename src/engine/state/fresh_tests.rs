//! The fresh list: what it lists, when a look at it holds, and what a
//! look that saw a path move hands the check.

use super::*;
use crate::engine::state::{Consult, LastBuild, PathEntry, StepEntry, Watched};

fn stat_of(path: &Path) -> Stat {
    Stat::of_path(path).expect("exists")
}

fn holds(bytes: &[u8], key: &Digest, own: &[&OsStr]) -> Option<FreshBuild> {
    look(bytes.to_vec(), key, own).into_fresh()
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
    // Stat'ed after they were made (their ctime is now).
    let taken_ns = super::super::super::stat::now_ns();
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
    let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[]) else {
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
    let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[]) else {
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
        let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[]) else {
            panic!("moved");
        };
        let elsewhere = dir.path().join("elsewhere");
        let wanted = |j: usize| match j == changed {
            true => elsewhere.as_os_str().as_bytes(),
            false => paths[j].as_os_str().as_bytes(),
        };
        assert_eq!(taken.stats_of(paths.len(), wanted), None, "path {changed}");
    }
    let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &[]) else {
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
    let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &own) else {
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
    let Look::Moved(taken) = look(bytes.clone(), &[1; 32], &own) else {
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
