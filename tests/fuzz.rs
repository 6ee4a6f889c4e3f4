//! The fuzz targets (`fuzz/targets/`, run by AFL++ through `scripts/fuzz.sh`) in
//! the normal suite: every input under `fixtures/fuzz/<target>/` (the seeds the
//! fuzzer starts from, and every input a fuzzer found a bug with, kept as a
//! regression case) passes through its target, and so does a fixed sample of
//! inputs drawn from a seeded generator (the same every run). A target panics on
//! a bug: a panic on user input, or a broken round trip.

mod support;
#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `input` through `target`; the panic message when it panics.
fn failure(target: targets::Target, input: &[u8]) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
    outcome.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        let dir = support::fixtures().join("fuzz").join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("an entry").path())
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 3, "{}: fewer than 3 inputs", dir.display());
        for input in inputs {
            let bytes = std::fs::read(&input).expect("readable");
            if let Some(message) = failure(target, &bytes) {
                failures.push(format!("{}: {message}", input.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// xorshift64*: a fixed, seeded stream of bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn a_fixed_sample_of_drawn_inputs_passes_every_target() {
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        for seed in 0..64u64 {
            // Odd first bytes select the structured (arbitrary-drawn) inputs.
            let mut input = bytes(seed, 64 + (seed as usize % 8) * 256);
            input[0] |= 0x81;
            if let Some(message) = failure(target, &input) {
                failures.push(format!("{name}, seed {seed}: {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Mutates `seed` with the byte stream of `stream`: flips, overwrites, inserts,
/// deletes and duplicates bytes (the classic byte-level mutations).
fn mutate(seed: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for op in stream.chunks(4) {
        let [kind, a, b, c] = [
            op[0],
            op.get(1).copied().unwrap_or(0),
            op.get(2).copied().unwrap_or(0),
            op.get(3).copied().unwrap_or(0),
        ];
        let at = if out.is_empty() {
            0
        } else {
            (usize::from(a) << 8 | usize::from(b)) % out.len()
        };
        match kind % 6 {
            0 if !out.is_empty() => out[at] ^= 1 << (c % 8),
            1 if !out.is_empty() => out[at] = c,
            2 => out.insert(at.min(out.len()), c),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            4 if !out.is_empty() => {
                let end = (at + usize::from(c) + 1).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.extend_from_slice(b"\xff\xff\xff\xff"),
        }
    }
    out
}

/// The coverage-free fuzzer CI runs (`.ci/run`): for `SCONE_FUZZ_SECONDS`
/// seconds per target (default 25; `SCONE_FUZZ_TARGETS=a,b` for some only), inputs drawn from a seeded stream (a new
/// seed each run, printed) alternately as structured inputs and as byte-level
/// mutations of the target's fixtures. Long, coverage-guided runs are AFL++'s
/// (`scripts/fuzz.sh`).
#[test]
#[ignore = "a time-budget fuzz run: .ci/run and scripts/fuzz.sh run it"]
fn drawn_and_mutated_inputs_for_a_time_budget() {
    let seconds: u64 = std::env::var("SCONE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let run_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("fuzz: seed {run_seed}, {seconds} s per target");
    let only = std::env::var("SCONE_FUZZ_TARGETS").unwrap_or_default();
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        if !only.is_empty() && !only.split(',').any(|t| t == name) {
            continue;
        }
        let dir = support::fixtures().join("fuzz").join(name);
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("the target's fixtures")
            .map(|e| std::fs::read(e.expect("an entry").path()).expect("readable"))
            .collect();
        let start = std::time::Instant::now();
        let mut execs: u64 = 0;
        while start.elapsed().as_secs() < seconds && failures.len() < 10 {
            let stream = bytes(
                run_seed ^ execs.wrapping_mul(0x100_0000_01b3),
                64 + (execs as usize % 16) * 128,
            );
            let input = if execs.is_multiple_of(2) {
                let mut input = stream;
                input[0] |= 0x81;
                input
            } else {
                let seed = &seeds[(execs as usize / 2) % seeds.len()];
                mutate(seed, &stream[..(stream[1] as usize % 32 + 1) * 4])
            };
            if let Some(message) = failure(target, &input) {
                let kept =
                    std::env::temp_dir().join(format!("scone-fuzz-{name}-{run_seed}-{execs}"));
                let _ = std::fs::write(&kept, &input);
                failures.push(format!(
                    "{name}: {message}\n  input kept in {}",
                    kept.display()
                ));
            }
            execs += 1;
        }
        eprintln!(
            "fuzz: {name}: {execs} execs in {:.0?}, {} failures so far",
            start.elapsed(),
            failures.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
