//! The fuzz targets (`fuzz/targets/`, run by AFL++ through `scripts/fuzz.sh`) in
//! the normal suite: every input under `fixtures/fuzz/<target>/` (the seeds the
//! fuzzer starts from, and every input a fuzzer found a bug with, kept as a
//! regression case) passes through its target, and so does a fixed sample of
//! inputs drawn from a seeded generator (the same every run). A target panics on
//! a bug: a panic on user input, or a broken round trip.
//!
//! Every test runs its inputs in a child process (this test binary again, its
//! `child` test, told the job by `SCONE_FUZZ_CHILD`), one input at a time: the
//! child writes each input to `target/tmp/fuzz/<run>/current` before running it,
//! and a watchdog thread ends the child when one input runs longer than
//! `SCONE_FUZZ_INPUT_SECONDS` (default 10). So a hang fails the test after that
//! bound, and an abort, a stack overflow or an out-of-memory kill fails it as
//! soon as the child dies; either way the failure names the target and the file
//! the input was kept in (`target/tmp/fuzz/<target>-<hang|crash>-…`), which
//! replays as a regression case when copied to `fixtures/fuzz/<target>/`.

mod support;
#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable that makes the `child` test run a job.
const CHILD: &str = "SCONE_FUZZ_CHILD";
/// The child's folder for its current input (`current`) and target (`target`).
const RUN_DIR: &str = "SCONE_FUZZ_RUN_DIR";
/// The exit code of a child whose watchdog saw a hang.
const HANG: i32 = 3;

/// Where inputs are kept: the test's temp area in the target dir.
fn kept_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz")
}

/// How long one input may run (`SCONE_FUZZ_INPUT_SECONDS`, default 10: AFL++
/// gets 2 s in release; this is a debug build on a shared machine).
fn input_limit() -> Duration {
    Duration::from_secs(
        std::env::var("SCONE_FUZZ_INPUT_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

/// Runs `job` in a child process; its progress lines (`fuzz: …`), or the
/// failure: what the child reported, or — when it hung or died — the target
/// and the file the input is kept in.
fn bounded(job: &str, env: &[(&str, &str)]) -> Result<String, String> {
    std::fs::create_dir_all(kept_dir()).map_err(|e| e.to_string())?;
    let run = tempfile::Builder::new()
        .prefix(&format!("{job}-"))
        .tempdir_in(kept_dir())
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["child", "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads=1"])
        .env(CHILD, job)
        .env(RUN_DIR, run.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running the child: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let progress: String = stderr
        .lines()
        .filter(|l| l.starts_with("fuzz: ") && !l.starts_with("fuzz: FAILED"))
        .map(|l| format!("{l}\n"))
        .collect();
    if out.status.success() {
        return Ok(progress);
    }
    if out.status.code() == Some(HANG) {
        return Err(stderr
            .lines()
            .filter(|l| l.starts_with("fuzz: FAILED"))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    if out.status.code() == Some(101) {
        return Err(stderr);
    }
    // Died: an abort, a signal, an exit from the target. The input is on disk.
    let target = std::fs::read_to_string(run.path().join("target")).unwrap_or_default();
    let kept = kept_dir().join(format!("{target}-crash-{}", std::process::id()));
    let copied = std::fs::copy(run.path().join("current"), &kept);
    Err(format!(
        "fuzz: FAILED: {target}: the process died ({}) running an input; {}\n{stderr}",
        out.status,
        match copied {
            Ok(_) => format!(
                "input kept in {} (copy it to fixtures/fuzz/{target}/ to replay it)",
                kept.display()
            ),
            Err(e) => format!("the input could not be kept: {e}"),
        }
    ))
}

/// The child's side: runs each input with the current one on disk and a
/// watchdog over its time; collects panics as failures.
struct Runner {
    dir: PathBuf,
    current: std::fs::File,
    target: String,
    /// The running input: its number (0: none) and its start (ms since `epoch`).
    running: Arc<(AtomicU64, AtomicU64)>,
    epoch: Instant,
    count: u64,
    failures: Vec<String>,
}

impl Runner {
    fn new() -> Runner {
        let dir = PathBuf::from(std::env::var_os(RUN_DIR).expect("run by `bounded`"));
        let current = std::fs::File::create(dir.join("current")).expect("the current input file");
        let running = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let epoch = Instant::now();
        let watched = Arc::clone(&running);
        let (run_dir, limit) = (dir.clone(), input_limit());
        std::thread::spawn(move || watchdog(&run_dir, &watched, epoch, limit));
        Runner {
            dir,
            current,
            target: String::new(),
            running,
            epoch,
            count: 0,
            failures: Vec::new(),
        }
    }

    /// Runs `input` through `target` (named `name`); a panic is kept as a failure.
    fn run(&mut self, name: &str, target: targets::Target, input: &[u8], what: &str) {
        if self.target != name {
            std::fs::write(self.dir.join("target"), name).expect("the target file");
            self.target = name.to_string();
        }
        self.current.set_len(0).expect("the current input file");
        self.current
            .write_all_at(input, 0)
            .expect("the current input file");
        self.count += 1;
        let (number, start) = &*self.running;
        start.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        number.store(self.count, Ordering::SeqCst);
        let outcome = failure(target, input);
        number.store(0, Ordering::SeqCst);
        if let Some(message) = outcome {
            let kept = kept_dir().join(format!(
                "{name}-panic-{}-{}",
                std::process::id(),
                self.count
            ));
            let _ = std::fs::write(&kept, input);
            self.failures.push(format!(
                "fuzz: FAILED: {name} ({what}): {message}\n  input kept in {}",
                kept.display()
            ));
        }
    }

    /// Panics with every failure, if any.
    fn finish(self) {
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n\n"));
    }
}

/// Ends the process when one input runs past `limit`, keeping the input.
fn watchdog(dir: &Path, running: &(AtomicU64, AtomicU64), epoch: Instant, limit: Duration) {
    let (number, start) = running;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let n = number.load(Ordering::SeqCst);
        let since = Duration::from_millis(start.load(Ordering::SeqCst));
        if n == 0 || epoch.elapsed().saturating_sub(since) < limit {
            continue;
        }
        let target = std::fs::read_to_string(dir.join("target")).unwrap_or_default();
        let kept = kept_dir().join(format!("{target}-hang-{}-{n}", std::process::id()));
        let copied = std::fs::copy(dir.join("current"), &kept);
        if number.load(Ordering::SeqCst) != n {
            continue; // it finished after all
        }
        let kept = match copied {
            Ok(_) => format!(
                "input kept in {} (copy it to fixtures/fuzz/{target}/ to replay it)",
                kept.display()
            ),
            Err(e) => format!("the input could not be kept: {e}"),
        };
        let _ = writeln!(
            std::io::stderr(),
            "fuzz: FAILED: {target}: an input ran longer than {limit:?} (a hang); {kept}"
        );
        std::process::exit(HANG);
    }
}

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

/// The child: runs the job `SCONE_FUZZ_CHILD` names (nothing when unset).
#[test]
#[ignore = "the other tests run it in a child process"]
fn child() {
    let Ok(job) = std::env::var(CHILD) else {
        return;
    };
    let mut runner = Runner::new();
    match job.as_str() {
        "seeds" => seeds(&mut runner),
        "sample" => sample(&mut runner),
        "budget" => budget(&mut runner),
        "hang" => runner.run("selftest", selftest, b"hang", "a hang"),
        "abort" => runner.run("selftest", selftest, b"abort", "an abort"),
        other => panic!("no job `{other}`"),
    }
    runner.finish();
}

/// A target for the runner's own tests: hangs on `hang`, aborts on `abort`.
fn selftest(input: &[u8]) {
    match input {
        b"hang" => loop {
            std::thread::park();
        },
        b"abort" => std::process::abort(),
        _ => {}
    }
}

/// Fails the test with the child's report; prints its progress.
fn passes(job: &str) {
    match bounded(job, &[]) {
        Ok(progress) => eprint!("{progress}"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    passes("seeds");
}

fn seeds(runner: &mut Runner) {
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
            runner.run(name, target, &bytes, &input.display().to_string());
        }
    }
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
    passes("sample");
}

fn sample(runner: &mut Runner) {
    for (name, target) in targets::TARGETS {
        for seed in 0..64u64 {
            // Odd first bytes select the structured (arbitrary-drawn) inputs.
            let mut input = bytes(seed, 64 + (seed as usize % 8) * 256);
            input[0] |= 0x81;
            runner.run(name, target, &input, &format!("seed {seed}"));
        }
    }
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
    passes("budget");
}

fn budget(runner: &mut Runner) {
    let seconds: u64 = std::env::var("SCONE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let run_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("fuzz: seed {run_seed}, {seconds} s per target");
    let only = std::env::var("SCONE_FUZZ_TARGETS").unwrap_or_default();
    for (name, target) in targets::TARGETS {
        if !only.is_empty() && !only.split(',').any(|t| t == name) {
            continue;
        }
        let dir = support::fixtures().join("fuzz").join(name);
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("the target's fixtures")
            .map(|e| std::fs::read(e.expect("an entry").path()).expect("readable"))
            .collect();
        let start = Instant::now();
        let mut execs: u64 = 0;
        while start.elapsed().as_secs() < seconds && runner.failures.len() < 10 {
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
            runner.run(
                name,
                target,
                &input,
                &format!("seed {run_seed}, exec {execs}"),
            );
            execs += 1;
        }
        eprintln!(
            "fuzz: {name}: {execs} execs in {:.0?}, {} failures so far",
            start.elapsed(),
            runner.failures.len()
        );
    }
}

/// The report of a failed run names the target and a kept file holding `input`.
fn assert_kept(report: &str, input: &[u8]) {
    assert!(report.contains("fuzz: FAILED: selftest"), "{report}");
    let kept = report
        .split("input kept in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kept input in: {report}"));
    assert!(
        Path::new(kept).starts_with(kept_dir()),
        "kept outside the target dir: {kept}"
    );
    assert_eq!(
        std::fs::read(kept).expect("the kept input"),
        input,
        "{report}"
    );
}

#[test]
fn a_hanging_input_fails_the_run_naming_the_target_and_keeping_the_input() {
    let report =
        bounded("hang", &[("SCONE_FUZZ_INPUT_SECONDS", "1")]).expect_err("a hang fails the run");
    assert!(report.contains("a hang"), "{report}");
    assert_kept(&report, b"hang");
}

#[test]
fn an_aborting_input_fails_the_run_naming_the_target_and_keeping_the_input() {
    let report = bounded("abort", &[]).expect_err("an abort fails the run");
    assert!(report.contains("the process died"), "{report}");
    assert_kept(&report, b"abort");
}
