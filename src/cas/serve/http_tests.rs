//! The HTTP side in-process, over an in-memory pipe: what the TLS tests through
//! the real server cannot send reliably (a chunked body past the cap, a body that
//! never comes, a silent client) and the answers without a client certificate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn handler(limits: Limits) -> (tempfile::TempDir, Arc<Handler>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas = LocalCas::open(&dir.path().join("cas")).expect("opens");
    (dir, Handler::new(cas, limits))
}

/// Sends `request` and keeps the pipe open (hyper takes a half-closed pipe for a
/// client gone away); returns the answer read until the server closes.
async fn exchange(handler: Arc<Handler>, owner: Option<&str>, request: &[u8]) -> String {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let requests = Arc::new(AtomicUsize::new(0));
    let serving = tokio::spawn(serve_http(
        server,
        owner.map(str::to_string),
        handler,
        requests.clone(),
    ));
    client.write_all(request).await.expect("sends");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.expect("reads");
    let _ = serving.await.expect("the connection task ends");
    assert_eq!(
        requests.load(Ordering::Acquire),
        0,
        "no request left marked"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_chunked_body_past_the_cap_is_refused_once_the_cap_is_reached() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let (_dir, handler) = handler(limits);
    let mut request =
        b"POST /session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"190\r\n");
        request.extend_from_slice(&[b'a'; 400]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(handler, Some("alice"), &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 1000 bytes"), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_comes_and_a_silent_client_are_cut_off() {
    let limits = Limits {
        body_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let (_dir, handler) = handler(limits);
    let answer = exchange(
        handler.clone(),
        Some("alice"),
        b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nname",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Nothing sent at all: the connection is closed, with no answer.
    let answer = exchange(handler, Some("alice"), b"").await;
    assert_eq!(answer, "");
}

#[tokio::test]
async fn every_request_needs_a_client_certificate_and_a_known_endpoint() {
    let (_dir, handler) = handler(Limits::default());
    let get = b"GET /v1/sessions/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(handler.clone(), None, get).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = exchange(handler.clone(), Some("alice"), get).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let odd = b"GET /\x1b[31m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(handler.clone(), Some("alice"), odd).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "hyper refuses the bytes: {answer}"
    );
    let put = b"PUT /session HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let answer = exchange(handler, Some("alice"), put).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}
