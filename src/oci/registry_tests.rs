//! Unit tests of `oci::registry` (the registry client).

use super::*;

/// A registry on loopback that answers each connection with the next status of
/// `statuses` (the last one from then on); returns its address and a counter of
/// the requests it answered.
fn registry_answering(
    statuses: Vec<u16>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let served = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let i = served.fetch_add(1, Ordering::SeqCst);
            let status = statuses[i.min(statuses.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (addr, count)
}

fn head_blob(addr: &str) -> Result<bool> {
    let client = RegistryClient::new(RegistryOptions::default()).unwrap();
    let reference = Reference::parse(&format!("{addr}/cache/x:t")).unwrap();
    client.has_blob(&reference, &format!("sha256:{}", "0".repeat(64)))
}

#[test]
fn a_passing_server_error_is_asked_again() {
    let (addr, count) = registry_answering(vec![500, 503, 200]);
    assert!(head_blob(&addr).unwrap());
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn a_lasting_server_error_is_the_answer_after_the_last_try() {
    let (addr, count) = registry_answering(vec![500]);
    let err = head_blob(&addr).unwrap_err().to_string();
    assert!(err.contains("500"), "{err}");
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        TRIES as usize
    );
    let (addr, count) = registry_answering(vec![400]);
    assert!(head_blob(&addr).is_err());
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not asked again"
    );
}

/// A registry that takes the connection and never answers: the request
/// fails once it has been silent for the bound, naming the registry.
#[test]
fn a_silent_registry_fails_the_request_instead_of_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let client = RegistryClient::new(RegistryOptions {
        silence: Some(Duration::from_millis(300)),
        ..RegistryOptions::default()
    })
    .unwrap();
    let reference = Reference::parse(&format!("{addr}/cache/x:t")).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .has_blob(&reference, &format!("sha256:{}", "0".repeat(64)))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&addr), "{err}");
    assert!(err.contains("no answer in time"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed after {:?}, not at the bound: {err}",
        started.elapsed()
    );
}

#[test]
fn parses_bearer_challenge() {
    let p = parse_challenge(
        r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#,
    );
    assert_eq!(p["realm"], "https://auth.docker.io/token");
    assert_eq!(p["service"], "registry.docker.io");
    assert_eq!(p["scope"], "repository:library/python:pull");
}
