//! A remote cache that misbehaves on purpose (a server of the test's own, on
//! a loopback port): answers too big to be entries, answers too slow to wait
//! for, garbage for manifests, packs longer than their entries say. The build
//! never fails for it, never hangs on it, and says once what happened.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use support::monorepo::{generate, MonorepoOptions};
use support::{step_statuses, warnings, Sandbox};

/// A sandbox with a generated 3-service monorepo whose `scone.toml` names
/// `url` as its remote cache, with `settings` added to `[cache]`.
fn checkout(url: &str, settings: &str) -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 3,
            ..MonorepoOptions::default()
        },
    );
    std::fs::write(
        root.join("scone.toml"),
        format!("[cache]\nremote = \"{url}\"\n{settings}"),
    )
    .expect("scone.toml");
    (sb, root)
}

/// Serves every connection on a thread of its own: reads the request's head,
/// then lets `answer` write whatever it likes. Returns the cache's URL.
fn serve(answer: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                answer(&mut stream);
            });
        }
    });
    format!("http://{addr}/cache")
}

/// Every step built, and one warning that contains `told`.
fn built_locally_saying(msgs: &[serde_json::Value], told: &str) {
    let steps = step_statuses(msgs);
    assert_eq!(steps.len(), 3 * 6 + 4, "{steps:?}");
    assert!(steps.iter().all(|s| s.2 == "built"), "{steps:?}");
    let warns = warnings(msgs);
    assert!(warns.iter().any(|w| w.contains(told)), "{warns:?}");
}

/// An entry is a few kB: a remote that answers with 100 MB of garbage is
/// cut off at the limit (64 MiB), not read whole into memory, and said so.
#[test]
fn an_answer_too_big_to_be_an_entry_is_cut_off_and_named() {
    let url = serve(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![b'A'; 1 << 20];
        for _ in 0..100 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    // Waited for long enough to read it (this is a debug build).
    let (sb, root) = checkout(&url, "wait-ms = 60000\ntimeout = 60\n");
    let msgs = sb.build_json(&root, &["-j", "1"]);
    built_locally_saying(&msgs, "larger than 64 MiB");
}

/// A remote that answers every lookup after 1.5 s, where a step waits 0.2 s:
/// the first step to give up says so, and the next ones do not wait again.
#[test]
fn a_remote_slower_than_the_wait_is_named_once_and_not_waited_for_again() {
    let url = serve(|stream| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    let (sb, root) = checkout(&url, "wait-ms = 200\ntimeout = 10\n");
    let msgs = sb.build_json(&root, &["-j", "1"]);
    built_locally_saying(&msgs, "no answer within 200 ms");
}

/// `scone verify` checks what these sources build here: its build never asks
/// the remote cache (an entry there is its writer's claim).
#[test]
fn verify_never_reads_the_remote_cache() {
    static ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let url = serve(|stream| {
        ASKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    let (sb, root) = checkout(&url, "");
    let out = sb
        .scone(&root)
        .args(["verify", "-f", "mesh.yml", "--remote-cache", &url])
        .output()
        .expect("scone verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Built"), "it built: {stderr}");
    assert_eq!(
        ASKED.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{stderr}"
    );
}

/// A registry that answers every request with a web page: the build does not
/// take it for an empty cache (probe 52 F6). One warning names the remote and
/// what was wrong; every step builds locally.
#[test]
fn a_registry_answering_garbage_is_named_once_and_every_answer_is_a_miss() {
    let url = serve(|stream| {
        let page = b"<html><body>Welcome to nginx!</body></html>";
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            page.len()
        );
        let _ = stream.write_all(page);
    });
    let url = url.replace("http://", "oci://");
    let (sb, root) = checkout(&url, "");
    let msgs = sb.build_json(&root, &["-j", "1"]);
    built_locally_saying(&msgs, "is not JSON");
    let warns = warnings(&msgs);
    let about: Vec<&String> = warns
        .iter()
        .filter(|w| w.contains("remote cache"))
        .collect();
    assert_eq!(about.len(), 1, "{warns:?}");
    assert!(about[0].contains(&url), "{warns:?}");
}

/// A cache of the Bazel HTTP protocol, in memory, that serves every `cas`
/// blob with `junk` bytes after it once `longer` is set.
fn serve_cache(longer: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stored: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (stored, longer) = (Arc::clone(&stored), Arc::clone(&longer));
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
                let mut map = stored.lock().unwrap_or_else(|e| e.into_inner());
                let answer = match method {
                    "PUT" => {
                        map.insert(path.to_string(), body);
                        Some(Vec::new())
                    }
                    _ => map.get(path).cloned().map(|mut bytes| {
                        if path.contains("/cas/") && longer.load(Ordering::SeqCst) {
                            bytes.extend_from_slice(b"junk");
                        }
                        bytes
                    }),
                };
                drop(map);
                let _ = match answer {
                    Some(bytes) => write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        bytes.len()
                    )
                    .and_then(|()| {
                        if method == "HEAD" {
                            Ok(())
                        } else {
                            stream.write_all(&bytes)
                        }
                    }),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            });
        }
    });
    format!("http://{addr}/cache")
}

/// A pack longer than its entry says is refused for every step whose blobs are
/// in it, and named once, not once per step (probe 52 F6).
#[test]
fn a_pack_longer_than_its_entry_says_is_named_once_for_all_its_steps() {
    let longer = Arc::new(AtomicBool::new(false));
    let url = serve_cache(Arc::clone(&longer));
    let (sb, root) = checkout(&url, "wait-ms = 60000\n");
    let msgs = sb.build_json(&root, &["-j", "1", "--remote-cache-write"]);
    assert!(warnings(&msgs).is_empty(), "{:?}", warnings(&msgs));
    std::fs::remove_dir_all(root.join("target")).expect("rm target");
    longer.store(true, Ordering::SeqCst);
    let msgs = sb.build_json(&root, &["-j", "1"]);
    let warns = warnings(&msgs);
    let packs: Vec<&str> = warns
        .iter()
        .filter(|w| w.contains("is longer than its"))
        .filter_map(|w| {
            w.split_whitespace()
                .find(|word| word.starts_with("sha256:"))
        })
        .collect();
    assert!(!packs.is_empty(), "{warns:?}");
    let distinct: std::collections::BTreeSet<&&str> = packs.iter().collect();
    assert_eq!(distinct.len(), packs.len(), "once per pack: {warns:?}");
    let steps = step_statuses(&msgs);
    assert!(steps.iter().any(|s| s.2 == "built"), "{steps:?}");
}
