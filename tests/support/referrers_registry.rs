//! Test support: a small registry in the test process that speaks the part of
//! the OCI distribution spec 1.1 scone uses, *with* the referrers API (which
//! Debian's `docker-registry` 2.8 lacks): blobs (HEAD/GET, a POST upload
//! session finished by PUT, PATCH chunks), manifests by tag or digest
//! (PUT/HEAD/GET), tag lists, and for a manifest with a `subject` the
//! `OCI-Subject` response header and `GET /v2/<name>/referrers/<digest>`
//! (an image index; `?artifactType=` filters it and says so in
//! `OCI-Filters-Applied`). Plain HTTP/1.1 on a free port of 127.0.0.1, one
//! thread per connection, `Connection: close`. Every request is logged
//! (`METHOD path`) so tests can say what a client asked. Stopped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use scone::oci::digest::sha256_digest;
use serde_json::{json, Value};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A stored manifest.
#[derive(Clone)]
struct Stored {
    media_type: String,
    bytes: Vec<u8>,
}

/// One repository's content.
#[derive(Default)]
struct Repo {
    blobs: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, Stored>,
    tags: BTreeMap<String, String>,
    /// Subject digest → descriptors of the manifests naming it.
    referrers: BTreeMap<String, Vec<Value>>,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    uploads: BTreeMap<String, (String, Vec<u8>)>,
    next_upload: u64,
    log: Vec<String>,
}

/// A running registry with the referrers API.
pub struct ReferrersRegistry {
    addr: String,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReferrersRegistry {
    pub fn start() -> ReferrersRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test registry");
        let addr = listener.local_addr().expect("its address").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stopping) = (state.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            })
        };
        ReferrersRegistry {
            addr,
            state,
            stopping,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The tags of `repository`.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        self.lock()
            .repos
            .get(repository)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The manifest stored under `reference` (a tag or a digest) in `repository`.
    pub fn manifest(&self, repository: &str, reference: &str) -> Option<Value> {
        let state = self.lock();
        let repo = state.repos.get(repository)?;
        let digest = repo.tags.get(reference).map_or(reference, String::as_str);
        serde_json::from_slice(&repo.manifests.get(digest)?.bytes).ok()
    }

    /// Forgets every referrer of `subject` in `repository` (the manifests stay).
    pub fn forget_referrers(&self, repository: &str, subject: &str) {
        if let Some(repo) = self.lock().repos.get_mut(repository) {
            repo.referrers.remove(subject);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An answer: status, headers, body.
struct Answer(u16, Vec<(&'static str, String)>, Vec<u8>);

fn error(status: u16, code: &str) -> Answer {
    let body = json!({"errors": [{"code": code, "message": code}]});
    Answer(
        status,
        vec![("Content-Type", "application/json".into())],
        body.to_string().into_bytes(),
    )
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let answer = if headers.contains_key("transfer-encoding") {
        error(411, "LENGTH_REQUIRED")
    } else {
        let length = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0usize);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.log.push(format!("{method} {target}"));
        route(&mut state, &method, &target, &headers, body)
    };
    let Answer(status, headers, body) = answer;
    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
    let _ = stream.flush();
}

/// `name` and the rest of a `/v2/<name>/<what>/<rest>` path.
fn split<'a>(path: &'a str, what: &str) -> Option<(&'a str, &'a str)> {
    let (name, rest) = path.rsplit_once(&format!("/{what}/"))?;
    Some((name, rest))
}

fn query<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn route(
    state: &mut State,
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
    body: Vec<u8>,
) -> Answer {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let Some(path) = path.strip_prefix("/v2/") else {
        return error(404, "NOT_FOUND");
    };
    if path.is_empty() {
        return Answer(200, vec![], b"{}".to_vec());
    }
    if let Some(name) = path.strip_suffix("/tags/list") {
        let tags: Vec<String> = state
            .repos
            .get(name)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default();
        let body = json!({"name": name, "tags": tags}).to_string();
        return Answer(
            200,
            vec![("Content-Type", "application/json".into())],
            body.into(),
        );
    }
    if let Some((name, rest)) = split(path, "blobs/uploads") {
        return upload(state, method, name, rest, q, body);
    }
    if let Some((name, digest)) = split(path, "blobs") {
        let blob = state.repos.get(name).and_then(|r| r.blobs.get(digest));
        return match (method, blob) {
            ("HEAD" | "GET", Some(bytes)) => Answer(
                200,
                vec![("Docker-Content-Digest", digest.to_string())],
                bytes.clone(),
            ),
            ("HEAD" | "GET", None) => error(404, "BLOB_UNKNOWN"),
            _ => error(405, "UNSUPPORTED"),
        };
    }
    if let Some((name, reference)) = split(path, "manifests") {
        return manifest(state, method, name, reference, headers, body);
    }
    if let Some((name, digest)) = split(path, "referrers") {
        let mut list = state
            .repos
            .get(name)
            .and_then(|r| r.referrers.get(digest))
            .cloned()
            .unwrap_or_default();
        let mut answer_headers = vec![("Content-Type", INDEX.to_string())];
        if let Some(wanted) = query(q, "artifactType") {
            let wanted = wanted.replace("%2B", "+").replace("%2F", "/");
            list.retain(|d| d["artifactType"] == wanted.as_str());
            answer_headers.push(("OCI-Filters-Applied", "artifactType".into()));
        }
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list});
        return Answer(200, answer_headers, index.to_string().into_bytes());
    }
    error(404, "NOT_FOUND")
}

fn upload(state: &mut State, method: &str, name: &str, id: &str, q: &str, body: Vec<u8>) -> Answer {
    match method {
        "POST" => {
            state.next_upload += 1;
            let id = format!("u{}", state.next_upload);
            state.uploads.insert(id.clone(), (name.to_string(), body));
            Answer(
                202,
                vec![("Location", format!("/v2/{name}/blobs/uploads/{id}"))],
                vec![],
            )
        }
        "PATCH" => match state.uploads.get_mut(id) {
            Some((_, bytes)) => {
                bytes.extend(body);
                Answer(
                    202,
                    vec![("Location", format!("/v2/{name}/blobs/uploads/{id}"))],
                    vec![],
                )
            }
            None => error(404, "BLOB_UPLOAD_UNKNOWN"),
        },
        "PUT" => {
            let Some((repo, mut bytes)) = state.uploads.remove(id) else {
                return error(404, "BLOB_UPLOAD_UNKNOWN");
            };
            bytes.extend(body);
            let Some(digest) = query(q, "digest").map(|d| d.replace("%3A", ":")) else {
                return error(400, "DIGEST_INVALID");
            };
            if repo != name || sha256_digest(&bytes) != digest {
                return error(400, "DIGEST_INVALID");
            }
            state
                .repos
                .entry(repo)
                .or_default()
                .blobs
                .insert(digest.clone(), bytes);
            Answer(
                201,
                vec![
                    ("Location", format!("/v2/{name}/blobs/{digest}")),
                    ("Docker-Content-Digest", digest),
                ],
                vec![],
            )
        }
        _ => error(405, "UNSUPPORTED"),
    }
}

fn manifest(
    state: &mut State,
    method: &str,
    name: &str,
    reference: &str,
    headers: &BTreeMap<String, String>,
    body: Vec<u8>,
) -> Answer {
    match method {
        "HEAD" | "GET" => {
            let Some(repo) = state.repos.get(name) else {
                return error(404, "NAME_UNKNOWN");
            };
            let digest = repo.tags.get(reference).map_or(reference, String::as_str);
            match repo.manifests.get(digest) {
                Some(m) => Answer(
                    200,
                    vec![
                        ("Content-Type", m.media_type.clone()),
                        ("Docker-Content-Digest", digest.to_string()),
                    ],
                    m.bytes.clone(),
                ),
                None => error(404, "MANIFEST_UNKNOWN"),
            }
        }
        "PUT" => {
            let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
                return error(400, "MANIFEST_INVALID");
            };
            let digest = sha256_digest(&body);
            let by_digest = reference.starts_with("sha256:");
            if by_digest && reference != digest {
                return error(400, "DIGEST_INVALID");
            }
            let media_type = headers
                .get("content-type")
                .cloned()
                .or_else(|| doc["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| MANIFEST.to_string());
            let repo = state.repos.entry(name.to_string()).or_default();
            // Everything the manifest names must be in the repository.
            let named = doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&doc["config"]))
                .filter_map(|d| d["digest"].as_str());
            for blob in named {
                if !repo.blobs.contains_key(blob) {
                    return error(400, "BLOB_UNKNOWN");
                }
            }
            repo.manifests.insert(
                digest.clone(),
                Stored {
                    media_type: media_type.clone(),
                    bytes: body.clone(),
                },
            );
            if !by_digest {
                repo.tags.insert(reference.to_string(), digest.clone());
            }
            let mut out = vec![
                ("Location", format!("/v2/{name}/manifests/{digest}")),
                ("Docker-Content-Digest", digest.clone()),
            ];
            if let Some(subject) = doc["subject"]["digest"].as_str() {
                let artifact_type = doc["artifactType"]
                    .as_str()
                    .or_else(|| doc["config"]["mediaType"].as_str())
                    .unwrap_or_default();
                let mut descriptor = json!({
                    "mediaType": media_type,
                    "digest": digest,
                    "size": body.len(),
                    "artifactType": artifact_type,
                });
                if !doc["annotations"].is_null() {
                    descriptor["annotations"] = doc["annotations"].clone();
                }
                let list = repo.referrers.entry(subject.to_string()).or_default();
                if !list.iter().any(|d| d["digest"] == digest.as_str()) {
                    list.push(descriptor);
                }
                out.push(("OCI-Subject", subject.to_string()));
            }
            Answer(201, out, vec![])
        }
        _ => error(405, "UNSUPPORTED"),
    }
}
