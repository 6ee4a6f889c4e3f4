//! Shared test support: the scone binary, fixture paths, and the real services the
//! tests start (registry, dockerd) and tools they call (skopeo, umoci, helm, ...).
#![allow(dead_code)]

pub mod browser;
pub mod cas_server;
pub mod differential;
pub mod dockerd;
pub mod monorepo;
pub mod referrers_registry;
pub mod registry;
pub mod secrets;
pub mod tools;
pub mod webdav;

use std::path::PathBuf;

/// The project root (where Cargo.toml is).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/` of this project.
pub fn fixtures() -> PathBuf {
    project_root().join("fixtures")
}

/// `fixtures/sgx`: the public SGX test vectors (see its README for their source).
pub fn vectors() -> PathBuf {
    fixtures().join("sgx")
}

/// The public sig1 test signing key (RSA-3072, e = 3) of the vectors.
pub fn sig1_key() -> PathBuf {
    vectors().join("sig1.key.pem")
}

/// The provenance test key: RFC 8032's Ed25519 TEST 1 (`fixtures/attest`).
pub fn provenance_key() -> PathBuf {
    fixtures().join("attest/ed25519-rfc8032-test1.pem")
}

/// Its public key (PEM).
pub fn provenance_public_key() -> PathBuf {
    fixtures().join("attest/ed25519-rfc8032-test1.pub.pem")
}

/// The `scone` binary under test.
pub fn scone() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("scone").expect("the scone binary is built");
    cmd.env_remove("SCONE_TARGET_DIR").env("NO_COLOR", "1");
    cmd
}

/// An isolated user environment for one test: its own cache, CAS and config
/// folders, the public sig1 test key (`fixtures/sgx`) as the signing key and
/// RFC 8032's test key (`fixtures/attest`) as the provenance key, so tests
/// never touch the real user's folders, never wait for key generation, and
/// two sandboxes sign alike.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `scone` with this sandbox's environment, run in `cwd`.
    pub fn scone(&self, cwd: &std::path::Path) -> assert_cmd::Command {
        let mut cmd = scone();
        cmd.current_dir(cwd)
            .env("SCONE_CACHE_DIR", self.path().join("cache"))
            .env("SCONE_CAS_DIR", self.path().join("cas"))
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("SCONE_SIGNING_KEY", sig1_key())
            .env("SCONE_PROVENANCE_KEY", provenance_key())
            .env("SCONE_PYTHON_ROOTFS", python_rootfs())
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }
}

impl Sandbox {
    /// A copy of `fixtures/hello-world` in the sandbox (so target/ and scone.lock
    /// land there).
    pub fn hello_world(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).expect("the example folder");
        for f in ["service.yml", "mesh.yml", "print_env.py"] {
            std::fs::copy(fixtures().join("hello-world").join(f), dir.join(f))
                .expect("copying the example");
        }
        dir
    }

    /// The sandboxed `scone` as a plain `std::process::Command` (for children
    /// the test drives itself: killed, backgrounded, run under a shell).
    pub fn std_command(&self, cwd: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("scone"));
        cmd.current_dir(cwd);
        for (k, v) in self.scone(cwd).get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }
}

/// A python3 rootfs made once per `cargo test` run by `scripts/python-rootfs.sh`
/// (under `target/test-assets/`), the base of the hello-world example.
pub fn python_rootfs() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let out = project_root().join("target/test-assets/python3");
        let lock = project_root().join("target/test-assets.lock");
        std::fs::create_dir_all(project_root().join("target")).expect("target/");
        let file = std::fs::File::create(&lock).expect("lock file");
        file.lock().expect("locking test assets");
        // The downloaded .debs stay in the checkout too: no test writes
        // outside it (the script's default is the user cache).
        let status = std::process::Command::new("sh")
            .arg(project_root().join("scripts/python-rootfs.sh"))
            .arg(&out)
            .env(
                "SCONE_DEB_CACHE",
                project_root().join("target/test-assets/debs"),
            )
            .status()
            .expect("running scripts/python-rootfs.sh");
        assert!(status.success(), "scripts/python-rootfs.sh failed");
        out
    })
    .clone()
}

/// Every file under `dir` (relative path → content), skipping `.scone`.
pub fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.expect("walking a tree");
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("prefix")
            .to_string_lossy()
            .into_owned();
        if rel.starts_with(".scone") || !entry.file_type().is_file() {
            continue;
        }
        out.insert(rel, std::fs::read(entry.path()).expect("reading a file"));
    }
    out
}

/// The JSON messages a `--message-format json` run printed.
pub fn messages(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON message per line"))
        .collect()
}

/// `(step, unit, status)` of every step message.
pub fn step_statuses(msgs: &[serde_json::Value]) -> Vec<(String, String, String)> {
    msgs.iter()
        .filter(|m| m["reason"] == "step")
        .map(|m| {
            (
                m["step"].as_str().unwrap_or_default().to_string(),
                m["unit"].as_str().unwrap_or_default().to_string(),
                m["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

impl Sandbox {
    /// `scone build -f mesh.yml --message-format json EXTRA…` in `root`; panics
    /// with both outputs if it fails; returns the messages.
    pub fn build_json(&self, root: &std::path::Path, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["build", "-f", "mesh.yml"];
        args.extend_from_slice(extra);
        self.json_ok(root, &args)
    }

    /// `scone ARGS --message-format json` in `root`: it must succeed; its
    /// messages.
    pub fn json_ok(&self, root: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self
            .scone(root)
            .args(args)
            .args(["--message-format", "json"])
            .output()
            .expect("running scone");
        assert!(
            out.status.success(),
            "scone {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        messages(&out.stdout)
    }
}

/// A free TCP port on 127.0.0.1 (for servers the tests start).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The status code of `GET path` on `addr` (HTTP/1.0), if it answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs `cmd` with its stdout closed before it writes (`scone … | head -c 0`)
/// and asserts that it ends as `cat` would: done, or ended by SIGPIPE, never
/// a panic. Returns what it printed on stderr.
pub fn assert_ends_quietly_without_reader(mut cmd: std::process::Command) -> String {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running scone");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for scone");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
    stderr
}

/// The texts of the warnings among `msgs` but a step's own (the chart's
/// renames of the generated `svc_` names: a diagnostic `<step>:<unit>: …`
/// that its step message lists in `outputs.warnings` too).
pub fn warnings(msgs: &[serde_json::Value]) -> Vec<String> {
    let of_steps: std::collections::HashSet<String> = msgs
        .iter()
        .filter(|m| m["reason"] == "step")
        .flat_map(|m| {
            let step = format!(
                "{}:{}",
                m["step"].as_str().unwrap_or_default(),
                m["unit"].as_str().unwrap_or_default()
            );
            m["outputs"]["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |w| format!("{step}: {}", w.as_str().unwrap_or_default()))
        })
        .collect();
    msgs.iter()
        .filter(|m| m["reason"] == "diagnostic" && m["level"] == "warning")
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .filter(|text| !of_steps.contains(text))
        .collect()
}

/// The `build-finished` message.
pub fn finished(msgs: &[serde_json::Value]) -> serde_json::Value {
    msgs.iter()
        .find(|m| m["reason"] == "build-finished")
        .cloned()
        .expect("a build-finished message")
}

impl Sandbox {
    /// A copy of `fixtures/multi` (a three-service mesh) in the sandbox, its
    /// images moved from `registry.example.com` to `registry`.
    pub fn multi(&self, registry: &str) -> PathBuf {
        let src = fixtures().join("multi");
        let dir = self.path().join("multi");
        for entry in walkdir::WalkDir::new(&src) {
            let entry = entry.expect("walking fixtures/multi");
            let to = dir.join(entry.path().strip_prefix(&src).expect("prefix"));
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&to).expect("a folder");
            } else {
                let text = std::fs::read_to_string(entry.path()).expect("a fixture");
                std::fs::write(&to, text.replace("registry.example.com", registry))
                    .expect("writing a fixture");
            }
        }
        dir
    }
}

/// The mode bits and sorted entry names of `dir`, to compare before and after.
pub fn looks(dir: &std::path::Path) -> (u32, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).expect("stat").permissions().mode() & 0o777;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (mode, names)
}

/// A FIFO at `path` (`mkfifo`), for tests that hand scone one.
pub fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("running mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}
