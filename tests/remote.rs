//! The shared remote cache against real servers: Debian's `docker-registry`
//! (`oci://`) and nginx with WebDAV (`http://`, the Bazel HTTP cache protocol).
//!
//! Folder A builds with `--remote-cache-write`; folder B (another checkout, an
//! empty `target/` and an empty user cache) must then download everything,
//! build nothing, and end up with byte-identical outputs.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use support::monorepo::{generate, MonorepoOptions};
use support::registry::Registry;
use support::webdav::Webdav;
use support::{finished, messages, step_statuses, tree, warnings, Sandbox};

const SERVICES: usize = 50;

/// A sandbox (own user cache) with a generated monorepo in it.
fn checkout(services: usize) -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services,
            ..MonorepoOptions::default()
        },
    );
    (sb, root)
}

fn build_json(sb: &Sandbox, root: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    sb.build_json(root, extra)
}

fn count(msgs: &[serde_json::Value], key: &str) -> u64 {
    finished(msgs)[key].as_u64().unwrap_or(u64::MAX)
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// A → remote → B: B is all remote hits with A's exact outputs; a third
/// checkout shows the hits in `-v` output. Returns A's messages.
fn round_trip(url: &str) -> Vec<serde_json::Value> {
    let (sa, a) = checkout(SERVICES);
    let built = build_json(&sa, &a, &["--remote-cache", url, "--remote-cache-write"]);
    let steps = step_statuses(&built).len() as u64;
    assert_eq!(count(&built, "built"), steps, "A builds everything");
    assert_eq!(count(&built, "remote"), 0);
    assert!(warnings(&built).is_empty(), "{:?}", warnings(&built));

    let (sb, b) = checkout(SERVICES);
    let got = build_json(&sb, &b, &["--remote-cache", url]);
    let statuses = step_statuses(&got);
    assert_eq!(statuses.len() as u64, steps);
    let not_remote: Vec<_> = statuses.iter().filter(|s| s.2 != "remote").collect();
    assert!(not_remote.is_empty(), "not remote hits: {not_remote:?}");
    assert_eq!(count(&got, "built"), 0);
    assert_eq!(count(&got, "remote"), steps);
    assert!(warnings(&got).is_empty(), "{:?}", warnings(&got));
    let (ta, tb) = (tree(&a.join("target")), tree(&b.join("target")));
    assert!(ta.len() > SERVICES * 3, "A published {} files", ta.len());
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "same files"
    );
    assert!(ta == tb, "A's and B's outputs differ");

    // B again: everything is a local hit now.
    let again = build_json(&sb, &b, &["--remote-cache", url]);
    assert_eq!(count(&again, "fresh"), steps);

    // A third checkout, human output with -v: per step "remote hit", and the
    // closing line counts each kind.
    let (sc, c) = checkout(SERVICES);
    let out = sc
        .scone(&c)
        .args(["build", "-f", "mesh.yml", "-v", "--remote-cache", url])
        .output()
        .expect("run scone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Downloaded copy:svc_0000 (remote hit"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("0 built, {steps} remote hits, 0 local hits")),
        "{stderr}"
    );
    // Every step found in A's build index: one request for all of them.
    let summary =
        format!("{url}: {steps} hits, 0 misses, {steps} found in the build index, 0 late, ");
    let line = stderr.lines().find(|l| l.contains(&summary));
    assert!(
        line.is_some_and(|l| l.ends_with("MB downloaded, 0 entries and 0 blobs uploaded")),
        "{stderr}"
    );
    let again = sc
        .scone(&c)
        .args(["build", "-f", "mesh.yml", "-v", "--remote-cache", url])
        .output()
        .expect("run scone");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("Fresh copy:svc_0000 (local hit)"),
        "{stderr}"
    );
    built
}

/// Nothing secret reached the remote: not the signing key, in any form we hold
/// (`tests/secrets.rs` does this for every secret of an apply).
fn assert_no_secrets(files: &[PathBuf]) {
    let mut needles = support::secrets::Needles::new();
    needles.signing_key(&support::sig1_key());
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(f).expect("a remote file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("PRIVATE KEY"), "{} holds a key", f.display());
        let leaks = needles.leaks_in(&f.display().to_string(), &bytes);
        assert!(leaks.is_empty(), "{}", support::secrets::report(&leaks));
    }
}

#[test]
fn http_cache_serves_a_second_checkout_entirely() {
    let server = Webdav::start();
    let url = server.url("cache");
    round_trip(&url);
    let data = server.data().join("cache");
    let ac = files_under(&data.join("ac"));
    let cas = files_under(&data.join("cas"));
    assert!(ac.len() > SERVICES * 4, "{} entries", ac.len());
    for blob in &cas {
        let name = blob
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let bytes = std::fs::read(blob).expect("a cas blob");
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(name, digest, "cas/ is addressed by sha256");
    }
    assert_no_secrets(&[ac, cas].concat());
}

#[test]
fn oci_registry_cache_serves_a_second_checkout_entirely() {
    let registry = Registry::start();
    let url = format!("oci://{}/scone-cache", registry.addr());
    round_trip(&url);
    // One manifest per fingerprint, with our artifact type, and one build index,
    // checked by skopeo.
    let tags = support::tools::skopeo_list_tags(&format!("{}/scone-cache", registry.addr()));
    let (entries, other): (Vec<&String>, Vec<&String>) =
        tags.iter().partition(|t| t.starts_with("fp-"));
    assert!(entries.len() > SERVICES * 4, "{} tags", tags.len());
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(other[0].starts_with("ix-"), "{other:?}");
    let raw = |tag: &str| {
        support::tools::skopeo_raw_manifest(&format!("{}/scone-cache:{tag}", registry.addr()))
    };
    let entry = raw(entries[0]);
    assert_eq!(
        entry["artifactType"],
        "application/vnd.scone.action.v1+json"
    );
    assert_eq!(
        entry["config"]["mediaType"],
        "application/vnd.scone.action.v1+json"
    );
    let index = raw(other[0]);
    assert_eq!(index["artifactType"], "application/vnd.scone.index.v1+gzip");
    let layers = index["layers"].as_array().cloned().unwrap_or_default();
    assert!(!layers.is_empty(), "the index names its packs: {index}");
    assert_no_secrets(&files_under(registry.storage()));
}

#[test]
fn stopping_the_registry_mid_build_warns_once_and_builds_locally() {
    let registry = Registry::start();
    let url = format!("oci://{}/scone-cache", registry.addr());
    let (sa, a) = checkout(SERVICES);
    build_json(&sa, &a, &["--remote-cache", &url, "--remote-cache-write"]);

    // One service more: another plan, so no build index; every step asks for its
    // own entry, and some do after the registry is gone.
    let (sb, b) = checkout(SERVICES + 1);
    let mut child = sb
        .std_command(&b)
        .args([
            "build",
            "-f",
            "mesh.yml",
            "--message-format=json",
            "--jobs=1",
        ])
        .args(["--remote-cache", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scone");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    let mut registry = Some(registry);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if registry.is_some() && line.contains("\"status\":\"remote\"") {
            // The first remote hit: stop the registry under the running build.
            if let Some(r) = registry.take() {
                r.stop();
            }
        }
        lines.push(line);
    }
    let status = child.wait().expect("scone exits");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "the build failed:\n{stderr}");
    let msgs = messages(lines.join("\n").as_bytes());
    let warns = warnings(&msgs);
    assert_eq!(warns.len(), 1, "exactly one warning: {warns:?}");
    assert!(
        warns[0].contains(&url) && warns[0].contains("building locally"),
        "{}",
        warns[0]
    );
    assert!(count(&msgs, "remote") >= 1, "some hits before the stop");
    assert!(count(&msgs, "built") >= 1, "the rest built locally");
    let (ta, tb) = (tree(&a.join("target")), tree(&b.join("target")));
    let shared: Vec<&String> = ta
        .keys()
        .filter(|k| k.contains("svc_00") && !k.contains("svc_0050"))
        .collect();
    assert!(
        shared.len() > SERVICES * 3,
        "{} service files",
        shared.len()
    );
    for file in shared {
        assert!(ta.get(file) == tb.get(file), "{file} differs");
    }
}

#[test]
fn a_tampered_remote_blob_is_detected_and_rebuilt_locally() {
    let server = Webdav::start();
    let url = server.url("cache");
    let (sa, a) = checkout(3);
    build_json(&sa, &a, &["--remote-cache", &url, "--remote-cache-write"]);

    // Find the layer of svc-0001 through its entry, and change one of its bytes in
    // the pack it is stored in.
    let data = server.data().join("cache");
    let mut layer_blobs = Vec::new();
    for path in files_under(&data.join("ac")) {
        // The build index is gzip, not an entry.
        let Ok(entry) =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).expect("an entry"))
        else {
            continue;
        };
        if entry["record"]["step"] == "layer:svc_0001" {
            let blobs: BTreeMap<String, serde_json::Value> =
                serde_json::from_value(entry["blobs"].clone()).expect("blobs");
            layer_blobs.extend(blobs.into_values());
        }
    }
    assert_eq!(layer_blobs.len(), 1, "one layer blob");
    let pack = &layer_blobs[0]["pack"];
    let blob = data
        .join("cas")
        .join(pack["sha256"].as_str().expect("a small blob is in a pack"));
    let mut bytes = std::fs::read(&blob).expect("the pack");
    let at = pack["offset"].as_u64().expect("offset")
        + layer_blobs[0]["size"].as_u64().expect("size") / 2;
    let at = usize::try_from(at).expect("offset");
    bytes[at] ^= 0x01;
    std::fs::write(&blob, &bytes).expect("tamper");

    let (sb, b) = checkout(3);
    let msgs = build_json(&sb, &b, &["--remote-cache", &url]);
    let warns = warnings(&msgs);
    assert!(
        warns
            .iter()
            .any(|w| w.contains("does not match") && w.contains("layer:svc_0001")),
        "{warns:?}"
    );
    let statuses = step_statuses(&msgs);
    let layer = statuses
        .iter()
        .find(|s| s.0 == "layer" && s.1 == "svc_0001");
    assert_eq!(layer.map(|s| s.2.as_str()), Some("built"), "{statuses:?}");
    let others_built: Vec<_> = statuses
        .iter()
        .filter(|s| s.2 == "built" && !(s.0 == "layer" && s.1 == "svc_0001"))
        .collect();
    assert!(
        others_built.is_empty(),
        "only the tampered step builds: {others_built:?}"
    );
    assert!(
        tree(&a.join("target")) == tree(&b.join("target")),
        "outputs differ"
    );
    // Nothing of the tampered bytes is in B's store: every blob there is what
    // its name says.
    let store = b.join("target/.scone/blobs");
    for file in files_under(&store) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let content = std::fs::read(&file).expect("a blob");
        assert_eq!(
            blake3::hash(&content).to_hex().as_str(),
            name,
            "a wrong blob entered the store"
        );
    }
}

#[test]
fn a_remote_that_never_answers_costs_one_timeout_and_a_warning() {
    // A real socket that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let (sb, root) = checkout(3);
    // Configured in scone.toml this time, with a 1 s bound per request.
    std::fs::write(
        root.join("scone.toml"),
        format!("[cache]\nremote = \"http://{addr}/cache\"\nremote-write = true\ntimeout = 1\n"),
    )
    .expect("scone.toml");
    let msgs = build_json(&sb, &root, &["-j", "1"]);
    let warns = warnings(&msgs);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains(&addr.to_string()), "{}", warns[0]);
    let steps = step_statuses(&msgs);
    assert_eq!(
        steps.len(),
        3 * 6 + 4,
        "3 services × 6 + base, packages, policy, chart"
    );
    assert!(steps.iter().all(|s| s.2 == "built"), "{steps:?}");
    // After the first timeout the remote is off: only the lookups already in
    // flight (4 per job) reached it, not one per step, and no upload did.
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=4).contains(&n), "{n} connections");
    // --no-remote-cache ignores the configured remote: no warning, no connection.
    std::fs::remove_dir_all(root.join("target")).expect("clean");
    let msgs = build_json(&sb, &root, &["--no-remote-cache"]);
    assert!(warnings(&msgs).is_empty());
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), n);
}

/// A remote that refuses the first connection is off for the rest of the
/// build: with -v its steps are said not asked, not missed (probe 53b).
#[test]
fn steps_after_the_remote_went_off_are_not_asked_not_missed() {
    let (sb, root) = checkout(1);
    let out = sb
        .scone(&root)
        .args(["build", "-f", "mesh.yml", "-v"])
        .args(["--remote-cache", "http://127.0.0.1:1/cache"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("Remote http://127.0.0.1:1/cache"))
        .unwrap_or_else(|| panic!("no Remote line: {stderr}"));
    assert!(line.contains(" not asked"), "{line}");
    assert!(line.contains(" 0 misses"), "{line}");
}

#[test]
fn a_registry_with_basic_auth_uses_the_push_credentials() {
    let registry = Registry::start_with_basic_auth("scone", "s3cret-pw");
    let url = format!("oci://{}/team/cache", registry.addr());
    // Credentials from a Docker config.json, as `docker login` writes it (and as
    // pushes use them): base64("scone:s3cret-pw").
    let docker_config = |sb: &Sandbox| {
        let dir = sb.path().join("docker");
        std::fs::create_dir_all(&dir).expect("docker config dir");
        std::fs::write(
            dir.join("config.json"),
            format!(
                r#"{{"auths":{{"{}":{{"auth":"c2NvbmU6czNjcmV0LXB3"}}}}}}"#,
                registry.addr()
            ),
        )
        .expect("config.json");
        dir
    };
    let run = |sb: &Sandbox, root: &Path, docker: Option<&Path>, extra: &[&str]| {
        let mut cmd = sb.scone(root);
        cmd.args(["build", "-f", "mesh.yml", "--message-format=json"])
            .args(["--remote-cache", &url])
            .args(extra);
        match docker {
            Some(dir) => cmd.env("DOCKER_CONFIG", dir),
            None => cmd.env("DOCKER_CONFIG", sb.path().join("no-docker-config")),
        };
        let out = cmd.output().expect("run scone");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        messages(&out.stdout)
    };
    let (sa, a) = checkout(3);
    let filled = run(
        &sa,
        &a,
        Some(&docker_config(&sa)),
        &["--remote-cache-write"],
    );
    assert!(warnings(&filled).is_empty(), "{:?}", warnings(&filled));

    let (sb, b) = checkout(3);
    let hits = run(&sb, &b, Some(&docker_config(&sb)), &[]);
    assert_eq!(count(&hits, "built"), 0);
    assert_eq!(count(&hits, "remote"), step_statuses(&hits).len() as u64);

    // Without credentials: refused, one warning that names the registry and not
    // the password, and a local build.
    let (sc, c) = checkout(3);
    let refused = run(&sc, &c, None, &[]);
    let warns = warnings(&refused);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains(registry.addr()), "{}", warns[0]);
    assert!(!warns[0].contains("s3cret"), "{}", warns[0]);
    assert_eq!(count(&refused, "remote"), 0);
    assert!(
        tree(&a.join("target")) == tree(&c.join("target")),
        "outputs differ"
    );
}

#[test]
fn big_layers_with_a_remote_cache_do_not_hang() {
    // Layers over 1 MiB are compressed by a parallel loop inside the step, on
    // the scheduler's pool, while more steps than cores are in flight (remote
    // lookups): a build once deadlocked here. A hang guard, not a timing.
    let server = Webdav::start();
    let url = server.url("cache");
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    generate(
        &root,
        MonorepoOptions {
            services: 6,
            files_per_service: 3,
            file_size: 1 << 20,
            ..MonorepoOptions::default()
        },
    );
    let mut child = sb
        .std_command(&root)
        .args(["build", "-f", "mesh.yml", "-q", "--jobs=2"])
        .args(["--remote-cache", &url, "--remote-cache-write"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scone");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the build hung (killed after 300 s)");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success());
    // And a second checkout gets all of it from the remote.
    let sc = Sandbox::new();
    let other = sc.path().join("repo");
    generate(
        &other,
        MonorepoOptions {
            services: 6,
            files_per_service: 3,
            file_size: 1 << 20,
            ..MonorepoOptions::default()
        },
    );
    let msgs = build_json(&sc, &other, &["--remote-cache", &url]);
    assert_eq!(count(&msgs, "built"), 0);
    assert!(tree(&root.join("target")) == tree(&other.join("target")));
}

/// A token written into an `oci://` remote cache URL (registries take
/// theirs from the Docker config) is refused as a usage error, and neither
/// the message nor its JSON form quotes it.
#[test]
fn an_oci_cache_url_with_a_token_is_a_usage_error_that_does_not_print_it() {
    let (sb, root) = checkout(1);
    for how in [
        vec![
            "--remote-cache",
            "oci://bob:T0kenSecret99@127.0.0.1:1/cache",
        ],
        vec![],
    ] {
        let out = sb
            .scone(&root)
            .env(
                "SCONE_REMOTE_CACHE",
                "oci://bob:T0kenSecret99@127.0.0.1:1/cache",
            )
            .args(["build", "-f", "mesh.yml", "--message-format", "json"])
            .args(&how)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{how:?}: {stderr}");
        assert!(stderr.contains("takes no credentials"), "{stderr}");
        assert!(stdout.contains("\"usage\""), "{stdout}");
        assert!(
            !stdout.contains("T0ken") && !stderr.contains("T0ken"),
            "{stdout}{stderr}"
        );
    }
}

/// An `oci://` URL that names no repository — a port out of range, a digest,
/// a tag — is a usage error before the build, naming what is wrong (probe 52
/// F6): the port was taken and failed at the first request, the digest's `@`
/// hid the host as if it were credentials.
#[test]
fn an_oci_cache_url_with_a_bad_port_digest_or_tag_is_a_usage_error() {
    let (sb, root) = checkout(1);
    let digest = format!("sha256:{}", "a".repeat(64));
    for (url, says) in [
        (
            "oci://127.0.0.1:99999/cache".to_string(),
            "the port must be a number from 1 to 65535, not `99999`".to_string(),
        ),
        (
            format!("oci://127.0.0.1:5052/cache@{digest}"),
            format!("`127.0.0.1:5052/cache@{digest}` names one manifest by its digest"),
        ),
        (
            "oci://127.0.0.1:5052/cache:v1".to_string(),
            "`:v1` is a tag".to_string(),
        ),
    ] {
        let out = sb
            .scone(&root)
            .args(["build", "-f", "mesh.yml", "--remote-cache", &url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(&says), "{url}: {stderr}");
        assert!(!stderr.contains("***"), "{url}: {stderr}");
    }
}
