//! Target (c): the `scone cas serve` request handling in process, without TLS:
//! `serve_http` (hyper's HTTP/1.1 parser, the bounds, the routes, the session
//! parser and the local CAS) over an in-memory pipe, on a runtime whose clock
//! jumps ahead when nothing else can run (so timeouts cost no real time). The
//! input is raw request bytes (AFL++ mutates `fixtures/fuzz/request/`) or
//! requests drawn with `arbitrary`: method, path, headers, framing (length,
//! wrong length, chunked, none) and a body that is a rendered session or any
//! bytes, one to three on one connection, against a fresh CAS in a scratch
//! folder. The server must answer HTTP or close, and never with a 500.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arbitrary::{Arbitrary, Result, Unstructured};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use scone::cas::local::LocalCas;
use scone::cas::serve::{serve_http, Handler, Limits};
use scone::cas::session::render;

/// A fresh CAS (in the scratch folder `dir`) for one input: every run of the
/// target starts from the same state, and nothing outlives it.
fn handler(dir: &std::path::Path) -> Arc<Handler> {
    let cas = LocalCas::open(&dir.join("cas")).expect("a scratch CAS");
    let limits = Limits {
        max_body_bytes: 64 << 10,
        ..Limits::default()
    };
    Handler::quiet(cas, limits)
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let owner = match mode % 8 {
        0 => None,
        1 => Some("mallory"),
        _ => Some("alice"),
    };
    let request = if mode < 128 {
        rest.to_vec()
    } else {
        match requests(&mut Unstructured::new(rest)) {
            Ok(bytes) => bytes,
            Err(_) => return,
        }
    };
    let answer = exchange(&request, owner);
    check_answer(&answer);
}

/// Sends `request` to `serve_http` and reads the answer until the server closes.
pub fn exchange(request: &[u8], owner: Option<&str>) -> Vec<u8> {
    // Declared first, dropped last: after the runtime has waited for its
    // blocking work (a store the client did not wait for).
    let dir = super::scratch();
    let handler = handler(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let (server, client) = tokio::io::duplex(256 << 10);
        let serving = tokio::spawn(serve_http(
            server,
            owner.map(str::to_string),
            handler,
            Arc::new(AtomicUsize::new(0)),
        ));
        let mut answer = Vec::new();
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = async {
            let _ = writer.write_all(request).await;
            writer
        };
        let read = reader.read_to_end(&mut answer);
        let (writer, _) = tokio::join!(write, read);
        drop(writer);
        let _ = serving.await;
        answer
    })
}

/// The answer is HTTP (or nothing: hyper closes on bytes that are not HTTP), and
/// no request made the server fail.
pub fn check_answer(answer: &[u8]) {
    let text = String::from_utf8_lossy(answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 ") || text.starts_with("HTTP/1.0 "),
        "not an HTTP answer: {text}"
    );
    for (at, _) in text.match_indices("HTTP/1.") {
        let status = &text[at + 9..(at + 12).min(text.len())];
        assert_ne!(status, "500", "the server failed: {text}");
    }
}

/// One to three requests, drawn.
pub fn requests(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        request(u, &mut out)?;
    }
    Ok(out)
}

fn body(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => match render(&super::session::session_input(u)?) {
            Ok(yaml) => yaml.into_bytes(),
            Err(_) => Vec::new(),
        },
        2 => {
            let size: u32 = u.arbitrary()?;
            format!(
                "name: \"s\"\nsecrets:\n  - name: \"x\"\n    kind: \"ascii\"\n    size: {size}\n"
            )
            .into_bytes()
        }
        _ => Vec::<u8>::arbitrary(u)?,
    })
}

fn request(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> Result<()> {
    const METHODS: &[&str] = &[
        "GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT", "get", "",
    ];
    const PATHS: &[&str] = &[
        "/session",
        "/v1/sessions/myPythonApp",
        "/v1/sessions/",
        "/v1/sessions/../x",
        "/v1/sessions/s",
        "/v1/sessions/%2e%2e",
        "*",
        "/",
        "//session",
        "/session?x=1",
        "http://h/session",
    ];
    let method = if u.ratio(7, 8)? {
        u.choose(METHODS)?.to_string()
    } else {
        String::arbitrary(u)?
    };
    let path = if u.ratio(7, 8)? {
        u.choose(PATHS)?.to_string()
    } else {
        String::arbitrary(u)?
    };
    let version = *u.choose(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 "])?;
    let body = body(u)?;
    out.extend_from_slice(format!("{method} {path} {version}\r\nHost: 127.0.0.1\r\n").as_bytes());
    for _ in 0..u.int_in_range(0..=3)? {
        const NAMES: &[&str] = &[
            "Expect",
            "Connection",
            "Content-Type",
            "X-Any",
            "Transfer-Encoding",
            "Content-Length",
        ];
        const VALUES: &[&str] = &[
            "100-continue",
            "close",
            "keep-alive",
            "application/yaml",
            "chunked",
            "gzip, chunked",
            "-1",
            "0",
            "18446744073709551616",
        ];
        let name = u.choose(NAMES)?;
        let value = if u.ratio(3, 4)? {
            u.choose(VALUES)?.to_string()
        } else {
            String::arbitrary(u)?
        };
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    match u.int_in_range(0..=4)? {
        0 | 1 => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        }
        2 => {
            let declared: u64 = u.arbitrary()?;
            out.extend_from_slice(format!("Content-Length: {declared}\r\n\r\n").as_bytes());
            out.extend_from_slice(&body);
        }
        3 => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = u.int_in_range(1..=rest.len())?;
                out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            if u.ratio(7, 8)? {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        _ => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
    }
    Ok(())
}
