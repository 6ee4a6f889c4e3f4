//! OCI images for real: layouts that skopeo and umoci accept, bit-for-bit reproducible
//! builds, push/pull against a real registry (with and without basic auth), load and
//! run in a real dockerd, and clear errors for bad bases.
//!
//! Needs: skopeo, umoci, docker-registry, apache2-utils (htpasswd), docker.io (dockerd,
//! docker) — `scripts/ci-deps.sh` — and root for `umoci unpack` and dockerd.

#[path = "oci/bench.rs"]
mod bench;
#[path = "oci/fixture.rs"]
mod fixture;
#[path = "oci/layouts.rs"]
mod layouts;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use fixture::{app_layer, build_layout, ctx, python_rootfs, run, write_sources, HELLO, PRINT_ENV};
use scone::oci::auth::{Credentials, DockerAuth};
use scone::oci::base::{resolve, BaseContext, BaseSpec};
use scone::oci::image::{build, ImageInput};
use scone::oci::layout::{read_layout, write_layout};
use scone::oci::registry::{PushEvent, Reference, RegistryClient, RegistryOptions};
use scone::oci::tar::{entries_from_dir, write_layer, Compression, LayerEntry, ModePolicy};
use scone::oci::{docker, rootfs, OciError};
use support::dockerd::Dockerd;
use support::registry::Registry;

#[test]
fn skopeo_and_umoci_accept_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("target/images/python_hello_user");
    let scratch = resolve(&BaseSpec::Scratch, &ctx(&tmp.path().join("cache"))).unwrap();
    let digest = build_layout(&src, tmp.path(), &layout, Some(&scratch), "latest");

    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display())));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], digest.as_str());
    assert_eq!(json["Layers"].as_array().unwrap().len(), 1);
    let config = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci:{}:latest", layout.display())));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/python");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["python3", "print_env.py"])
    );
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let root = bundle.join("rootfs/python");
    assert_eq!(
        fs::read_to_string(root.join("print_env.py")).unwrap(),
        PRINT_ENV
    );
    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("print_env.py"), 0o644);
    assert_eq!(mode("run.sh"), 0o755);
    assert_eq!(mode("lib/data"), 0o755);
    assert_eq!(
        fs::read_to_string(root.join("lib/data/config.txt")).unwrap(),
        "answer=42\n"
    );
    // Nothing but the layout is left beside it (no temp folders).
    let names: Vec<_> = fs::read_dir(layout.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("python_hello_user")]);
}

#[test]
fn builds_are_bit_for_bit_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_sources(&a.path().join("some/where/src"), 0o022);
    write_sources(&b.path().join("src"), 0o077);
    // Different clocks: sources touched at different times.
    for (dir, secs) in [
        (a.path().join("some/where/src"), 1_000_000),
        (b.path().join("src"), 2_000_000_000),
    ] {
        for f in ["print_env.py", "run.sh", "lib/data/config.txt"] {
            filetime::set_file_mtime(dir.join(f), filetime::FileTime::from_unix_time(secs, 0))
                .unwrap();
        }
    }
    let da = build_layout(
        &a.path().join("some/where/src"),
        a.path(),
        &a.path().join("img"),
        None,
        "v1",
    );
    let db = build_layout(
        &b.path().join("src"),
        b.path(),
        &b.path().join("img"),
        None,
        "v1",
    );
    assert_eq!(da, db);
    for file in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(a.path().join("img").join(file)).unwrap(),
            fs::read(b.path().join("img").join(file)).unwrap()
        );
    }
    // zstd is deterministic too, and differs from gzip.
    let za = app_layer(
        &a.path().join("some/where/src"),
        &a.path().join("z"),
        Compression::Zstd,
    );
    let zb = app_layer(
        &b.path().join("src"),
        &b.path().join("z"),
        Compression::Zstd,
    );
    assert_eq!(za, zb);
    let ga = app_layer(
        &a.path().join("some/where/src"),
        &a.path().join("g"),
        Compression::Gzip,
    );
    assert_eq!(za.diff_id, ga.diff_id);
    assert_ne!(za.digest, ga.digest);
    // The order entries are listed in does not matter.
    let src = a.path().join("some/where/src");
    let mut entries = entries_from_dir(&src, "python", ModePolicy::Normalize).unwrap();
    entries.reverse();
    assert_eq!(
        write_layer(&entries, 0, Compression::Gzip, &a.path().join("r")).unwrap(),
        ga
    );
    // SOURCE_DATE_EPOCH changes the bytes (mtime) but not across rebuilds.
    let t1 = write_layer(
        &entries,
        1_700_000_000,
        Compression::Gzip,
        &a.path().join("t"),
    )
    .unwrap();
    let t2 = write_layer(
        &entries,
        1_700_000_000,
        Compression::Gzip,
        &a.path().join("t2"),
    )
    .unwrap();
    assert_eq!(t1, t2);
    assert_ne!(t1.diff_id, ga.diff_id);
}

#[test]
fn push_then_copy_back_then_push_again_uploads_nothing() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("img");
    let digest = build_layout(&src, tmp.path(), &layout, None, "latest");
    let reference = Reference::parse(&format!(
        "{}/cicd/python_hello_user:latest",
        registry.addr()
    ))
    .unwrap();
    let client = RegistryClient::new(RegistryOptions {
        auth: Some(DockerAuth::default()),
        ..Default::default()
    })
    .unwrap();

    let events = std::sync::Mutex::new(Vec::new());
    let report = client
        .push_layout(&layout, Some("latest"), &reference, &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap();
    assert_eq!(report.manifest_digest, digest);
    assert_eq!(report.uploaded.len(), 2, "layer + config");
    assert!(report.skipped.is_empty());
    let events = events.into_inner().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, PushEvent::BlobUploaded { .. }))
            .count(),
        2
    );
    assert!(
        matches!(events.last(), Some(PushEvent::ManifestPushed { digest: d, .. }) if *d == digest)
    );

    let copied = tmp.path().join("copied");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:latest", copied.display())));
    assert_eq!(
        read_layout(&copied, Some("latest"))
            .unwrap()
            .manifest_digest,
        digest
    );

    let again = client
        .push_layout(&layout, None, &reference, &|_| {})
        .unwrap();
    assert!(
        again.uploaded.is_empty(),
        "second push uploaded {:?}",
        again.uploaded
    );
    assert_eq!(again.skipped.len(), 2);

    // Pull it back as a base image through the cache, then offline from the cache.
    let cache = tmp.path().join("cache");
    let spec = BaseSpec::parse(&reference.to_string()).unwrap();
    let base = resolve(&spec, &ctx(&cache)).unwrap();
    assert_eq!(base.digest, digest);
    assert_eq!(base.layers.len(), 1);
    assert!(base.layers[0].path.starts_with(&cache));
    let offline = BaseContext {
        offline: true,
        ..ctx(&cache)
    };
    assert_eq!(resolve(&spec, &offline).unwrap().digest, digest);
    let pinned = BaseContext {
        pinned: Some(digest.clone()),
        offline: true,
        ..ctx(&cache)
    };
    assert_eq!(resolve(&spec, &pinned).unwrap().digest, digest);
    // A fresh cache offline says which base is missing.
    let empty = BaseContext {
        offline: true,
        ..ctx(&tmp.path().join("empty-cache"))
    };
    let err = resolve(&spec, &empty).unwrap_err();
    assert!(matches!(err, OciError::Offline { .. }), "{err}");
    assert!(err.to_string().contains("cicd/python_hello_user"), "{err}");
}

#[test]
fn push_with_basic_auth_and_refused_credentials() {
    let registry = Registry::start_with_basic_auth("scone", "s3cret-pw");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("img");
    let digest = build_layout(&src, tmp.path(), &layout, None, "latest");
    let reference = Reference::parse(&format!("{}/private/app:1.0", registry.addr())).unwrap();

    // Credentials come from a Docker config.json, as `docker login` writes it.
    let config_dir = tmp.path().join("docker");
    fs::create_dir_all(&config_dir).unwrap();
    fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"c2NvbmU6czNjcmV0LXB3"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let auth = DockerAuth::load(Some(&config_dir.join("config.json"))).unwrap();
    let client = RegistryClient::new(RegistryOptions {
        auth: Some(auth),
        ..Default::default()
    })
    .unwrap();
    let report = client
        .push_layout(&layout, Some("latest"), &reference, &|_| {})
        .unwrap();
    assert_eq!(report.manifest_digest, digest);
    let inspect = run(Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            "scone:s3cret-pw",
        ])
        .arg(format!("docker://{reference}")));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], digest.as_str());

    // Wrong password: one clear error, and the secret is not in it.
    let mut wrong = DockerAuth::default();
    wrong.insert(
        registry.addr(),
        Credentials {
            username: "scone".into(),
            password: "wrong-pw".into(),
        },
    );
    let client = RegistryClient::new(RegistryOptions {
        auth: Some(wrong),
        ..Default::default()
    })
    .unwrap();
    let err = client
        .push_layout(&layout, None, &reference, &|_| {})
        .unwrap_err();
    assert!(
        matches!(err, OciError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-pw"));
    // No credentials at all.
    let anonymous = RegistryClient::new(RegistryOptions {
        auth: Some(DockerAuth::default()),
        ..Default::default()
    })
    .unwrap();
    let err = anonymous.pull_manifest(&reference).unwrap_err();
    assert!(matches!(err, OciError::AuthRefused { .. }), "{err}");
}

#[test]
fn python_base_image_loads_and_runs_in_dockerd() {
    let rootfs_dir = python_rootfs();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let base = resolve(&BaseSpec::Dir(rootfs_dir.clone()), &ctx(&cache)).unwrap();
    assert_eq!(base.layers.len(), 1);
    // Cached by content: resolving again gives the same digest without rebuilding.
    assert_eq!(
        resolve(&BaseSpec::Dir(rootfs_dir), &ctx(&cache))
            .unwrap()
            .digest,
        base.digest
    );
    // The sign step finds the entry binary through symlinks.
    assert_eq!(
        rootfs::which(
            &base.layer_paths(),
            "python3",
            "/usr/local/bin:/usr/bin:/bin"
        )
        .unwrap()
        .as_deref(),
        Some("/usr/bin/python3.11")
    );
    let elf = rootfs::read_file(&base.layer_paths(), "usr/bin/python3")
        .unwrap()
        .unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");

    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("target/images/python_hello_user");
    let tag = "registry.scontain.com:5050/cicd/python_hello_user:latest";
    build_layout(&src, tmp.path(), &layout, Some(&base), tag);

    let dockerd = Dockerd::start();
    docker::load(&layout, tag, Some(&dockerd.host())).unwrap();
    let out = run(dockerd.docker().args([
        "run",
        "--rm",
        "--network=none",
        "-e",
        "API_USER=myself",
        "-e",
        "API_PASSWORD=not-shown",
        tag,
    ]));
    assert_eq!(out.trim(), HELLO);

    // docker-daemon: bases come back out of the engine with the same layers.
    let exported = resolve(
        &BaseSpec::parse(&format!("docker-daemon:{tag}")).unwrap(),
        &BaseContext {
            docker_host: Some(dockerd.host()),
            ..ctx(&tmp.path().join("cache2"))
        },
    )
    .unwrap();
    assert_eq!(exported.layers.len(), 2);
    assert_eq!(exported.layers[0].diff_id, base.layers[0].diff_id);
    let script = rootfs::read_file(&exported.layer_paths(), "python/print_env.py")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(script).unwrap(), PRINT_ENV);
}

#[test]
fn bad_bases_give_one_clear_error_and_no_partial_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let images = tmp.path().join("target/images");

    let err = resolve(
        &BaseSpec::parse("dir:/nonexistent/rootfs").unwrap(),
        &ctx(&cache),
    )
    .unwrap_err();
    assert!(matches!(err, OciError::BaseNotFound { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/rootfs"), "{err}");

    let err = resolve(
        &BaseSpec::parse(&format!("oci:{}:v1", tmp.path().join("nope").display())).unwrap(),
        &ctx(&cache),
    )
    .unwrap_err();
    assert!(matches!(err, OciError::BaseNotFound { .. }), "{err}");

    // A base layout whose layer blob does not match its digest.
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let base_layout = tmp.path().join("base");
    build_layout(&src, tmp.path(), &base_layout, None, "v1");
    let image = read_layout(&base_layout, Some("v1")).unwrap();
    let blob = &image.layers[0].path;
    let mut bytes = fs::read(blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::remove_file(blob).unwrap(); // hard-linked from the build's blob store
    fs::write(blob, bytes).unwrap();
    let spec = BaseSpec::parse(&format!("oci:{}:v1", base_layout.display())).unwrap();
    let err = resolve(&spec, &ctx(&cache)).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&image.layers[0].digest), "{err}");
    // Wrong tag names the tags that exist.
    let err = resolve(
        &BaseSpec::parse(&format!("oci:{}:v2", base_layout.display())).unwrap(),
        &ctx(&cache),
    )
    .unwrap_err();
    assert!(err.to_string().contains("[v1]"), "{err}");

    // An engine that is not there: one clear error naming it.
    let err = docker::load(
        &base_layout,
        "app:v1",
        Some("unix:///nonexistent/docker.sock"),
    )
    .unwrap_err();
    assert!(matches!(err, OciError::Docker { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/docker.sock"),
        "{err}"
    );

    // A layout whose blobs are missing is refused before anything lands in target/images.
    let layer = LayerEntry::file(
        "python/print_env.py",
        src.join("print_env.py"),
        PRINT_ENV.len() as u64,
        false,
    );
    let blob = write_layer(&[layer], 0, Compression::Gzip, &tmp.path().join("blobs")).unwrap();
    let input = ImageInput {
        layers: vec![blob],
        ..ImageInput::default()
    };
    let built = build(&input, 0).unwrap();
    let err = write_layout(
        &images.join("svc"),
        &[],
        &built.manifest,
        &built.config,
        "latest",
    )
    .unwrap_err();
    assert!(err.to_string().contains("no blob given"), "{err}");
    assert!(!images.join("svc").exists());
    assert!(fs::read_dir(&images)
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[test]
fn push_and_pull_with_bearer_tokens() {
    let registry = Registry::start_with_token_auth("scone", "t0ken-pw");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("img");
    let digest = build_layout(&src, tmp.path(), &layout, None, "latest");
    let reference = Reference::parse(&format!("{}/team/app:2.0", registry.addr())).unwrap();

    let mut auth = DockerAuth::default();
    auth.insert(
        registry.addr(),
        Credentials {
            username: "scone".into(),
            password: "t0ken-pw".into(),
        },
    );
    let client = RegistryClient::new(RegistryOptions {
        auth: Some(auth),
        ..Default::default()
    })
    .unwrap();
    let report = client
        .push_layout(&layout, None, &reference, &|_| {})
        .unwrap();
    assert_eq!(report.manifest_digest, digest);
    assert_eq!(report.uploaded.len(), 2);
    // One token for the push scope, reused for every blob and the manifest.
    assert_eq!(registry.tokens_issued(), 1);
    let pulled = client.pull_manifest(&reference).unwrap();
    assert_eq!(pulled.digest, digest);
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", "scone:t0ken-pw"])
        .arg(format!("docker://{reference}")));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], digest.as_str());

    let mut wrong = DockerAuth::default();
    wrong.insert(
        registry.addr(),
        Credentials {
            username: "scone".into(),
            password: "nope".into(),
        },
    );
    let client = RegistryClient::new(RegistryOptions {
        auth: Some(wrong),
        ..Default::default()
    })
    .unwrap();
    let err = client.pull_manifest(&reference).unwrap_err();
    assert!(
        matches!(err, OciError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("nope"));
}
