//! `scone verify` through the real binary (issue 24): it passes on a freshly
//! applied hello-world and a 20-service mesh (images pushed to a real
//! registry, sessions in the local CAS), and fails naming the field for an
//! image re-pushed with one changed file, a session changed in CAS by another
//! client, a tampered SIGSTRUCT and a stale `scone.lock`; `verify --image`
//! recomputes the MRENCLAVE of an image pulled back with skopeo.

mod support;

use std::path::{Path, PathBuf};

use scone::cas::Cas as _;
use support::registry::Registry;
use support::{messages, tools, Sandbox};

const SEED_IMAGE: &str = "registry.scontain.com:5050/cicd/python_hello_user:latest";
const SERVICE: &str = "python_hello_user";

/// The example in `sb` under `name`, its image in `registry`.
fn hello(sb: &Sandbox, name: &str, registry: &str) -> PathBuf {
    let dir = sb.hello_world(name);
    for f in ["service.yml", "mesh.yml"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        std::fs::write(
            dir.join(f),
            text.replace(
                SEED_IMAGE,
                &format!("{registry}/cicd/python_hello_user:latest"),
            ),
        )
        .unwrap();
    }
    dir
}

fn run(sb: &Sandbox, dir: &Path, args: &[&str]) -> std::process::Output {
    sb.scone(dir).args(args).output().expect("running scone")
}

fn apply_push(sb: &Sandbox, dir: &Path) {
    let out = run(sb, dir, &["apply", "--push", "-q"]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One check of `verify --message-format json`.
#[derive(Debug)]
struct Check {
    subject: String,
    field: String,
    place: String,
    ok: bool,
    expected: String,
    found: String,
    cause: String,
}

/// `scone verify ARGS --message-format json`: its exit code and checks.
fn verify(sb: &Sandbox, dir: &Path, args: &[&str]) -> (i32, Vec<Check>, String) {
    let out = sb
        .scone(dir)
        .arg("verify")
        .args(args)
        .args(["--message-format", "json"])
        .output()
        .expect("running scone verify");
    let msgs = messages(&out.stdout);
    let checks: Vec<Check> = msgs
        .iter()
        .filter(|m| m["reason"] == "verify-check")
        .map(|m| Check {
            subject: m["subject"].as_str().unwrap().to_string(),
            field: m["field"].as_str().unwrap().to_string(),
            place: m["place"].as_str().unwrap().to_string(),
            ok: m["ok"].as_bool().unwrap(),
            expected: m["expected"].as_str().unwrap().to_string(),
            found: m["found"].as_str().unwrap().to_string(),
            cause: m["cause"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let finished = msgs
        .iter()
        .find(|m| m["reason"] == "verify-finished")
        .unwrap_or_else(|| {
            panic!(
                "no verify-finished message: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        finished["mismatches"],
        checks.iter().filter(|c| !c.ok).count()
    );
    (
        out.status.code().unwrap_or(-1),
        checks,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The mismatches as `(subject, field, place)`.
fn mismatches(checks: &[Check]) -> Vec<(&str, &str, &str)> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| (c.subject.as_str(), c.field.as_str(), c.place.as_str()))
        .collect()
}

fn assert_passes(sb: &Sandbox, dir: &Path, args: &[&str]) -> Vec<Check> {
    let (code, checks, err) = verify(sb, dir, args);
    assert!(
        checks.iter().all(|c| c.ok),
        "{:?}\n{err}",
        mismatches(&checks)
    );
    assert_eq!(code, 0, "{err}");
    checks
}

fn line(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join("target/enclave").join(SERVICE).join(file))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_freshly_applied_hello_world_verifies_and_its_human_table_says_so() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let dir = hello(&sb, "hw", registry.addr());
    apply_push(&sb, &dir);
    let checks = assert_passes(
        &sb,
        &dir,
        &[
            "--registry",
            "--key",
            support::provenance_public_key().to_str().unwrap(),
        ],
    );
    // What was compared, and where.
    let fields: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| (c.field.as_str(), c.place.as_str()))
        .collect();
    for (field, place) in [
        ("session hash", "local CAS"),
        ("session content", "local CAS"),
        ("image digest", "scone.lock"),
        ("MRENCLAVE", "scone.lock"),
        ("MRSIGNER", "scone.lock"),
        ("fspf tag", "scone.lock"),
        ("MRENCLAVE", "local CAS, service python_app"),
        ("fspf tag", "local CAS, service python_app"),
        (
            "image digest",
            &format!("registry {}/cicd/python_hello_user:latest", registry.addr()),
        ),
        (
            "provenance signature",
            "target/provenance/python_hello_user.dsse.json",
        ),
    ] {
        assert!(
            fields.contains(&(field, place)),
            "no {field} check at {place}: {fields:?}"
        );
    }
    let mrenclave = checks
        .iter()
        .find(|c| c.field == "MRENCLAVE" && c.place == "scone.lock")
        .unwrap();
    assert_eq!(mrenclave.expected, line(&dir, "mrenclave"));
    assert!(checks.iter().any(|c| c.field == "SBOM" && c.ok));
    assert!(checks.iter().any(|c| c.field == "provenance" && c.ok));

    // The table a person reads.
    let out = run(&sb, &dir, &["verify", "--registry"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verified:") && text.contains("all match"),
        "{text}"
    );
    assert!(
        text.contains("SUBJECT") && text.contains("MRENCLAVE"),
        "{text}"
    );
}

#[test]
fn a_twenty_service_mesh_verifies_after_apply() {
    use support::monorepo::{generate, MonorepoOptions};
    let registry = Registry::start();
    let sb = Sandbox::new();
    let root = sb.path().join("repo");
    let tree = generate(
        &root,
        MonorepoOptions {
            services: 20,
            files_per_service: 1,
            ..MonorepoOptions::default()
        },
    );
    // The generator's images are on 127.0.0.1:5000: move them to this registry.
    let mut manifests = tree.meshfiles.clone();
    manifests.extend(tree.services.iter().map(|s| s.2.join("service.yml")));
    for path in manifests {
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("127.0.0.1:5000", registry.addr())).unwrap();
    }
    apply_push(&sb, &root);
    let checks = assert_passes(&sb, &root, &["--registry"]);
    let subjects: std::collections::BTreeSet<&str> =
        checks.iter().map(|c| c.subject.as_str()).collect();
    // 20 services and the mesh's session.
    assert_eq!(subjects.len(), 21, "{subjects:?}");
    let in_registry = checks
        .iter()
        .filter(|c| c.field == "image digest" && c.place.starts_with("registry "))
        .count();
    assert_eq!(in_registry, 20);
}

#[test]
fn an_image_re_pushed_with_one_changed_file_is_named_with_the_file() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let dir = hello(&sb, "hw", registry.addr());
    apply_push(&sb, &dir);
    // Someone builds the service with one file changed and pushes it under the
    // same tag (not through apply: CAS is left as it is).
    let other = hello(&sb, "other", registry.addr());
    std::fs::write(
        other.join("print_env.py"),
        std::fs::read_to_string(other.join("print_env.py")).unwrap() + "print('extra')\n",
    )
    .unwrap();
    let out = run(&sb, &other, &["build", "-q"]);
    assert!(out.status.success());
    let out = tools::skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}",
            other.join("target/images").join(SERVICE).display()
        ))
        .arg(format!(
            "docker://{}/cicd/python_hello_user:latest",
            registry.addr()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, checks, _) = verify(&sb, &dir, &["--registry"]);
    assert_eq!(code, 1);
    let place = format!("registry {}/cicd/python_hello_user:latest", registry.addr());
    assert_eq!(
        mismatches(&checks),
        [(SERVICE, "image digest", place.as_str())]
    );
    let bad = checks.iter().find(|c| !c.ok).unwrap();
    assert_eq!(
        bad.expected,
        std::fs::read_to_string(dir.join("scone.lock"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("digest = \"sha256:"))
            .map(|d| format!("sha256:{}", d.trim_end_matches('"')))
            .unwrap()
    );
    assert!(
        bad.cause.contains("re-pushed") && bad.cause.contains("/python/print_env.py changed"),
        "{}",
        bad.cause
    );
}

#[test]
fn a_session_changed_in_cas_by_another_client_is_named() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = run(&sb, &dir, &["apply", "-q"]);
    assert!(out.status.success());
    assert_passes(&sb, &dir, &[]);
    // Another client of the same CAS updates the session (a new value for the
    // mesh's API_USER), naming the current hash as it must.
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let current = cas.session("myPythonApp").unwrap().expect("the session");
    let changed = current
        .yaml
        .replace("\"API_USER\": \"myself\"", "\"API_USER\": \"mallory\"");
    assert_ne!(changed, current.yaml);
    let new_hash = cas.upload_as(&changed, Some(&current.hash), None).unwrap();

    let (code, checks, _) = verify(&sb, &dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        mismatches(&checks),
        [
            ("myPythonApp", "session hash", "local CAS"),
            ("myPythonApp", "session content", "local CAS"),
        ]
    );
    let hash = checks.iter().find(|c| c.field == "session hash").unwrap();
    assert_eq!(hash.expected, current.hash, "scone.lock's hash");
    assert_eq!(hash.found, new_hash);
    assert!(
        hash.cause.contains("changed in CAS by someone else"),
        "{}",
        hash.cause
    );
    let content = checks
        .iter()
        .find(|c| c.field == "session content")
        .unwrap();
    assert!(
        content.cause.contains("mallory"),
        "the changed line: {}",
        content.cause
    );
    // The services' MRENCLAVE and fspf tag in it are still this build's.
    assert!(checks
        .iter()
        .filter(|c| c.place.starts_with("local CAS, service"))
        .all(|c| c.ok));
}

#[test]
fn a_tampered_sigstruct_is_named_and_put_back() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = run(&sb, &dir, &["apply", "-q"]);
    assert!(out.status.success());
    let path = dir
        .join("target/enclave")
        .join(SERVICE)
        .join("sigstruct.bin");
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[1000] ^= 0x01; // in the signature
    std::fs::write(&path, &bad).unwrap();

    let (code, checks, _) = verify(&sb, &dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        mismatches(&checks),
        [(
            SERVICE,
            "SIGSTRUCT",
            "target/enclave/python_hello_user/sigstruct.bin"
        )]
    );
    let check = checks.iter().find(|c| !c.ok).unwrap();
    assert!(
        check.cause.contains("RSA signature does not verify"),
        "{}",
        check.cause
    );
    // The build put the one it made back: the next verify passes.
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_passes(&sb, &dir, &[]);

    // `--image` with the tampered SIGSTRUCT: its signature is named.
    let tampered = sb.path().join("tampered.sigstruct");
    std::fs::write(&tampered, &bad).unwrap();
    let layout = format!("oci:{}", dir.join("target/images").join(SERVICE).display());
    let (code, checks, _) = verify(
        &sb,
        &dir,
        &[
            "--image",
            &layout,
            "--sigstruct",
            tampered.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let fields: Vec<&str> = mismatches(&checks).iter().map(|m| m.1).collect();
    assert_eq!(fields, ["SIGSTRUCT signature"]);
}

#[test]
fn a_stale_scone_lock_is_named_as_stale() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = run(&sb, &dir, &["apply", "-q"]);
    assert!(out.status.success());
    let old_lock = std::fs::read(dir.join("scone.lock")).unwrap();
    // A new version applied, but its scone.lock not kept (not committed).
    std::fs::write(
        dir.join("print_env.py"),
        std::fs::read_to_string(dir.join("print_env.py")).unwrap() + "print('v2')\n",
    )
    .unwrap();
    let out = run(&sb, &dir, &["apply", "-q"]);
    assert!(out.status.success());
    std::fs::write(dir.join("scone.lock"), &old_lock).unwrap();

    let (code, checks, _) = verify(&sb, &dir, &[]);
    assert_eq!(code, 1);
    // (The enclave is the python interpreter: a changed script changes the
    // image and the fspf tag, not MRENCLAVE.)
    assert_eq!(
        mismatches(&checks),
        [
            ("myPythonApp", "session hash", "local CAS"),
            (SERVICE, "image digest", "scone.lock"),
            (SERVICE, "fspf tag", "scone.lock"),
        ]
    );
    for c in checks.iter().filter(|c| !c.ok) {
        assert!(
            c.cause.contains("scone.lock is stale"),
            "{}: {}",
            c.field,
            c.cause
        );
    }
    // What CAS holds is this build's (someone applied it): those checks pass.
    assert!(checks
        .iter()
        .filter(|c| c.field == "session content" || c.place.starts_with("local CAS, service"))
        .all(|c| c.ok));
    // verify leaves scone.lock as it found it.
    assert_eq!(std::fs::read(dir.join("scone.lock")).unwrap(), old_lock);
}

#[test]
fn verify_image_recomputes_the_mrenclave_of_an_image_pulled_back_with_skopeo() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let dir = hello(&sb, "hw", registry.addr());
    apply_push(&sb, &dir);
    let reference = format!("{}/cicd/python_hello_user:latest", registry.addr());
    // Pulled back by a tool that is not scone, into an OCI layout elsewhere.
    let pulled = sb.path().join("pulled");
    let out = tools::skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:latest", pulled.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No sources: a folder with nothing in it.
    let empty = sb.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sigstruct = dir
        .join("target/enclave")
        .join(SERVICE)
        .join("sigstruct.bin");
    let (code, checks, err) = verify(
        &sb,
        &empty,
        &[
            "--image",
            &format!("oci:{}:latest", pulled.display()),
            "--sigstruct",
            sigstruct.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{:?}\n{err}", mismatches(&checks));
    let recomputed = checks
        .iter()
        .find(|c| c.field == "MRENCLAVE" && c.place.starts_with("recomputed"))
        .unwrap();
    assert_eq!(recomputed.found, line(&dir, "mrenclave"), "the sign step's");
    assert!(
        recomputed.place.contains("/usr/bin/python3.11"),
        "{}",
        recomputed.place
    );
    assert!(checks
        .iter()
        .any(|c| c.field == "MRENCLAVE" && c.place.ends_with("ENCLAVEHASH") && c.ok));

    // From the registry itself: the provenance attached to the image carries
    // the SIGSTRUCT and the fspf tag; with the public key its signature too.
    let (code, checks, err) = verify(
        &sb,
        &empty,
        &[
            "--image",
            &reference,
            "--key",
            support::provenance_public_key().to_str().unwrap(),
            "--session",
            "cas:myPythonApp",
        ],
    );
    assert_eq!(code, 0, "{:?}\n{err}", mismatches(&checks));
    let fields: Vec<&str> = checks.iter().map(|c| c.field.as_str()).collect();
    for field in [
        "provenance signature",
        "provenance subject",
        "SIGSTRUCT signature",
        "MRSIGNER",
        "fspf tag",
    ] {
        assert!(fields.contains(&field), "{field}: {fields:?}");
    }
    let session = checks
        .iter()
        .find(|c| c.field == "MRENCLAVE" && c.place == "session cas:myPythonApp")
        .unwrap();
    assert!(session.found.contains(&line(&dir, "mrenclave")));
    let fspf = checks
        .iter()
        .find(|c| c.field == "fspf tag" && c.place.starts_with("session"))
        .unwrap();
    assert_eq!(fspf.expected, line(&dir, "fspf_tag"), "recomputed = built");
}

/// `-p` limits which services are checked, not where: the session of the
/// mesh that deploys the service is still read. A session in CAS that admits
/// a foreign enclave besides this build's (its record consistent) fails
/// `verify -p` by the service's name and by its mesh service's name, naming
/// the enclave; what `-p` cannot check is named in the summary.
#[test]
fn verify_p_still_checks_the_service_s_entry_in_cas() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = run(&sb, &dir, &["apply", "-q"]);
    assert!(out.status.success());
    let checks = assert_passes(&sb, &dir, &["-p", SERVICE]);
    for (field, place) in [
        ("session hash", "local CAS"),
        ("MRENCLAVE", "local CAS, service python_app"),
        ("fspf tag", "local CAS, service python_app"),
    ] {
        assert!(
            checks.iter().any(|c| c.field == field && c.place == place),
            "no {field} check at {place}: {checks:?}"
        );
    }
    let out = run(&sb, &dir, &["verify", "-p", SERVICE]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("all match; not checked:")
            && text.contains("the content and fixed values of session myPythonApp"),
        "{text}"
    );

    // Someone adds an enclave to the service's entry in CAS.
    let foreign = "e".repeat(64);
    let cas = scone::cas::local::LocalCas::open(&sb.path().join("cas")).unwrap();
    let current = cas.session("myPythonApp").unwrap().expect("the session");
    let changed = current.yaml.replacen(
        "    mrenclaves:\n",
        &format!("    mrenclaves:\n      - \"{foreign}\"\n"),
        1,
    );
    assert_ne!(changed, current.yaml);
    cas.upload_as(&changed, Some(&current.hash), None).unwrap();

    for selected in [SERVICE, "python_app"] {
        let (code, checks, err) = verify(&sb, &dir, &["-p", selected]);
        assert_eq!(code, 1, "-p {selected}: {:?}\n{err}", mismatches(&checks));
        let found = mismatches(&checks);
        for expected in [
            ("myPythonApp", "session hash", "local CAS"),
            (SERVICE, "MRENCLAVE", "local CAS, service python_app"),
        ] {
            assert!(found.contains(&expected), "-p {selected}: {found:?}");
        }
        let row = checks
            .iter()
            .find(|c| c.field == "MRENCLAVE" && !c.ok)
            .unwrap();
        assert!(
            row.cause.contains("admits other enclaves") && row.cause.contains(&foreign),
            "{}",
            row.cause
        );
    }
    let out = run(&sb, &dir, &["verify", "-p", SERVICE]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("all match"), "{text}");
}
