//! A real `scone cas serve` for the tests: started on 127.0.0.1:0 with a temporary
//! CAS directory, its log collected, stopped on drop; plus a raw TLS client that
//! sends exactly the bytes a test gives (an attacker does not use `RemoteCas`),
//! and readings of the server process (`/proc/<pid>`: peak RSS, open files).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scone::cas::local::LocalCas;
use scone::cas::remote::RemoteCas;
use scone::cas::tls::ClientIdentity;

/// How long a raw request waits for the server's answer before the test gives up
/// (a guard against hanging forever, not a measurement).
pub const ANSWER_GUARD: Duration = Duration::from_secs(30);

/// A running `scone cas serve`, stopped on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub cas_dir: PathBuf,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start the server.
#[derive(Default)]
pub struct ServeOptions {
    /// Extra arguments after `scone cas serve --listen 127.0.0.1:0 --cas-dir DIR`.
    pub args: Vec<String>,
    /// `ulimit -v` (KiB) for the server: an allocation past it fails instead of
    /// taking the machine's memory.
    pub address_space_kib: Option<u64>,
    /// `ulimit -n` for the server (1024 is the usual default soft limit).
    pub open_files_limit: Option<u64>,
    /// Close the server's stderr pipe once it has printed where it listens
    /// (`scone cas serve 2>&1 | head`): every later log line fails to write.
    pub log_closed: bool,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(ServeOptions::default())
    }

    pub fn start_with(options: ServeOptions) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let cas_dir = dir.path().join("cas");
        let limits: Vec<String> = [
            ("-v", options.address_space_kib),
            ("-n", options.open_files_limit),
        ]
        .iter()
        .filter_map(|(flag, value)| value.map(|v| format!("ulimit {flag} {v} && ")))
        .collect();
        let mut command = if limits.is_empty() {
            Command::new(env!("CARGO_BIN_EXE_scone"))
        } else {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!(r#"{}exec "$0" "$@""#, limits.concat()))
                .arg(env!("CARGO_BIN_EXE_scone"));
            sh
        };
        let mut child = command
            .args(["cas", "serve", "--listen", "127.0.0.1:0", "--cas-dir"])
            .arg(&cas_dir)
            .args(&options.args)
            .env("NO_COLOR", "1")
            .env("SCONE_CAS_CONFIG_DIR", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scone cas serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
        let (mut url, mut ca_path) = (None, None);
        let mut seen = String::new();
        while url.is_none() || ca_path.is_none() {
            let mut line = String::new();
            if lines.read_line(&mut line).expect("reads stderr") == 0 {
                panic!("scone cas serve exited early:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(at) = line.find("https://") {
                url = Some(line[at..].trim().to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("CA certificate ") {
                let path = rest.split(" (").next().expect("path");
                ca_path = Some(PathBuf::from(path));
            }
        }
        let log = Arc::new(Mutex::new(seen));
        let sink = log.clone();
        if options.log_closed {
            drop(lines);
        } else {
            std::thread::spawn(move || {
                let mut line = String::new();
                while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                    sink.lock().expect("log").push_str(&line);
                    line.clear();
                }
            });
        }
        let ca_path = ca_path.expect("CA path printed");
        assert!(ca_path.starts_with(&cas_dir), "the CA lives in the CAS dir");
        let url = url.expect("URL printed");
        let addr = url
            .trim_start_matches("https://")
            .parse()
            .expect("the URL names an address");
        Server {
            child,
            url,
            addr,
            ca_pem: std::fs::read_to_string(&ca_path).expect("CA readable"),
            ca_path,
            cas_dir,
            log,
            _dir: dir,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits (up to 10 s) for the server log to mention `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..100 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server never logged `{needle}`:\n{}", self.log());
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("waits").is_none()
    }

    /// Panics with the log when the server process has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("waits") {
            panic!("scone cas serve ended ({status}):\n{}", self.log());
        }
    }

    pub fn client(&self, identity: &ClientIdentity) -> RemoteCas {
        RemoteCas::connect(&self.url, identity, Some(&self.ca_pem)).expect("client builds")
    }

    pub fn password(&self) -> String {
        let cas = LocalCas::open(&self.cas_dir).expect("opens");
        let values = cas.secret_values("myPythonApp").expect("session exists");
        values["password"].expose_str().expect("ascii").to_string()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`: the peak RSS).
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.child.id(), field)
    }

    /// How many files (sockets included) the server has open.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("the server's fd folder")
            .count()
    }

    /// A TLS connection to the server presenting `identity`, handshake done.
    pub fn tls(&self, identity: &ClientIdentity) -> TlsStream {
        let config = identity.client_config(&self.ca_pem).expect("client config");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let tcp = TcpStream::connect(self.addr).expect("connects");
        tcp.set_read_timeout(Some(ANSWER_GUARD)).expect("timeout");
        tcp.set_write_timeout(Some(ANSWER_GUARD)).expect("timeout");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("TLS handshake");
        }
        stream
    }

    /// Sends `request` (raw HTTP/1.1 bytes) over a new TLS connection and returns
    /// everything the server answers until it closes the connection, or what came
    /// before the read failed (the error is appended as `<read error: …>`).
    pub fn raw(&self, identity: &ClientIdentity, request: &[u8]) -> String {
        let mut stream = self.tls(identity);
        stream.write_all(request).expect("sends the request");
        stream.flush().expect("flush");
        read_answer(&mut stream)
    }
}

/// The TLS stream [`Server::tls`] gives.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Reads until the peer closes (or the read fails: the error is appended).
pub fn read_answer(stream: &mut impl Read) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => {
                answer.extend_from_slice(format!("<read error: {e}>").as_bytes());
                break;
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP answer (`None` when there is no status line).
pub fn status_of(answer: &str) -> Option<u16> {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// A `POST /session` request with `body`, `Connection: close`.
pub fn post_session(body: &str) -> Vec<u8> {
    format!(
        "POST /session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A field of `/proc/<pid>/status` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
