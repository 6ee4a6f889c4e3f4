//! Test support: a real OCI registry (Debian's `docker-registry`, the CNCF distribution
//! server) on a free port of 127.0.0.1, storage in a temp dir, optionally behind
//! htpasswd basic auth or bearer-token auth (a small token issuer in this process signs
//! ES256 JWTs with a self-signed certificate the registry trusts, as `docker_auth` or
//! Harbor would). Killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: String,
    issuer: Option<TokenIssuer>,
}

/// Which auth the registry enforces.
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Token(&'a str, &'a str),
}

fn require(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("`{binary}` is not installed: install it with scripts/ci-deps.sh");
    }
}

impl Registry {
    /// Start an anonymous registry.
    pub fn start() -> Registry {
        Self::launch(Auth::None)
    }

    /// Start a registry that requires `user`/`pass` (htpasswd, bcrypt).
    pub fn start_with_basic_auth(user: &str, pass: &str) -> Registry {
        Self::launch(Auth::Basic(user, pass))
    }

    /// Start a registry that requires bearer tokens from an issuer that accepts
    /// `user`/`pass` (HTTP basic on the token endpoint).
    pub fn start_with_token_auth(user: &str, pass: &str) -> Registry {
        Self::launch(Auth::Token(user, pass))
    }

    fn launch(auth: Auth<'_>) -> Registry {
        require("docker-registry");
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let port = super::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let mut issuer = None;
        if let Auth::Token(user, pass) = auth {
            let started = TokenIssuer::start(dir.path(), user, pass);
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                started.addr,
                dir.path().join("issuer.pem").display()
            ));
            issuer = Some(started);
        }
        if let Auth::Basic(user, pass) = auth {
            require("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: scone-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child: Some(child),
            dir,
            addr,
            issuer,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = super::http_status(&self.addr, "/v2/") {
                if status == 200 || status == 401 {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("docker-registry exited ({status}): {}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on {}: {}",
            self.addr,
            self.log()
        );
    }

    /// The registry log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The storage folder.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }

    /// Stop the registry now.
    pub fn stop(mut self) {
        self.kill();
    }

    /// How many tokens the issuer handed out (0 without token auth).
    pub fn tokens_issued(&self) -> usize {
        self.issuer
            .as_ref()
            .map(|i| i.issued.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(issuer) = self.issuer.take() {
            issuer.stop();
        }
    }
}

const SERVICE: &str = "scone-test-registry";
const ISSUER: &str = "scone-test-issuer";

/// A token endpoint (Docker registry token spec): checks HTTP basic credentials and
/// returns an ES256 JWT granting the requested `repository:NAME:ACTIONS` scope.
struct TokenIssuer {
    addr: String,
    stopping: Arc<AtomicBool>,
    issued: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// ECDSA DER signature (SEQUENCE of two INTEGERs) to JWS's fixed r||s (32 bytes each).
fn der_to_fixed(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut pos = 2; // SEQUENCE tag + length (< 128 for P-256)
    for _ in 0..2 {
        assert_eq!(der[pos], 0x02, "INTEGER expected in the ECDSA signature");
        let len = der[pos + 1] as usize;
        let mut int = &der[pos + 2..pos + 2 + len];
        while int.len() > 32 && int[0] == 0 {
            int = &int[1..];
        }
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        pos += 2 + len;
    }
    out
}

impl TokenIssuer {
    fn start(dir: &Path, user: &str, pass: &str) -> TokenIssuer {
        let key = rcgen::generate_simple_self_signed(vec!["scone-test-issuer".to_string()])
            .expect("issuer certificate");
        std::fs::write(dir.join("issuer.pem"), key.cert.pem()).expect("write issuer.pem");
        let cert_der = base64::engine::general_purpose::STANDARD.encode(key.cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token issuer");
        let addr = listener.local_addr().expect("issuer address").to_string();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop, count) = (stopping.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut authorization = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorization = value.trim().to_string();
                        }
                    }
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or_default();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let scope = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("scope="))
                    .map(|s| {
                        s.replace("%3A", ":")
                            .replace("%2C", ",")
                            .replace("%2F", "/")
                    })
                    .unwrap_or_default();
                let (status, body) = if authorization != expected {
                    (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_string(),
                    )
                } else {
                    let mut parts = scope.splitn(3, ':');
                    let (kind, name, actions) = (
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                    );
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("clock")
                        .as_secs();
                    let header =
                        serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [cert_der]});
                    let claims = serde_json::json!({
                        "iss": ISSUER, "sub": "scone", "aud": SERVICE,
                        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{now}"),
                        "access": [{"type": kind, "name": name,
                                    "actions": actions.split(',').filter(|a| !a.is_empty()).collect::<Vec<_>>()}],
                    });
                    let signing_input = format!(
                        "{}.{}",
                        b64url(header.to_string().as_bytes()),
                        b64url(claims.to_string().as_bytes())
                    );
                    let der = rcgen::SigningKey::sign(&key.signing_key, signing_input.as_bytes())
                        .expect("sign token");
                    let token = format!("{signing_input}.{}", b64url(&der_to_fixed(&der)));
                    count.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", serde_json::json!({ "token": token }).to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenIssuer {
            addr,
            stopping,
            issued,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}
