//! The differential test of the incremental build (issue 21): scone promises that
//! after ANY sequence of edits one `scone build` gives exactly the outputs of a
//! build from scratch of the same tree. Here a generated workspace (several meshes
//! found by `members` globs, nested service folders copying files and folders, a
//! `dir:` base in the workspace, a `[signing] key`) goes through a seeded random
//! sequence of edits (see `support/differential/generate.rs` for the kinds), with
//! exactly one `scone build` after each, always the same command line and
//! environment. After every build `target/{images,enclave,policy,helm}` and
//! `scone.lock` must equal, byte for byte, those of a build from scratch of a copy
//! of the tree in a fresh folder with an empty user cache; a failing build must
//! fail the same way (exit code, first error line, failed steps). On a mismatch the
//! edit list is shrunk by delta debugging and printed.
//!
//! Speed: the workspace is small (3 meshes of 2 services of 5 small files, a 129-byte
//! ELF base), so a build from scratch takes ~0.2 s and one is made after EVERY
//! edit: no sharing of a scratch cache (nothing to gain with a `dir:` base, and an
//! empty cache is the plain meaning of "from scratch"), no skipped comparisons.
//!
//! Variables: `SCONE_DIFF_SEED` (else a random seed, printed), `SCONE_DIFF_EDITS`
//! (total, default 150), `SCONE_DIFF_SEQUENCE` (edits per sequence, default 75;
//! sequence k uses seed + k), `SCONE_DIFF_KINDS` (comma list: only those kinds),
//! `SCONE_DIFF_SHRINK=0` (report without shrinking), `SCONE_DIFF_KILLS` (default 50).
//! `scripts/soak.sh` runs thousands of edits; see `docs/testing.md`.

mod support;

use std::collections::BTreeSet;
use support::differential::edits::{Edit, Step};
use support::differential::generate::KINDS;
use support::differential::known;
use support::differential::layout::{ConfigDoc, MeshDoc, MeshEntry, ServiceDoc};
use support::differential::outputs::first_difference;
use support::differential::run::{self, generate, replay, World};
use support::differential::shrink::shrink;
use support::differential::Shape;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u64) -> u64 {
    match var(name) {
        None => default,
        Some(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        }
    }
}

fn seed() -> u64 {
    match var("SCONE_DIFF_SEED") {
        Some(_) => number("SCONE_DIFF_SEED", 0),
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("a random seed");
            // Short seeds are easier to pass around.
            u64::from_le_bytes(bytes) % 1_000_000
        }
    }
}

/// Prints a line even when the test harness captures the output (it captures
/// `print!`, not writes to the stderr handle): the seed shows in every CI log.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn kinds() -> Vec<String> {
    let only: Vec<String> = var("SCONE_DIFF_KINDS")
        .map(|v| v.split(',').map(|k| k.trim().to_string()).collect())
        .unwrap_or_default();
    for kind in &only {
        assert!(
            KINDS.iter().any(|(k, _)| k == kind),
            "SCONE_DIFF_KINDS: unknown kind {kind:?}; the kinds are {:?}",
            KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        );
    }
    only
}

fn listing(steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {:3}. {s}\n", i + 1))
        .collect()
}

/// Runs one sequence; on a mismatch returns the report (shrunk unless
/// `SCONE_DIFF_SHRINK=0`).
fn sequence(seed: u64, count: usize, only: &[String]) -> Result<run::Stats, String> {
    let steps = generate(seed, Shape::SMALL, count, only);
    let kinds = if only.is_empty() {
        String::new()
    } else {
        format!(" SCONE_DIFF_KINDS={}", only.join(","))
    };
    println!("sequence: seed {seed}, {count} edits{kinds}");
    let mismatch = match replay(seed, Shape::SMALL, &steps, true) {
        Ok(stats) => return Ok(stats),
        Err(m) => m,
    };
    let failing = &steps[..mismatch.needed()];
    let mut report = format!(
        "MISMATCH (seed {seed}) after {}: {}\nreproduce: SCONE_DIFF_SEED={seed} SCONE_DIFF_EDITS={}{kinds} cargo test --test differential -- --nocapture every_build\n",
        match mismatch.after {
            Some(i) => format!("edit {} ({})", i + 1, steps[i]),
            None => "the first build".into(),
        },
        mismatch.detail,
        mismatch.needed().max(1),
    );
    if number("SCONE_DIFF_SHRINK", 1) == 0 || failing.is_empty() {
        return Err(report);
    }
    println!("shrinking {} edits…", failing.len());
    let (shrunk, replays) = shrink(failing, |candidate| {
        replay(seed, Shape::SMALL, candidate, false)
            .err()
            .map(|m| m.needed())
    });
    let again = replay(seed, Shape::SMALL, &shrunk, false);
    report.push_str(&format!(
        "shrunk to {} edits ({replays} replays), on the starting workspace of seed {seed}:\n{}after them: {}\n",
        shrunk.len(),
        listing(&shrunk),
        match again {
            Err(m) => m.detail,
            Ok(_) => "no mismatch on this replay (timing-dependent)".into(),
        }
    ));
    Err(report)
}

#[test]
fn every_build_after_random_edits_equals_a_build_from_scratch() {
    let seed = seed();
    let total = number("SCONE_DIFF_EDITS", 150) as usize;
    let per = (number("SCONE_DIFF_SEQUENCE", 75) as usize).max(1);
    let only = kinds();
    announce(&format!("differential test: seed {seed}, {total} edits"));
    let mut done = 0;
    let mut k = 0;
    let mut stats = run::Stats::default();
    while done < total {
        let count = per.min(total - done);
        match sequence(seed + k, count, &only) {
            Ok(s) => {
                println!("  {s:?}");
                stats.builds += s.builds;
                stats.fast_path += s.fast_path;
                stats.incremental += s.incremental;
                stats.failed += s.failed;
                stats.raced += s.raced;
            }
            Err(report) => panic!("{report}"),
        }
        done += count;
        k += 1;
    }
    println!(
        "{total} edits, {} builds compared: {} fast path, {} incremental, {} failed alike, {} raced",
        stats.builds, stats.fast_path, stats.incremental, stats.failed, stats.raced
    );
}

#[test]
fn kill_9_at_random_moments_then_one_build_equals_a_build_from_scratch() {
    let seed = seed();
    let wanted = number("SCONE_DIFF_KILLS", 50) as usize;
    announce(&format!("kill test: seed {seed}, {wanted} kills"));
    let done = run::kill_rounds(seed, wanted, 10, &kinds()).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{} kills ({} builds ended first), {} verified builds, {} edits",
        done.kills,
        done.missed,
        done.verified,
        done.edits.len()
    );
    assert!(done.kills >= wanted);
}

#[test]
fn the_stale_results_found_before_the_build_state_rewrite_stay_fixed() {
    let mut failed = Vec::new();
    let wanted = var("SCONE_DIFF_CASE").unwrap_or_default();
    for case in known::cases()
        .into_iter()
        .filter(|c| c.what.contains(&wanted))
    {
        println!("case: {}\n{}", case.what, listing(&case.steps));
        if let Err(m) = replay(case.seed, Shape::SMALL, &case.steps, true) {
            failed.push(format!(
                "{} (seed {}, after edit {}): {}",
                case.what,
                case.seed,
                m.needed(),
                m.detail
            ));
        }
    }
    for &(seed, edits, only, what) in known::RUNS.iter().filter(|r| r.3.contains(&wanted)) {
        let only: Vec<String> = only
            .split(',')
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect();
        if let Err(report) = sequence(seed, edits, &only) {
            failed.push(format!("{what}:\n{report}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

// The harness itself: these run on every `cargo test`.

#[test]
fn the_layout_reads_back_what_it_writes() {
    let service = support::differential::initial::service("t1", "s2", 2, "4M");
    assert_eq!(ServiceDoc::parse(&service.render()), Some(service.clone()));
    let mut bare = service;
    bare.copy.clear();
    bare.from = None;
    bare.comments.push("# note 1".into());
    assert_eq!(ServiceDoc::parse(&bare.render()), Some(bare));
    let mesh = MeshDoc {
        namespace: "t1".into(),
        env: vec![("LOG_LEVEL".into(), "info".into())],
        services: vec![
            MeshEntry {
                name: "s1".into(),
                image: "127.0.0.1:5000/t1/s1:latest".into(),
                manifest: Some("s1/service.yml".into()),
            },
            MeshEntry {
                name: "s2".into(),
                image: "127.0.0.1:5000/t1/s2:latest".into(),
                manifest: None,
            },
        ],
        comments: vec!["# note 2".into()],
    };
    assert_eq!(MeshDoc::parse(&mesh.render()), Some(mesh.clone()));
    let empty = MeshDoc {
        env: Vec::new(),
        services: Vec::new(),
        ..mesh
    };
    assert_eq!(MeshDoc::parse(&empty.render()), Some(empty));
    let config = ConfigDoc {
        members: vec!["apps/*/mesh.yml".into(), "solo/*/service.yml".into()],
        base: Some("dir:base".into()),
        key: None,
        comments: Vec::new(),
    };
    assert_eq!(ConfigDoc::parse(&config.render()), Some(config));
}

#[test]
fn the_generator_is_deterministic_and_draws_every_kind() {
    let a = generate(7, Shape::SMALL, 200, &[]);
    assert_eq!(
        a,
        generate(7, Shape::SMALL, 200, &[]),
        "same seed, same edits"
    );
    assert_ne!(a, generate(8, Shape::SMALL, 200, &[]));
    let mut drawn: BTreeSet<&str> = a.iter().map(|s| s.kind).collect();
    for seed in 1..4 {
        drawn.extend(
            generate(seed, Shape::SMALL, 200, &[])
                .iter()
                .map(|s| s.kind),
        );
    }
    let mut all: BTreeSet<&str> = KINDS.iter().map(|(k, _)| *k).collect();
    all.insert("repair");
    assert_eq!(drawn, all, "800 edits draw every kind");
    let only = generate(7, Shape::SMALL, 50, &["members".to_string()]);
    assert!(only
        .iter()
        .all(|s| s.kind == "members" || s.kind == "repair"));
    assert!(
        a.iter().any(|s| s.kind == "repair"),
        "a broken tree gets repaired"
    );
    assert!(a.iter().any(|s| !s.pause) && a.iter().any(|s| s.pause));
}

#[test]
fn a_sublist_of_edits_replays_skipping_the_edits_whose_target_is_gone() {
    let steps = generate(11, Shape::SMALL, 150, &[]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    support::differential::initial::write(&root, 11, Shape::SMALL).unwrap();
    let keys = run::placeholder_keys();
    let mut env = Default::default();
    let mut skipped = 0;
    // Every other edit: some lose the edit that made their target.
    for step in steps.iter().step_by(2) {
        if !step.edit.apply(&root, &keys, &mut env).unwrap() {
            skipped += 1;
        }
    }
    let gone = Edit::Remove {
        path: "apps/t1/nothing-here".into(),
    };
    assert!(!gone.apply(&root, &keys, &mut env).unwrap());
    assert!(
        skipped > 0 && skipped < steps.len() / 4,
        "{skipped} of {} edits skipped",
        steps.len() / 2
    );
}

#[test]
fn shrinking_finds_the_smallest_failing_sublist() {
    let items: Vec<u32> = (0..40).collect();
    // Fails once 3 and later 17 were both seen: needs exactly those two.
    let fails = |c: &[u32]| {
        let three = c.iter().position(|&x| x == 3)?;
        let at = c[three..].iter().position(|&x| x == 17)?;
        Some(three + at + 1)
    };
    let (small, replays) = shrink(&items, fails);
    assert_eq!(small, vec![3, 17]);
    assert!(replays < 60, "{replays} replays");
    let (one, _) = shrink(&items, |c| c.iter().position(|&x| x == 29).map(|i| i + 1));
    assert_eq!(one, vec![29]);
    let (none, _) = shrink(&items, |_| Some(0));
    assert!(none.is_empty(), "fails with no edit at all");
}

#[test]
fn the_starting_workspace_builds_and_equals_a_build_from_scratch() {
    let stats = replay(5, Shape::SMALL, &[], false).unwrap_or_else(|m| panic!("{m:?}"));
    assert_eq!((stats.builds, stats.failed), (1, 0));
}

#[test]
fn the_comparison_names_a_stale_output_and_a_changed_lock_line() {
    let mut world = World::new(3, Shape::TINY);
    let ended = world.build();
    assert!(
        ended.success(),
        "{}",
        String::from_utf8_lossy(&ended.stderr)
    );
    world.compare(&ended).unwrap();
    let before = support::differential::outputs::outputs(&world.root);
    for dir in ["images/b1", "images/b2", "enclave/b1", "enclave/b2"] {
        assert!(before.contains_key(&format!("target/{dir}")), "{dir}");
    }
    assert!(before.contains_key("target/policy/t1.yaml"));
    assert!(before.contains_key("scone.lock"));

    std::fs::create_dir_all(world.root.join("target/images/b0")).unwrap();
    let err = world.compare(&ended).unwrap_err();
    assert_eq!(
        err,
        "target/images/b0: only in the incremental build (stale)"
    );
    std::fs::remove_dir(world.root.join("target/images/b0")).unwrap();

    let lock = world.root.join("scone.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, text.replacen("mrenclave = \"", "mrenclave = \"0", 1)).unwrap();
    let err = world.compare(&ended).unwrap_err();
    assert!(err.starts_with("scone.lock: differs (line "), "{err}");
    let after = support::differential::outputs::outputs(&world.root);
    assert!(first_difference(&after, &before).is_some());
}
