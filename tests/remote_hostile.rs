//! A remote cache that misbehaves on purpose (a server of the test's own, on
//! a loopback port): answers too big to be entries, answers too slow to wait
//! for. The build never fails for it, never hangs on it, and says once what
//! happened.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

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
