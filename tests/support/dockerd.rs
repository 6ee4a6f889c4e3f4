//! Test support: a real Docker engine (`dockerd`, Debian's docker.io) started with the
//! flags of design §5 (no iptables, no bridge: containers run with `--network=none`),
//! its socket, data root and exec root in a temp dir. Stopped on drop.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dockerd.
pub struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

fn require(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("`{binary}` is not installed: install it with scripts/ci-deps.sh");
    }
}

fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl Dockerd {
    /// Start dockerd and wait until it answers `/_ping`.
    pub fn start() -> Dockerd {
        require("dockerd");
        // Unix socket paths are limited to ~108 bytes: keep the dir short.
        let dir = tempfile::Builder::new()
            .prefix("scone-dockerd-")
            .tempdir_in("/tmp")
            .expect("temp dir for dockerd");
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut dockerd = Dockerd {
            child: Some(child),
            dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ping(&dockerd.socket) {
            if let Some(child) = dockerd.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("dockerd exited ({status}): {}", dockerd.log());
                }
            }
            if Instant::now() > deadline {
                panic!("dockerd did not answer: {}", dockerd.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        dockerd
    }

    /// `unix:///…/docker.sock`, for `DOCKER_HOST` / `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// A `docker` CLI command talking to this daemon.
    pub fn docker(&self) -> Command {
        require("docker");
        let mut cmd = Command::new("docker");
        cmd.arg("--host").arg(self.host());
        cmd.env("DOCKER_CONFIG", self.dir.path().join("cli"));
        cmd
    }

    /// Stop dockerd now.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets dockerd stop its containers and its managed containerd.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.shutdown();
    }
}
