//! The load test of `scone cas serve`, through the real server on 127.0.0.1:
//! 1,000 idle connections (800 that never send a byte, 200 that stop after the
//! TLS handshake) and 100 requests declaring a secret of 4294967295 characters,
//! while a real client applies 50 sessions. Every real request is answered,
//! every oversized request is refused (400) or its connection closed, and the
//! server's peak RSS (`VmHWM`) stays under [`PEAK_RSS_KIB`]. Loopback only; the
//! counts are fixed, and the test stops by itself.
//!
//! `SCONE_CAS_LOAD_SCALE=N` multiplies the counts for a longer run by hand
//! (`bench/cas-load.sh`); the numbers are in docs/cas.md and docs/performance.md.

mod support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use scone::cas::session::{render, SecretDecl, SecretKind, ServiceInput, SessionInput};
use scone::cas::tls::ClientIdentity;
use scone::cas::{apply_session, ApplyOutcome, Cas};
use support::cas_server::{post_session, status_of, Server};

/// The bound on the server's peak RSS under this load (measured: about 30 MiB;
/// see docs/cas.md "Bounds").
const PEAK_RSS_KIB: u64 = 96 * 1024;

fn scale() -> usize {
    std::env::var("SCONE_CAS_LOAD_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

fn session(name: &str) -> String {
    render(&SessionInput {
        name: name.into(),
        services: vec![ServiceInput {
            name: "app".into(),
            image_name: "app_image".into(),
            mrenclaves: vec!["5e".repeat(32)],
            command: "app --serve".into(),
            pwd: "/app".into(),
            environment: vec![("TOKEN".into(), "$$SCONE::token".into())],
            fspf_tag: None,
        }],
        secrets: vec![SecretDecl {
            name: "token".into(),
            kind: SecretKind::Ascii,
            size: Some(16),
            fixed: false,
            export_to: vec!["app".into()],
        }],
        ..SessionInput::default()
    })
    .expect("renders")
}

const SIZE_BOMB: &str = "name: \"bomb\"\nversion: \"0.3.10\"\nsecrets:\n  - name: \"huge\"\n    \
                         kind: \"ascii\"\n    size: 4294967295\n";

#[test]
fn idle_connections_and_oversized_secrets_do_not_stop_real_clients() {
    let scale = scale();
    let (silent_count, idle_tls_count, bombs, sessions) =
        (800 * scale, 200 * scale, 100 * scale, 50 * scale);
    let mut server = Server::start();
    let alice = ClientIdentity::generate("alice").expect("identity");
    let mallory = ClientIdentity::generate("mallory").expect("identity");

    // The idle connections, all open before the real client starts.
    let silent: Vec<TcpStream> = (0..silent_count)
        .map(|_| TcpStream::connect(server.addr).expect("connects"))
        .collect();
    let idle_tls: Vec<_> = (0..idle_tls_count).map(|_| server.tls(&mallory)).collect();

    // The oversized requests, from another thread while the real client works.
    let refused = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let attack = std::thread::scope(|scope| {
        let attacker = scope.spawn(|| {
            for _ in 0..bombs {
                let answer = server.raw(&mallory, &post_session(SIZE_BOMB));
                match status_of(&answer) {
                    Some(400) => refused.fetch_add(1, Ordering::Relaxed),
                    None => closed.fetch_add(1, Ordering::Relaxed),
                    Some(other) => panic!("an oversized secret was answered {other}: {answer}"),
                };
            }
        });
        let cas = server.client(&alice);
        let mut answered = 0;
        for i in 0..sessions {
            let name = format!("load-{i}");
            let outcome = apply_session(&cas, &session(&name), None)
                .unwrap_or_else(|e| panic!("session {i} of the real client: {e}"));
            assert!(
                matches!(outcome, ApplyOutcome::Uploaded { .. }),
                "{outcome:?}"
            );
            assert!(cas.current_hash(&name).expect("reads").is_some());
            answered += 1;
        }
        attacker.join().expect("the attacker ends");
        answered
    });
    server.assert_running();
    let peak = server.status_kib("VmHWM");
    let open = server.open_files();
    let (refused, closed) = (
        refused.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
    );
    eprintln!(
        "cas load: {silent_count} silent + {idle_tls_count} idle TLS connections, {bombs} \
         oversized secrets ({refused} refused with 400, {closed} closed), {attack} of \
         {sessions} sessions applied; server peak RSS {peak} KiB, {open} files open"
    );
    assert_eq!(attack, sessions, "every real session applied");
    assert_eq!(refused + closed, bombs);
    assert!(refused > 0, "the oversized requests reached the server");
    assert!(
        peak < PEAK_RSS_KIB,
        "peak RSS {peak} KiB, bound {PEAK_RSS_KIB} KiB"
    );
    assert!(open < 256 + 32, "the server has {open} files open");
    drop((silent, idle_tls));
}
