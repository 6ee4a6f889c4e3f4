//! `scone cas serve` under attack, through the real server: a session declaring a
//! secret of 4294967295 bytes, a body and a header past their caps, and more idle
//! connections than the server keeps. Each attack is refused while the next real
//! request is answered. The bounds are documented in docs/cas.md.

mod support;

use std::net::TcpStream;

use scone::cas::session::{render, SecretDecl, SecretKind, ServiceInput, SessionInput};
use scone::cas::tls::ClientIdentity;
use scone::cas::{apply_session, ApplyOutcome};
use support::cas_server::{post_session, status_of, ServeOptions, Server};

/// A 100-byte session whose one secret declares 4294967295 (u32::MAX) characters.
const SIZE_BOMB: &str = "name: \"bomb\"\nversion: \"0.3.10\"\nsecrets:\n  - name: \"huge\"\n    \
                         kind: \"ascii\"\n    size: 4294967295\n";

/// `ulimit -v` for the server of the secret-size test: it runs in about 1.3 GiB
/// of address space (mimalloc reserves ahead), so a server that tries to allocate
/// the declared 4 GiB fails there (and dies) instead of taking the machine's memory.
const ADDRESS_SPACE_KIB: u64 = 4 << 20;

/// A real session: one service, one 10-character ascii secret.
fn session(name: &str, user: &str) -> String {
    render(&SessionInput {
        name: name.into(),
        services: vec![ServiceInput {
            name: "python_app".into(),
            image_name: "python_hello_user".into(),
            mrenclaves: vec!["5e".repeat(32)],
            command: "python3 print_env.py".into(),
            pwd: "/python".into(),
            environment: vec![
                ("API_PASSWORD".into(), "$$SCONE::password".into()),
                ("API_USER".into(), user.into()),
            ],
            fspf_tag: Some("00ff".into()),
        }],
        secrets: vec![SecretDecl {
            name: "password".into(),
            kind: SecretKind::Ascii,
            size: Some(10),
            fixed: false,
            export_to: vec!["python_app".into()],
        }],
        ..SessionInput::default()
    })
    .expect("renders")
}

/// A session declaring `count` binary secrets of `size` bytes each.
fn session_with_secrets(count: usize, size: u64) -> String {
    let mut yaml = String::from("name: \"many\"\nversion: \"0.3.10\"\nsecrets:\n");
    for i in 0..count {
        yaml.push_str(&format!(
            "  - name: \"s{i}\"\n    kind: \"binary\"\n    size: {size}\n"
        ));
    }
    yaml
}

#[test]
fn a_secret_of_4294967295_bytes_is_refused_and_the_server_answers_the_next_request() {
    let mut server = Server::start_with(ServeOptions {
        address_space_kib: Some(ADDRESS_SPACE_KIB),
        ..ServeOptions::default()
    });
    let alice = ClientIdentity::generate("alice").expect("identity");

    let answer = server.raw(&alice, &post_session(SIZE_BOMB));
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    assert!(
        answer.contains("65536"),
        "the answer names the maximum size: {answer}"
    );
    server.assert_running();

    // One byte past the maximum is refused; the maximum itself is accepted.
    let answer = server.raw(&alice, &post_session(&session_with_secrets(1, 65_537)));
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    let answer = server.raw(&alice, &post_session(&session_with_secrets(1, 65_536)));
    assert_eq!(status_of(&answer), Some(201), "{answer}");

    // Many secrets below the maximum but past the total a session may declare.
    let answer = server.raw(&alice, &post_session(&session_with_secrets(17, 65_536)));
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    assert!(
        answer.contains("1048576"),
        "the answer names the total: {answer}"
    );

    // The next real request is answered.
    let cas = server.client(&alice);
    let outcome = apply_session(&cas, &session("myPythonApp", "myself"), None).expect("stored");
    assert!(
        matches!(outcome, ApplyOutcome::Uploaded { .. }),
        "{outcome:?}"
    );
    assert_eq!(server.password().len(), 10);
    server.assert_running();
    let peak = server.status_kib("VmHWM");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn a_body_or_header_past_its_cap_is_refused_before_it_is_read() {
    let mut server = Server::start();
    let alice = ClientIdentity::generate("alice").expect("identity");

    // A declared body of 1 GiB, none of it sent: refused at once (a server that
    // waited for the body would never answer).
    let answer = server.raw(
        &alice,
        b"POST /session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(413), "{answer}");
    assert!(answer.contains("8388608"), "names the cap: {answer}");

    // A header past 16 KiB: 431.
    let big = "x".repeat(20 * 1024);
    let answer = server.raw(
        &alice,
        format!(
            "GET /v1/sessions/myPythonApp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&answer), Some(431), "{answer}");

    // The next real request is answered.
    let cas = server.client(&alice);
    apply_session(&cas, &session("myPythonApp", "myself"), None).expect("stored");
    server.assert_running();
}

#[test]
fn idle_connections_past_the_cap_do_not_starve_a_real_client() {
    // 1024 open files: the usual default soft limit of a machine.
    let mut server = Server::start_with(ServeOptions {
        open_files_limit: Some(1024),
        ..ServeOptions::default()
    });
    let (alice, mallory) = (
        ClientIdentity::generate("alice").expect("identity"),
        ClientIdentity::generate("mallory").expect("identity"),
    );
    // 1,100 connections that never send a byte, then 50 that finish the TLS
    // handshake and send nothing more.
    let silent: Vec<TcpStream> = (0..1_100)
        .map(|_| TcpStream::connect(server.addr).expect("connects"))
        .collect();
    let idle: Vec<_> = (0..50).map(|_| server.tls(&mallory)).collect();

    // A real client is answered, twice (create, then update).
    let cas = server.client(&alice);
    let first = apply_session(&cas, &session("myPythonApp", "myself"), None).expect("created");
    let second = apply_session(&cas, &session("myPythonApp", "someone"), Some(first.hash()))
        .expect("updated");
    assert!(
        matches!(second, ApplyOutcome::Uploaded { .. }),
        "{second:?}"
    );
    server.assert_running();
    // The server keeps a bounded number of connections (256) open, not 1,150.
    let open = server.open_files();
    assert!(open < 256 + 32, "the server has {open} files open");
    let log = server.log();
    assert!(log.contains("closed the oldest idle connection"), "{log}");
    drop((silent, idle));
}

#[test]
fn a_closed_log_does_not_stop_the_server_answering() {
    // `scone cas serve 2>&1 | head`: once the reader is gone, every log line
    // (a request, a refused handshake) fails to write. The server answers on.
    let mut server = Server::start_with(ServeOptions {
        log_closed: true,
        ..ServeOptions::default()
    });
    let alice = ClientIdentity::generate("alice").expect("identity");
    for round in 0..3 {
        // A connection that is no TLS: its refusal is logged.
        let mut junk = TcpStream::connect(server.addr).expect("connects");
        std::io::Write::write_all(&mut junk, b"GET / HTTP/1.1\r\n\r\n").expect("sends");
        drop(junk);
        // A real request: logged, and answered.
        let answer = server.raw(
            &alice,
            &post_session(&session(&format!("closed-log-{round}"), "me")),
        );
        assert_eq!(status_of(&answer), Some(201), "round {round}: {answer}");
        server.assert_running();
    }
}
