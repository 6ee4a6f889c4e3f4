//! Test support: a real nginx (Debian's `nginx-core`, WebDAV module) serving a
//! temp folder on a free port of 127.0.0.1 with `PUT` enabled: the simplest
//! server of the Bazel HTTP cache protocol (`/ac/<key>`, `/cas/<sha256>`).
//! Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Webdav {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: String,
}

impl Webdav {
    pub fn start() -> Webdav {
        super::tools::require("nginx");
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("nginx data dir");
        // Workers may run as another user when the tests run as root.
        for d in [dir.path(), data.as_path()] {
            let mut perms = std::fs::metadata(d).expect("stat").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
            std::fs::set_permissions(d, perms).expect("chmod");
        }
        let port = super::free_port();
        let addr = format!("127.0.0.1:{port}");
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{\n    listen {addr};\n    root {d}/data;\n    client_max_body_size 0;\n\
             location / {{\n      dav_methods PUT DELETE;\n      create_full_put_path on;\n\
             dav_access user:rw group:rw all:rw;\n    }}\n  }}\n}}\n"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx config");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("nginx log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start nginx");
        let mut server = Webdav {
            child: Some(child),
            dir,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while super::http_status(&server.addr, "/probe").is_none() {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nginx exited with {status}:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not answer within 20 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT/PREFIX` for a cache under `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}", self.addr)
    }

    /// Where nginx keeps what was PUT (`<prefix>/ac/…`, `<prefix>/cas/…`).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Webdav {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, not SIGKILL: the master then stops its workers too.
            let stopped = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
