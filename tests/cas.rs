//! CAS through the binary: `scone cas serve` in the background with a temporary
//! CAS directory, sessions uploaded with `RemoteCas` (right certificate, wrong
//! certificate, no certificate, untrusted server, stale predecessor), and the
//! generated secret never showing up in any output.

mod support;

use std::path::PathBuf;

use scone::cas::local::LocalCas;
use scone::cas::remote::RemoteCas;
use scone::cas::session::{render, SecretDecl, SecretKind, ServiceInput, SessionInput};
use scone::cas::tls::{ClientIdentity, ServerTls};
use scone::cas::{apply_session, ApplyOutcome, Cas, CasError};
use support::cas_server::Server;

fn session(user: &str) -> String {
    render(&SessionInput {
        name: "myPythonApp".into(),
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
        tolerate: vec!["debug-mode".into()],
        ignore_advisories: vec![],
        predecessor: None,
    })
    .expect("renders")
}

#[test]
fn remote_cas_chain_ownership_and_stale_predecessor() {
    let server = Server::start();
    let alice = ClientIdentity::generate("alice").expect("identity");
    let mallory = ClientIdentity::generate("mallory").expect("identity");
    let cas = server.client(&alice);
    let mut errors = Vec::new();

    let first = apply_session(&cas, &session("myself"), None).expect("creates");
    let ApplyOutcome::Uploaded {
        hash: h1,
        predecessor: None,
        own_update: false,
    } = first
    else {
        panic!("first apply creates the session: {first:?}");
    };
    assert_eq!(
        cas.current_hash("myPythonApp").expect("reads"),
        Some(h1.clone())
    );
    let password = server.password();
    assert_eq!(password.len(), 10);

    let again = apply_session(&cas, &session("myself"), Some(&h1)).expect("applies");
    assert_eq!(
        again,
        ApplyOutcome::Unchanged { hash: h1.clone() },
        "nothing uploaded"
    );

    let second = apply_session(&cas, &session("someone"), Some(&h1)).expect("updates");
    let ApplyOutcome::Uploaded {
        hash: h2,
        predecessor,
        own_update: false,
    } = second
    else {
        panic!("a change uploads: {second:?}");
    };
    assert_eq!(
        predecessor.as_deref(),
        Some(h1.as_str()),
        "names the first hash"
    );
    assert_eq!(server.password(), password, "the secret is kept on update");

    // Another client certificate may neither update nor read the session.
    let intruder = server.client(&mallory);
    let err = intruder
        .upload(&session("evil"), Some(&h2))
        .expect_err("not the owner");
    assert!(matches!(err, CasError::NotOwner { .. }), "{err}");
    assert!(err.to_string().contains("client certificate"), "{err}");
    errors.push(err.to_string());
    let err = intruder.session("myPythonApp").expect_err("not the owner");
    assert!(matches!(err, CasError::NotOwner { .. }), "{err}");
    errors.push(err.to_string());
    // …but it may create its own sessions.
    let own = session("mine").replace("name: \"myPythonApp\"", "name: \"malloryApp\"");
    intruder
        .upload(&own, None)
        .expect("creates its own session");

    // A stale predecessor (from an old scone.lock) is refused with what to do.
    let err = apply_session(&cas, &session("third"), Some(&h1)).expect_err("stale");
    let CasError::PredecessorConflict { current, .. } = &err else {
        panic!("expected a predecessor conflict, got {err}");
    };
    assert_eq!(current.as_deref(), Some(h2.as_str()));
    let text = err.to_string();
    assert!(text.contains(&h2) && text.contains("scone apply"), "{text}");
    errors.push(text);
    // Creating again without predecessor is refused too.
    let err = cas.upload(&session("third"), None).expect_err("exists");
    assert!(
        matches!(err, CasError::PredecessorConflict { given: None, .. }),
        "{err}"
    );
    errors.push(err.to_string());

    let log = server.wait_for_log("POST /session -> 409");
    assert!(
        log.contains("POST /session -> 201") && log.contains("-> 403"),
        "{log}"
    );
    for text in errors.iter().chain(std::iter::once(&log)) {
        assert!(!text.contains(&password), "the secret leaked into: {text}");
    }
}

#[test]
fn tls_refuses_missing_client_certificate_and_untrusted_server() {
    let server = Server::start();
    let alice = ClientIdentity::generate("alice").expect("identity");

    // No client certificate: the TLS handshake is refused.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anonymous = reqwest::blocking::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).expect("ca")])
        .build()
        .expect("client");
    let sent = anonymous
        .post(format!("{}/session", server.url))
        .body(session("x"))
        .send();
    assert!(
        sent.is_err(),
        "a client without certificate must be refused: {sent:?}"
    );
    let refused = server.wait_for_log("TLS handshake");
    assert!(refused.contains("refused"), "{refused}");

    // A server the client does not trust: a clear TLS error.
    let other = tempfile::tempdir().expect("tempdir");
    let foreign = ServerTls::load_or_create(other.path(), &[]).expect("other CA");
    let foreign_ca = std::fs::read_to_string(&foreign.ca_cert_path).expect("ca");
    let cas = RemoteCas::connect(&server.url, &alice, Some(&foreign_ca)).expect("builds");
    let err = cas
        .upload(&session("x"), None)
        .expect_err("untrusted server");
    assert!(matches!(err, CasError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("scone cas serve"), "{err}");

    // Nothing listening: unreachable, not a TLS error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let closed = RemoteCas::connect(&format!("127.0.0.1:{port}"), &alice, Some(&server.ca_pem))
        .expect("builds");
    let err = closed
        .current_hash("myPythonApp")
        .expect_err("nothing listens");
    assert!(matches!(err, CasError::Unreachable { .. }), "{err}");
}

#[test]
fn cli_shows_sessions_and_identity_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cas_dir = dir.path().join("cas");
    let cas = LocalCas::open(&cas_dir).expect("opens");
    let hash = cas.upload(&session("myself"), None).expect("creates");
    let password = cas.secret_values("myPythonApp").expect("values")["password"]
        .expose_str()
        .expect("ascii")
        .to_string();

    let out = support::scone()
        .args(["cas", "session", "myPythonApp", "--cas-dir"])
        .arg(&cas_dir)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&hash), "{stdout}");
    assert!(stdout.contains("$$SCONE::password$$"), "{stdout}");
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(&password));
    }

    let missing = support::scone()
        .args(["cas", "session", "nope", "--cas-dir"])
        .arg(&cas_dir)
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session `nope`"));

    let config = dir.path().join("config");
    let out = support::scone()
        .args(["cas", "identity"])
        .env("SCONE_CAS_CONFIG_DIR", &config)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let identity = ClientIdentity::load_or_create(&config).expect("created by the CLI");
    let fingerprint = identity.fingerprint().expect("fingerprint");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&fingerprint));
}

/// Copies the hello-world fixture into a fresh folder.
fn hello_world_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["mesh.yml", "service.yml", "print_env.py"] {
        std::fs::copy(
            support::fixtures().join("hello-world").join(file),
            dir.path().join(file),
        )
        .expect("copies the fixture");
    }
    dir
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            std::fs::read(e.path())
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn apply_uploads_hello_world_to_the_local_cas_and_keeps_its_secret_private() {
    let sandbox = support::Sandbox::new();
    let project = hello_world_copy();
    let root = project.path();
    let mut outputs = Vec::new();
    let mut apply = || {
        let out = sandbox
            .scone(root)
            .args(["apply", "-f", "mesh.yml", "--message-format", "json"])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(out.stdout);
        outputs.push(out.stderr);
    };

    apply();
    let cas = LocalCas::open(&sandbox.path().join("cas")).expect("the sandbox CAS");
    let first = cas
        .session("myPythonApp")
        .expect("reads")
        .expect("uploaded");
    let password = cas.secret_values("myPythonApp").expect("values")["password"]
        .expose_str()
        .expect("ascii")
        .to_string();
    assert_eq!(password.len(), 10);

    // The session: environment, secret declaration, MRENCLAVE = SIGSTRUCT.ENCLAVEHASH.
    let doc: serde_json::Value = serde_saphyr::from_str(&first.yaml).expect("parses");
    let service = &doc["services"][0];
    assert_eq!(service["environment"]["API_USER"], "myself");
    assert_eq!(
        service["environment"]["API_PASSWORD"],
        "$$SCONE::password$$"
    );
    assert_eq!(doc["secrets"][0]["name"], "password");
    assert_eq!(doc["secrets"][0]["kind"], "ascii");
    assert_eq!(doc["secrets"][0]["size"], 10);
    let sigstructs: Vec<PathBuf> = walkdir::WalkDir::new(root.join("target/enclave"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "sigstruct.bin")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(sigstructs.len(), 1, "one signed service");
    let sigstruct = std::fs::read(&sigstructs[0]).expect("sigstruct");
    assert_eq!(service["mrenclaves"][0], hex::encode(&sigstruct[960..992]));
    assert!(
        service["fspf_tag"].as_str().is_some_and(|t| !t.is_empty()),
        "{service}"
    );
    let written =
        std::fs::read_to_string(root.join("target/policy/myPythonApp.yaml")).expect("policy");
    assert_eq!(
        scone::cas::session::content_hash(&written),
        first.content_hash()
    );

    // A change: the update names the first hash, the password stays.
    let mesh = std::fs::read_to_string(root.join("mesh.yml")).expect("mesh");
    std::fs::write(
        root.join("mesh.yml"),
        mesh.replace("value: myself", "value: someone"),
    )
    .expect("edit");
    apply();
    let second = cas.session("myPythonApp").expect("reads").expect("exists");
    assert_ne!(second.hash, first.hash);
    assert!(second
        .yaml
        .contains(&format!("predecessor: \"{}\"", first.hash)));
    assert_eq!(
        cas.history("myPythonApp").expect("history"),
        vec![first.hash.clone()]
    );
    let again = cas.secret_values("myPythonApp").expect("values");
    assert_eq!(again["password"].expose_str(), Some(password.as_str()));

    // Unchanged: nothing uploaded.
    apply();
    let third = cas.session("myPythonApp").expect("reads").expect("exists");
    assert_eq!(third.hash, second.hash);
    assert_eq!(cas.history("myPythonApp").expect("history").len(), 1);

    // The generated value is nowhere under target/, in scone.lock or in any output.
    assert!(files_containing(&root.join("target"), password.as_bytes()).is_empty());
    let lock = std::fs::read_to_string(root.join("scone.lock")).expect("scone.lock");
    assert!(!lock.contains(&password));
    assert!(
        lock.contains(&second.hash),
        "scone.lock records the session hash:\n{lock}"
    );
    for out in &outputs {
        assert!(!String::from_utf8_lossy(out).contains(&password));
    }
}

#[test]
fn apply_to_a_served_cas_refuses_other_certificates_and_stale_predecessors() {
    let server = Server::start();
    let sandbox = support::Sandbox::new();
    let project = hello_world_copy();
    let root = project.path();
    let mesh = std::fs::read_to_string(root.join("mesh.yml")).expect("mesh");
    let url = server.url.trim_start_matches("https://").to_string();
    let mesh = mesh.replace("edge.scone-cas.cf", &url);
    std::fs::write(root.join("mesh.yml"), &mesh).expect("mesh");
    let apply = || {
        sandbox
            .scone(root)
            .args(["apply", "-f", "mesh.yml", "--cas", "remote", "--cas-ca"])
            .arg(&server.ca_path)
            .output()
            .expect("runs")
    };

    let out = apply();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = LocalCas::open(&server.cas_dir).expect("server CAS");
    let h1 = served
        .current_hash("myPythonApp")
        .expect("reads")
        .expect("uploaded");
    let password = server.password();

    // Someone with the same identity updates the session behind our back.
    let config = sandbox.path().join("config/scone/cas");
    let identity = ClientIdentity::load_or_create(&config).expect("the identity apply used");
    let other = server.client(&identity);
    let yaml = served
        .session("myPythonApp")
        .expect("reads")
        .expect("exists")
        .yaml;
    let h2 = other
        .upload(&yaml.replace("\"myself\"", "\"elsewhere\""), Some(&h1))
        .expect("updates");

    // Our next apply still names h1 (from scone.lock): refused, with what to do.
    std::fs::write(
        root.join("mesh.yml"),
        mesh.replace("value: myself", "value: someone"),
    )
    .expect("edit");
    let out = apply();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&h2) && stderr.contains("scone apply"),
        "{stderr}"
    );

    // Another client certificate is refused.
    std::fs::remove_file(config.join("client.crt")).expect("rm");
    std::fs::remove_file(config.join("client.key")).expect("rm");
    let out = apply();
    assert_eq!(out.status.code(), Some(1));
    let stderr2 = String::from_utf8_lossy(&out.stderr);
    assert!(stderr2.contains("client certificate"), "{stderr2}");

    for text in [&stderr, &stderr2] {
        assert!(!text.contains(&password));
    }
}

#[test]
fn identity_whose_reader_goes_away_ends_quietly() {
    // `scone cas identity | head -c 0`: the certificate is made, and the
    // command ends as `cat` would, not with a panic.
    let sb = support::Sandbox::new();
    let mut identity = sb.std_command(sb.path());
    identity.args(["cas", "identity"]);
    support::assert_ends_quietly_without_reader(identity);
    let made = walkdir::WalkDir::new(sb.path().join("config"))
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| e.file_name() == "client.crt");
    assert!(made, "the identity is made before anything is printed");
}

/// `scone cas session` only reads: pointed at a folder that is no CAS, it
/// leaves the folder's mode and files as they were (it made it 0700 and put
/// `.lock` and `sessions/` in it); pointed at a missing folder, it makes none.
#[test]
fn cas_session_changes_and_makes_no_folder() {
    use std::os::unix::fs::PermissionsExt;
    let sb = support::Sandbox::new();
    let shared = sb.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("file"), "keep").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb
        .scone(sb.path())
        .args(["cas", "session", "anything", "--cas-dir"])
        .arg(&shared)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(support::looks(&shared), (0o755, vec!["file".to_string()]));
    assert!(
        err.contains("no session `anything`") && err.contains(&shared.display().to_string()),
        "{err}"
    );

    // Missing, given with --cas-dir and through SCONE_CAS_DIR.
    let missing = sb.path().join("missing").join("cas");
    let out = sb
        .scone(sb.path())
        .args(["cas", "session", "anything", "--cas-dir"])
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let out = sb
        .scone(sb.path())
        .env("SCONE_CAS_DIR", &missing)
        .args(["cas", "session", "anything"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(!sb.path().join("missing").exists(), "no folder made");
}

/// `scone cas serve` writes sessions, so it refuses a folder that is no CAS
/// (before it listens) and leaves it as it was.
#[test]
fn cas_serve_refuses_a_folder_that_is_no_cas() {
    use std::os::unix::fs::PermissionsExt;
    let sb = support::Sandbox::new();
    let shared = sb.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("file"), "keep").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = sb
        .std_command(sb.path())
        .args(["cas", "serve", "--listen", "127.0.0.1:0", "--cas-dir"])
        .arg(&shared)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "it served: {err}");
    assert!(
        err.contains(&shared.display().to_string())
            && err.contains("not a local CAS")
            && err.contains("--cas-dir"),
        "{err}"
    );
    assert_eq!(support::looks(&shared), (0o755, vec!["file".to_string()]));
}

/// An address `cas serve` cannot listen on is a usage error (exit 2, as every
/// other bad flag value), named with its flag, before any folder is made.
#[test]
fn serve_refuses_a_listen_value_that_is_no_address_as_a_usage_error() {
    let sb = support::Sandbox::new();
    let dir = sb.path().join("cas");
    for bad in ["nonsense", "127.0.0.1", "localhost:8081", "127.0.0.1:99999"] {
        let out = sb
            .scone(sb.path())
            .args(["cas", "serve", "--listen", bad, "--cas-dir"])
            .arg(&dir)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--listen <IP:PORT>") && err.contains(bad),
            "{bad}: {err}"
        );
        assert!(!dir.exists(), "{bad}: no folder made");
    }
}
