//! `scone dev` driven in the background (issue 8): an edit re-runs the edited
//! service only; a broken manifest is reported and the loop stays alive; a
//! service that ends is told; SIGTERM and SIGHUP stop the services as Ctrl-C
//! does, and a loop killed outright takes its services along.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::Sandbox;

const OTHER: &str = "apiVersion: scone/5.8
kind: genImage
environment:
  global:
    - name: API_USER
build:
  name: other_svc
  kind: python
  to: example.com/other:latest
  pwd: /other
  command: python3 other.py
  copy:
    - other.py
";

const MESH: &str = "apiVersion: scone/5.8
kind: mesh
cas:
  - name: cas
    cas_url: 127.0.0.1:8081
policy:
  namespace: devmesh
env:
  - name: API_USER
    value: myself
services:
  - name: python_app
    image: registry.scontain.com:5050/cicd/python_hello_user:latest
    manifest: app/service.yml
  - name: other
    image: example.com/other:latest
    manifest: other/service.yml
";

fn workspace(sb: &Sandbox) -> PathBuf {
    let root = sb.path().join("ws");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("other")).unwrap();
    for f in ["service.yml", "print_env.py"] {
        std::fs::copy(
            support::fixtures().join("hello-world").join(f),
            root.join("app").join(f),
        )
        .unwrap();
    }
    std::fs::write(root.join("other/service.yml"), OTHER).unwrap();
    std::fs::write(
        root.join("other/other.py"),
        "import os\nprint('other says ' + os.environ['API_USER'])\n",
    )
    .unwrap();
    std::fs::write(root.join("mesh.yml"), MESH).unwrap();
    root
}

/// The dev process with its output captured into files we can poll.
struct Dev {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Dev {
    fn start(sb: &Sandbox, root: &Path) -> Dev {
        let stdout = sb.path().join("dev.out");
        let stderr = sb.path().join("dev.err");
        let child = command(sb, root)
            .args(["dev", "-f", "mesh.yml", "--native", "--debounce-ms", "100"])
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        Dev {
            child,
            stdout,
            stderr,
        }
    }

    /// `scone dev` with stdout and stderr both appended to `log` (inside the
    /// workspace, as `scone dev -f mesh.yml > dev.log 2>&1` would).
    fn start_logging_to(sb: &Sandbox, root: &Path, log: &Path) -> Dev {
        let file = std::fs::File::create(log).unwrap();
        let child = command(sb, root)
            .args(["dev", "-f", "mesh.yml", "--native", "--debounce-ms", "100"])
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Dev {
            child,
            stdout: log.to_path_buf(),
            stderr: log.to_path_buf(),
        }
    }

    fn read(path: &Path) -> String {
        let mut s = String::new();
        std::fs::File::open(path)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    /// Waits until `count` occurrences of `needle` are in stdout (or stderr).
    fn wait_for(&mut self, err: bool, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = Self::read(if err { &self.stderr } else { &self.stdout });
            if text.matches(needle).count() >= count {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "scone dev exited ({status}) waiting for {needle:?}:\n{}\n{}",
                    Self::read(&self.stdout),
                    Self::read(&self.stderr)
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}:\n{text}\n{}",
                Self::read(&self.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The sandboxed `scone`, with its temp folder (`TMPDIR`: where native
/// services' rootfs folders go) in the sandbox.
fn command(sb: &Sandbox, root: &Path) -> std::process::Command {
    let tmp = tmp_dir(sb);
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = sb.std_command(root);
    cmd.env("TMPDIR", tmp);
    cmd
}

fn tmp_dir(sb: &Sandbox) -> PathBuf {
    sb.path().join("tmp")
}

/// The rootfs folders `scone dev --native` left in the sandbox's temp folder.
fn rootfs_folders(sb: &Sandbox) -> Vec<PathBuf> {
    std::fs::read_dir(tmp_dir(sb))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("scone-dev-"))
        .map(|e| e.path())
        .collect()
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Without `--native` and no Docker engine, `scone dev` says what `scone run`
/// says (is one running? DOCKER_HOST, or --native), and does not wait "for a
/// fix" as if a manifest were wrong (probe 53b).
#[test]
fn dev_without_a_docker_engine_says_how_to_get_one() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    let stderr = sb.path().join("dev.err");
    let child = command(&sb, &root)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", sb.path().join("no-docker.sock").display()),
        )
        .args(["dev", "-f", "mesh.yml", "--debounce-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    let mut dev = Dev {
        child,
        stdout: stderr.clone(),
        stderr,
    };
    let text = dev.wait_for(true, "Watching", 1);
    assert!(
        text.contains("is a Docker engine running? set DOCKER_HOST, or use --native"),
        "{text}"
    );
    assert!(!text.contains("for a fix"), "{text}");
}

fn cycles(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("Cycle ")).collect()
}

#[test]
fn a_change_to_its_own_log_or_a_file_no_step_reads_starts_no_cycle() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    std::fs::write(root.join("notes.txt"), "todo\n").unwrap();
    let log = root.join("dev.log");
    let mut dev = Dev::start_logging_to(&sb, &root, &log);
    dev.wait_for(true, "Watching", 1);
    dev.wait_for(true, "Cycle ", 1);
    // scone writes its log meanwhile; then a file no step reads changes,
    // then an input: only the input starts a cycle.
    std::fs::write(root.join("notes.txt"), "todo: more\n").unwrap();
    std::fs::write(
        root.join("app/print_env.py"),
        "import os\nprint('v2 ' + os.environ['API_USER'])\n",
    )
    .unwrap();
    dev.wait_for(false, "v2 myself", 1);
    let text = dev.wait_for(true, "Cycle ", 2);
    let cycles = cycles(&text);
    assert!(
        cycles
            .iter()
            .all(|c| !c.contains("dev.log") && !c.contains("notes.txt")),
        "{text}"
    );
    assert_eq!(cycles.len(), 2, "{text}");
    assert!(cycles[1].contains("changed: app/print_env.py;"), "{text}");
}

#[test]
fn dev_reruns_only_what_changed_and_survives_a_broken_manifest() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    let mut dev = Dev::start(&sb, &root);
    dev.wait_for(
        false,
        "Hello 'myself' - thanks for passing along the API_PASSWORD",
        1,
    );
    dev.wait_for(false, "other says myself", 1);
    dev.wait_for(true, "Watching", 1);

    // Edit the app: its output changes; the other service is not restarted.
    std::fs::write(root.join("app/print_env.py"), "import os\nprint('v2 ' + os.environ['API_USER'] + ' ' + str(len(os.environ['API_PASSWORD'])))\n").unwrap();
    dev.wait_for(false, "v2 myself 10", 1);
    let err = dev.wait_for(true, "Cycle ", 2);
    let last = *cycles(&err).last().unwrap();
    assert!(last.contains("changed: app/print_env.py;"), "{last}");
    assert!(last.contains("restarted: python_app;"), "{last}");
    let after_edit = &err[err.find("Watching").unwrap()..];
    assert!(!after_edit.contains("Built copy:other_svc"), "{after_edit}");
    assert_eq!(Dev::read(&dev.stdout).matches("other says").count(), 1);

    // Edit the other service: the app is not restarted.
    std::fs::write(root.join("other/other.py"), "print('other v2')\n").unwrap();
    dev.wait_for(false, "other v2", 1);
    let err = dev.wait_for(true, "Cycle ", 3);
    let last = *cycles(&err).last().unwrap();
    assert!(last.contains("restarted: other;"), "{last}");
    assert_eq!(Dev::read(&dev.stdout).matches("v2 myself").count(), 1);

    // A broken manifest: error shown, loop alive; fixing it resumes.
    let good = std::fs::read_to_string(root.join("other/service.yml")).unwrap();
    std::fs::write(
        root.join("other/service.yml"),
        good.replace("pwd: /other", "pwd: [oops"),
    )
    .unwrap();
    dev.wait_for(true, "error", 1);
    dev.wait_for(true, "Watching for a fix", 1);
    assert!(
        dev.child.try_wait().unwrap().is_none(),
        "scone dev must keep running"
    );
    std::fs::write(
        root.join("other/service.yml"),
        good.replace("other.py\n", "other.py\n  # fixed\n"),
    )
    .unwrap();
    dev.wait_for(true, "Cycle ", 4);

    // Ctrl-C stops it cleanly.
    let pid = dev.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = dev.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "scone dev did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    assert!(Dev::read(&dev.stderr).contains("Stopped"));
}

#[test]
fn a_service_that_exits_is_told_once_with_its_status() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    std::fs::write(
        root.join("other/other.py"),
        "import sys\nprint('other fails')\nsys.exit(3)\n",
    )
    .unwrap();
    let mut dev = Dev::start(&sb, &root);
    dev.wait_for(true, "Exited other with status 3", 1);
    // The hello service prints and ends: that is told too, as an end.
    dev.wait_for(true, "Exited python_app with status 0", 1);
    // Told once: the loop keeps looking while it waits for changes.
    std::thread::sleep(Duration::from_millis(1000));
    let err = Dev::read(&dev.stderr);
    assert_eq!(err.matches("Exited other").count(), 1, "{err}");
    assert!(
        err.contains("(it starts again when its image or policy changes)"),
        "{err}"
    );
    // Edited, it is started again, and its new end is told.
    std::fs::write(root.join("other/other.py"), "import sys\nsys.exit(4)\n").unwrap();
    let err = dev.wait_for(true, "Exited other with status 4", 1);
    let last = *cycles(&err).last().unwrap();
    assert!(last.contains("restarted: other;"), "{last}");
    assert_eq!(err.matches("Exited other").count(), 2, "{err}");
}

/// A process, by pid and start time (`/proc/<pid>/stat`): a pid reused by
/// another process is not it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Proc {
    pid: u32,
    start: u64,
}

/// `(ppid, start time, state)` of `pid`.
fn stat(pid: u32) -> Option<(u32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
        fields.first()?.chars().next()?,
    ))
}

impl Proc {
    /// Whether it still runs (a zombie nobody reaped yet has ended).
    fn running(&self) -> bool {
        stat(self.pid).is_some_and(|(_, start, state)| start == self.start && state != 'Z')
    }
}

/// The children of `parent` running `python3` (the services it started).
fn services_of(parent: u32) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, start, _) = stat(pid)?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (ppid == parent && String::from_utf8_lossy(&cmdline).contains("python3"))
                .then_some(Proc { pid, start })
        })
        .collect()
}

/// Kills, when dropped, the services a failed test would otherwise leave.
struct Reaper(Vec<Proc>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for p in self.0.iter().filter(|p| p.running()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
    }
}

/// Polls `done` every 50 ms for up to `secs` seconds.
fn within(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The workspace with both services running until stopped, `scone dev`
/// started on it, and its two services once they are up.
fn two_running_services(sb: &Sandbox) -> (Dev, Reaper) {
    let root = workspace(sb);
    for (file, name) in [("app/print_env.py", "app"), ("other/other.py", "other")] {
        std::fs::write(
            root.join(file),
            format!("import time\nprint('{name} up', flush=True)\ntime.sleep(600)\n"),
        )
        .unwrap();
    }
    let mut dev = Dev::start(sb, &root);
    dev.wait_for(false, "app up", 1);
    dev.wait_for(false, "other up", 1);
    let mut services = Vec::new();
    assert!(
        within(30, || {
            services = services_of(dev.child.id());
            services.len() == 2
        }),
        "the two services of scone dev: {services:?}"
    );
    assert_eq!(rootfs_folders(sb).len(), 2, "one rootfs folder per service");
    (dev, Reaper(services))
}

fn signal(pid: u32, name: &str) {
    assert!(std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn sigterm_and_sighup_stop_every_service_and_remove_their_rootfs_as_ctrl_c_does() {
    for (name, code) in [("TERM", 143), ("HUP", 129)] {
        let sb = Sandbox::new();
        let (mut dev, services) = two_running_services(&sb);
        signal(dev.child.id(), name);
        let mut status = None;
        assert!(
            within(30, || {
                status = dev.child.try_wait().unwrap();
                status.is_some()
            }),
            "scone dev did not stop on SIG{name}"
        );
        let err = Dev::read(&dev.stderr);
        assert!(
            within(10, || services.0.iter().all(|p| !p.running())),
            "SIG{name}: services outlived scone dev: {:?}\n{err}",
            services.0
        );
        assert_eq!(
            rootfs_folders(&sb),
            Vec::<PathBuf>::new(),
            "SIG{name}\n{err}"
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(code),
            "SIG{name}\n{err}"
        );
        assert!(
            err.contains(&format!(
                "Stopped every service scone dev started (SIG{name})"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_killed_loop_takes_its_services_along_and_the_next_start_removes_its_rootfs() {
    let sb = Sandbox::new();
    let (mut dev, services) = two_running_services(&sb);
    let left = rootfs_folders(&sb);
    signal(dev.child.id(), "KILL");
    dev.child.wait().unwrap();
    assert!(
        within(10, || services.0.iter().all(|p| !p.running())),
        "services outlived a killed scone dev: {:?}",
        services.0
    );
    // Its folders stay until the next loop starts, which removes them (and
    // no other: an older scone's says no owner).
    assert_eq!(rootfs_folders(&sb).len(), 2);
    let foreign = tmp_dir(&sb).join("scone-dev-Ab3xYz");
    std::fs::create_dir(&foreign).unwrap();
    drop(dev);
    let root = sb.path().join("ws");
    let mut again = Dev::start(&sb, &root);
    let err = again.wait_for(true, "Cycle ", 1);
    assert!(
        err.contains("Removed 2 rootfs folder(s) of dev loops that no longer run"),
        "{err}"
    );
    for folder in &left {
        assert!(!folder.exists(), "{} left", folder.display());
    }
    assert!(foreign.is_dir());
}

#[test]
fn a_cycle_names_each_changed_path_once_relative_to_the_root() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    let mut dev = Dev::start(&sb, &root);
    dev.wait_for(true, "Cycle ", 1);
    // Saves of both services' files in a row, more than the debounce time
    // apart: those that come while a cycle runs are coalesced into the next.
    for round in 1..=4 {
        std::fs::write(
            root.join("app/print_env.py"),
            format!("print('app v{round}')\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("other/other.py"),
            format!("print('other v{round}')\n"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    dev.wait_for(false, "app v4", 1);
    dev.wait_for(false, "other v4", 1);
    let err = Dev::read(&dev.stderr);
    let later = &cycles(&err)[1..];
    assert!(!later.is_empty(), "{err}");
    for cycle in later {
        let changed = cycle
            .split("changed: ")
            .nth(1)
            .and_then(|c| c.split(';').next())
            .unwrap_or_default();
        let mut paths: Vec<&str> = changed.split(", ").collect();
        assert!(
            paths
                .iter()
                .all(|p| ["app/print_env.py", "other/other.py"].contains(p)),
            "{cycle}"
        );
        let n = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), n, "a path named twice: {cycle}");
    }
}

/// The value of the generated secret `password` in the sandbox's local CAS.
fn stored_password(sb: &Sandbox) -> Option<String> {
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let values = cas.secret_values("devmesh").unwrap();
    values
        .get("password")
        .map(|v| v.expose_str().unwrap().to_string())
}

#[test]
fn a_transient_removal_keeps_the_generated_secret_and_a_removal_says_it_applied() {
    let sb = Sandbox::new();
    let root = workspace(&sb);
    let mut dev = Dev::start(&sb, &root);
    dev.wait_for(true, "Cycle ", 1);
    let before = stored_password(&sb).expect("CAS generated `password`");

    // The service declaring `password` cut from the Meshfile (to be pasted
    // back): the cycle is not applied, and says why and what to do.
    let app = "  - name: python_app
    image: registry.scontain.com:5050/cicd/python_hello_user:latest
    manifest: app/service.yml
";
    assert!(MESH.contains(app));
    std::fs::write(root.join("mesh.yml"), MESH.replace(app, "")).unwrap();
    let err = dev.wait_for(true, "does not delete its value", 1);
    assert!(
        err.contains(
            "the mesh no longer declares secret `password`, which CAS generated, and \
             `scone dev` does not delete its value"
        ) && err.contains("run `scone apply` to drop it"),
        "{err}"
    );
    assert!(!err.contains(&before), "{err}");
    assert_eq!(stored_password(&sb).as_deref(), Some(before.as_str()));

    // Pasted back: the value is the one CAS had.
    std::fs::write(root.join("mesh.yml"), MESH).unwrap();
    dev.wait_for(true, "Cycle ", 2);
    assert_eq!(stored_password(&sb).as_deref(), Some(before.as_str()));

    // A service without secrets taken out: the session changed and was
    // applied, which the cycle says (it said nothing changed).
    let other = "  - name: other
    image: example.com/other:latest
    manifest: other/service.yml
";
    std::fs::write(root.join("mesh.yml"), MESH.replace(other, "")).unwrap();
    let err = dev.wait_for(true, "Cycle ", 3);
    let last = &err[err.rfind("Cycle ").unwrap()..];
    let cycle = &err[err[..err.rfind("Cycle ").unwrap()].rfind("Cycle ").unwrap()..];
    assert!(
        cycle.contains("Stopped other (no longer in the mesh)")
            && cycle.contains(
                "Applied session devmesh to the local CAS (no running service's image or \
                 policy changed)"
            ),
        "{cycle}"
    );
    assert!(!cycle.contains("Unchanged"), "{cycle}");
    assert!(last.contains("restarted: none"), "{last}");
    assert_eq!(stored_password(&sb).as_deref(), Some(before.as_str()));
}
