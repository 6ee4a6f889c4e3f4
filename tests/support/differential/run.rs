//! Replays an edit list: the starting workspace, one `scone build` after every edit
//! (always the same command line and environment), and after each build the
//! comparison with a build from scratch of a copy of the tree in a fresh folder
//! with an empty user cache. Also the kill -9 rounds.

use super::edits::{Edit, Env, Keys, Step};
use super::generate::Generator;
use super::outputs::{copy_source, first_difference, outputs, Ended};
use super::{initial, Rng, Shape};
use crate::support::Sandbox;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command line of every build, incremental or from scratch.
pub const BUILD: &[&str] = &["build", "--message-format", "json"];

/// How long a build may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(300);

/// The wait after an edit that lets its mtime leave scone's racy window (20 ms),
/// so that the build may trust the stat and take its incremental paths.
pub const PAUSE: Duration = Duration::from_millis(30);

/// A comparison that failed: after which edit (None: the first build) and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub after: Option<usize>,
    pub detail: String,
}

impl Mismatch {
    /// How many edits of the list the failure needed (a prefix length).
    pub fn needed(&self) -> usize {
        self.after.map_or(0, |i| i + 1)
    }
}

/// What the builds of a replay did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub builds: usize,
    /// Builds answered by the no-op fast path.
    pub fast_path: usize,
    /// Builds that reused steps unchecked (the incremental path).
    pub incremental: usize,
    /// Builds that failed, the same way as from scratch.
    pub failed: usize,
    /// Edits skipped because their target was gone.
    pub skipped: usize,
    /// Builds during which an edit was made (that were still running when it came).
    pub raced: usize,
}

/// The two signing keys: A the public sig1 test key, B made once per test process.
pub fn keys() -> Keys {
    static B: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let b = B.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key =
            rsa::PrivateKey::new_with_exp(&mut getrandom::SysRng, 3072, rsa::BoxedUint::from(3u64))
                .expect("generating key B");
        key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .expect("PEM")
            .as_bytes()
            .to_vec()
    });
    Keys {
        a: std::fs::read(crate::support::sig1_key()).expect("the sig1 key"),
        b: b.clone(),
    }
}

/// Stand-ins for the keys where no build reads them (generating edits).
pub fn placeholder_keys() -> Keys {
    Keys {
        a: b"key a\n".to_vec(),
        b: b"key b\n".to_vec(),
    }
}

/// One sandbox, its workspace and the environment the edits set.
pub struct World {
    pub sb: Sandbox,
    pub root: PathBuf,
    pub env: Env,
    pub keys: Keys,
    scratches: usize,
}

impl World {
    /// The starting workspace of `seed` in a new sandbox.
    pub fn new(seed: u64, shape: Shape) -> World {
        let sb = Sandbox::new();
        let root = sb.path().join("ws");
        initial::write(&root, seed, shape).expect("writing the workspace");
        let keys = keys();
        let dir = sb.path().join("keys");
        std::fs::create_dir_all(&dir).expect("the keys folder");
        std::fs::write(dir.join("user-a.pem"), &keys.a).expect("user key a");
        std::fs::write(dir.join("user-b.pem"), &keys.b).expect("user key b");
        let env = Env::from([("SCONE_SIGNING_KEY".to_string(), "user-a".to_string())]);
        World {
            sb,
            root,
            env,
            keys,
            scratches: 0,
        }
    }

    /// `scone build` in `cwd` with the sandbox's environment and the edits'
    /// variables, the user's folders (cache, CAS, config, data) under `user`; what
    /// it prints goes to files in `user`.
    fn command(&self, cwd: &Path, user: &Path) -> Command {
        let mut cmd = self.sb.std_command(cwd);
        cmd.args(BUILD)
            .env("SCONE_CACHE_DIR", user.join("cache"))
            .env("SCONE_CAS_DIR", user.join("cas"))
            .env("XDG_CONFIG_HOME", user.join("config"))
            .env("XDG_DATA_HOME", user.join("data"));
        for (name, value) in &self.env {
            if name == "SCONE_SIGNING_KEY" {
                cmd.env(
                    name,
                    self.sb.path().join("keys").join(format!("{value}.pem")),
                );
            } else {
                cmd.env(name, value);
            }
        }
        let file = |name: &str| std::fs::File::create(user.join(name)).expect("an output file");
        cmd.stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"));
        cmd
    }

    /// Starts the incremental build.
    pub fn spawn(&self) -> Child {
        self.command(&self.root, self.sb.path())
            .spawn()
            .expect("starting scone")
    }

    /// Runs the incremental build to its end.
    pub fn build(&self) -> Ended {
        finish(self.spawn(), self.sb.path())
    }

    /// Starts a build from scratch of a copy of the tree as it is now, in a fresh
    /// folder with an empty user cache (and CAS, config and data folders).
    fn start_scratch(&mut self) -> Scratch {
        self.scratches += 1;
        let dir = self.sb.path().join(format!("scratch-{}", self.scratches));
        let root = dir.join("ws");
        copy_source(&self.root, &root);
        let child = self.command(&root, &dir).spawn().expect("starting scone");
        Scratch { child, dir, root }
    }

    /// Builds the tree incrementally and, at the same time, a copy from scratch
    /// (the copy is made first; a build writes only `target/` and `scone.lock`),
    /// then compares the two.
    pub fn build_and_compare(&mut self) -> (Ended, Result<(), String>) {
        let scratch = self.start_scratch();
        let ended = self.build();
        let verdict = self.judge(&ended, scratch);
        (ended, verdict)
    }

    /// Compares the incremental build that ended as `ended` with a build from
    /// scratch of the tree as it is now.
    pub fn compare(&mut self, ended: &Ended) -> Result<(), String> {
        let scratch = self.start_scratch();
        self.judge(ended, scratch)
    }

    fn judge(&self, ended: &Ended, scratch: Scratch) -> Result<(), String> {
        let Scratch { child, dir, root } = scratch;
        let from_scratch = finish(child, &dir);
        let scratch_out = outputs(&root);
        std::fs::remove_dir_all(&dir).expect("removing the scratch folder");
        match (ended.success(), from_scratch.success()) {
            (true, true) => match first_difference(&outputs(&self.root), &scratch_out) {
                None => Ok(()),
                Some(d) => Err(d),
            },
            (false, false) => {
                let (a, b) = (ended.failure(&self.root), from_scratch.failure(&root));
                if a == b {
                    Ok(())
                } else {
                    Err(format!(
                        "fails differently: incremental {a}; from scratch {b}"
                    ))
                }
            }
            _ => Err(format!(
                "incremental {}; from scratch {}",
                outcome(ended, &self.root),
                outcome(&from_scratch, &root)
            )),
        }
    }

    /// Applies an edit; false if it was skipped.
    pub fn apply(&mut self, edit: &Edit) -> bool {
        edit.apply(&self.root, &self.keys, &mut self.env)
            .unwrap_or_else(|e| panic!("applying `{edit}`: {e}"))
    }
}

/// A build from scratch under way.
struct Scratch {
    child: Child,
    /// Its folder: the copy, its user cache, what it printed.
    dir: PathBuf,
    /// The copy of the tree.
    root: PathBuf,
}

fn outcome(ended: &Ended, root: &Path) -> String {
    if ended.success() {
        "succeeds".into()
    } else {
        ended.failure(root)
    }
}

/// Waits for a build (at most [`DEADLINE`]) and reads what it printed into `out`.
fn finish(mut child: Child, out: &Path) -> Ended {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for scone") {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Ended {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read(out.join("stdout")).unwrap_or_default(),
        stderr: std::fs::read(out.join("stderr")).unwrap_or_default(),
    }
}

fn note(ended: &Ended, stats: &mut Stats) -> String {
    stats.builds += 1;
    let Some(done) = ended.finished() else {
        stats.failed += 1;
        return format!("exit {:?}", ended.code);
    };
    if !ended.success() {
        stats.failed += 1;
    }
    let how = if done["fast_path"] == true {
        stats.fast_path += 1;
        "fast path".to_string()
    } else if done["reused"].as_u64().unwrap_or(0) > 0 {
        stats.incremental += 1;
        format!("incremental, {} reused", done["reused"])
    } else {
        "full".to_string()
    };
    format!(
        "exit {:?}: {} built, {} fresh ({how})",
        ended.code, done["built"], done["fresh"]
    )
}

/// Replays `steps` on the starting workspace of `seed`: the first build, then per
/// edit one build and the comparison (after an edit made while a build ran, the
/// comparison waits for the next build). Stops at the first mismatch.
pub fn replay(seed: u64, shape: Shape, steps: &[Step], log: bool) -> Result<Stats, Mismatch> {
    let mut world = World::new(seed, shape);
    let mut stats = Stats::default();
    let (first, verdict) = world.build_and_compare();
    let line = note(&first, &mut stats);
    if log {
        println!("   0. the starting workspace: {line}");
    }
    verdict.map_err(|detail| Mismatch {
        after: None,
        detail,
    })?;
    let mut pending = None;
    for (i, step) in steps.iter().enumerate() {
        if let Edit::WhileBuilding {
            first,
            edit,
            delay_ms,
        } = &step.edit
        {
            if !world.apply(first) {
                stats.skipped += 1;
            }
            std::thread::sleep(PAUSE);
            let mut child = world.spawn();
            std::thread::sleep(Duration::from_millis(*delay_ms));
            let running = child.try_wait().expect("polling scone").is_none();
            if !world.apply(edit) {
                stats.skipped += 1;
            }
            let ended = finish(child, world.sb.path());
            if running {
                stats.raced += 1;
            }
            if log {
                println!(
                    "{:4}. {step}: {} (not compared; the edit came {})",
                    i + 1,
                    note(&ended, &mut Stats::default()),
                    if running {
                        "while it ran"
                    } else {
                        "after it ended"
                    }
                );
            }
            pending = Some(i);
            continue;
        }
        if !world.apply(&step.edit) {
            stats.skipped += 1;
        }
        if step.pause {
            std::thread::sleep(PAUSE);
        }
        let (ended, verdict) = world.build_and_compare();
        let line = note(&ended, &mut stats);
        if log {
            println!("{:4}. {step}: {line}", i + 1);
        }
        verdict.map_err(|detail| Mismatch {
            after: Some(i),
            detail,
        })?;
        pending = None;
    }
    if let Some(i) = pending {
        std::thread::sleep(PAUSE);
        let (ended, verdict) = world.build_and_compare();
        let line = note(&ended, &mut stats);
        if log {
            println!("      one more build after the last edit: {line}");
        }
        verdict.map_err(|detail| Mismatch {
            after: Some(i),
            detail,
        })?;
    }
    Ok(stats)
}

/// Generates `count` edits for the starting workspace of `seed` (of the kinds in
/// `only`, all when empty), applying them to a scratch tree without building.
pub fn generate(seed: u64, shape: Shape, count: usize, only: &[String]) -> Vec<Step> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("ws");
    initial::write(&root, seed, shape).expect("writing the workspace");
    let keys = placeholder_keys();
    let mut env = Env::new();
    let mut generator = Generator::new(seed, only);
    (0..count)
        .map(|_| {
            let step = generator.next(&root);
            step.edit
                .apply(&root, &keys, &mut env)
                .unwrap_or_else(|e| panic!("applying `{}`: {e}", step.edit));
            step
        })
        .collect()
}

/// What the kill rounds did.
#[derive(Clone, Debug, Default)]
pub struct Kills {
    /// Builds killed while they ran.
    pub kills: usize,
    /// Builds that ended before their kill came.
    pub missed: usize,
    /// Builds run to their end and compared with a build from scratch.
    pub verified: usize,
    pub edits: Vec<Step>,
}

/// Kills builds with SIGKILL at random moments until `wanted` were killed while
/// running, with edits between them, and every `every` kills one build (the same
/// command line) that must equal a build from scratch; the last kill is followed by
/// one such build too. Edits are of the kinds in `only` (all when empty).
pub fn kill_rounds(
    seed: u64,
    wanted: usize,
    every: usize,
    only: &[String],
) -> Result<Kills, String> {
    let mut world = World::new(seed, Shape::TINY);
    let mut generator = Generator::new(seed, only);
    let mut rng = Rng::new(seed ^ 0xdead);
    let mut done = Kills::default();
    let start = Instant::now();
    let first = world.build();
    let mut span = start.elapsed();
    world
        .compare(&first)
        .map_err(|d| format!("the first build: {d}"))?;
    while done.kills < wanted {
        assert!(
            done.kills + done.missed < wanted * 10,
            "only {} of {} builds were still running when killed",
            done.kills,
            done.kills + done.missed
        );
        if rng.chance(50) {
            let step = generator.next(&world.root);
            world.apply(&step.edit);
            done.edits.push(step);
        }
        let started = Instant::now();
        let mut child = world.spawn();
        let delay = rng.below(span.as_micros() as usize + 1);
        std::thread::sleep(Duration::from_micros(delay as u64));
        if child.try_wait().expect("polling scone").is_none() {
            child.kill().expect("kill -9");
            child.wait().expect("reaping scone");
            done.kills += 1;
        } else {
            done.missed += 1;
            span = started.elapsed();
            continue;
        }
        if done.kills.is_multiple_of(every) || done.kills == wanted {
            std::thread::sleep(PAUSE);
            let started = Instant::now();
            let ended = world.build();
            span = started.elapsed().max(Duration::from_millis(5));
            done.verified += 1;
            world.compare(&ended).map_err(|d| {
                let list: Vec<String> = done
                    .edits
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("  {:3}. {s}", i + 1))
                    .collect();
                format!(
                    "after {} kills (seed {seed}) the next build differs from a build from scratch: {d}\nedits so far:\n{}",
                    done.kills,
                    list.join("\n")
                )
            })?;
        }
    }
    Ok(done)
}
