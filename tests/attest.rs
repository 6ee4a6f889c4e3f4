//! The SBOM and the signed provenance of every image, checked by their own
//! reference tools (issue 24): the SPDX 2.3 JSON schema with Python's
//! `jsonschema`, the DSSE envelope and in-toto statement with in-toto's
//! implementation and the public key; both reproducible across folders; both
//! attached to each image as OCI referrers by `apply --push` to a real
//! registry, listed back with skopeo (the referrers tag schema: distribution
//! 2.8 has no referrers API), and to a registry with the referrers API
//! (`support::referrers_registry`, in the test process), where no tag is
//! written and `scone verify` reads them through the API.

mod support;

use std::path::{Path, PathBuf};

use scone::oci::digest::sha256_digest;
use support::referrers_registry::ReferrersRegistry;
use support::registry::Registry;
use support::{messages, tools, Sandbox};

const SERVICE: &str = "python_hello_user";

fn sbom_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("target/sbom").join(format!("{name}.spdx.json"))
}

fn envelope_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("target/provenance")
        .join(format!("{name}.dsse.json"))
}

fn statement_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("target/provenance")
        .join(format!("{name}.intoto.json"))
}

fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("JSON")
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// `check.py provenance ENVELOPE KEY`: in-toto's verdict, and the statement
/// it printed when it verified.
fn in_toto_verify(envelope: &Path, public_key: &Path) -> Result<serde_json::Value, String> {
    let out = tools::venv_python()
        .arg(support::project_root().join("tests/support/attest/check.py"))
        .arg("provenance")
        .arg(envelope)
        .arg(public_key)
        .output()
        .expect("running the in-toto check");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("the statement"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn built_image_digest(dir: &Path, name: &str) -> String {
    let index = read_json(&dir.join("target/images").join(name).join("index.json"));
    index["manifests"][0]["digest"]
        .as_str()
        .expect("a digest")
        .to_string()
}

fn build(sb: &Sandbox, dir: &Path) -> Vec<serde_json::Value> {
    sb.build_json(dir, &[])
}

#[test]
fn the_sbom_validates_against_the_spdx_schema_and_lists_files_base_and_packages() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let msgs = build(&sb, &dir);
    let sbom = sbom_path(&dir, SERVICE);
    let out = tools::venv_python()
        .arg(support::project_root().join("tests/support/attest/check.py"))
        .arg("sbom")
        .arg(support::fixtures().join("spdx/spdx-schema-2.3.json"))
        .arg(&sbom)
        .output()
        .expect("running jsonschema");
    assert!(
        out.status.success(),
        "the SBOM does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let doc = read_json(&sbom);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    // The service's own files with their SHA-256.
    let program = std::fs::read(dir.join("print_env.py")).unwrap();
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileName"] == "./python/print_env.py")
        .unwrap_or_else(|| panic!("print_env.py is not listed: {}", doc["files"]));
    let sha256 = file["checksums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["algorithm"] == "SHA256")
        .unwrap();
    assert_eq!(sha256["checksumValue"], hex(&sha256_digest(&program)));
    // The image by its digest, the base by its digest.
    let image = msgs.iter().find(|m| m["step"] == "image").unwrap();
    let packages = doc["packages"].as_array().unwrap();
    let by_id = |id: &str| packages.iter().find(|p| p["SPDXID"] == id).unwrap();
    assert_eq!(
        by_id("SPDXRef-Image")["versionInfo"],
        image["outputs"]["manifest_digest"]
    );
    assert_eq!(
        by_id("SPDXRef-BaseImage")["versionInfo"],
        image["outputs"]["base_digest"]
    );
    // The Debian packages the python base was made from, with the versions
    // of the .debs scripts/python-rootfs.sh unpacked.
    let status = std::fs::read_to_string(support::python_rootfs().join("var/lib/dpkg/status"))
        .expect("the rootfs records its packages");
    let version_of = |name: &str| {
        status
            .split("\n\n")
            .find(|p| p.starts_with(&format!("Package: {name}\n")))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")))
            .unwrap_or_else(|| panic!("{name} is not in the rootfs status"))
            .to_string()
    };
    for name in ["libc6", "python3.11-minimal", "libpython3.11-minimal"] {
        let package = packages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the SBOM"));
        assert_eq!(package["versionInfo"], version_of(name).as_str(), "{name}");
        let purl = package["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{name}@")),
            "{purl}"
        );
    }
}

#[test]
fn the_provenance_verifies_with_in_toto_and_not_after_one_changed_byte() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    build(&sb, &dir);
    let envelope = envelope_path(&dir, SERVICE);
    let statement = in_toto_verify(&envelope, &support::provenance_public_key())
        .unwrap_or_else(|e| panic!("in-toto refuses the provenance: {e}"));
    // The statement is the one published beside it, about this image.
    assert_eq!(statement, read_json(&statement_path(&dir, SERVICE)));
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        hex(&built_image_digest(&dir, SERVICE))
    );
    let byproducts = statement["predicate"]["runDetails"]["byproducts"]
        .as_array()
        .unwrap();
    let byproduct = |name: &str| {
        byproducts
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("no {name} byproduct"))
    };
    let enclave = dir.join("target/enclave").join(SERVICE);
    let line = |f: &str| {
        std::fs::read_to_string(enclave.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        byproduct("enclave.sgxs")["digest"]["sha256"],
        line("mrenclave")
    );
    assert_eq!(byproduct("mrsigner")["digest"]["sha256"], line("mrsigner"));
    assert_eq!(byproduct("fspf_tag")["digest"]["sha256"], line("fspf_tag"));
    let sigstruct = std::fs::read(enclave.join("sigstruct.bin")).unwrap();
    assert_eq!(
        byproduct("sigstruct.bin")["digest"]["sha256"],
        hex(&sha256_digest(&sigstruct))
    );
    let sbom = std::fs::read(sbom_path(&dir, SERVICE)).unwrap();
    assert_eq!(
        byproduct("sbom.spdx.json")["digest"]["sha256"],
        hex(&sha256_digest(&sbom))
    );
    // No path of this machine in it.
    let text = std::fs::read_to_string(statement_path(&dir, SERVICE)).unwrap();
    assert!(!text.contains(&sb.path().display().to_string()), "{text}");

    // One byte of the statement changed (a digit of MRENCLAVE): refused.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut doc = read_json(&envelope);
    let mut payload = b64.decode(doc["payload"].as_str().unwrap()).unwrap();
    let at = String::from_utf8_lossy(&payload)
        .find(&line("mrenclave"))
        .unwrap();
    payload[at] = if payload[at] == b'0' { b'1' } else { b'0' };
    doc["payload"] = b64.encode(&payload).into();
    let tampered = sb.path().join("tampered.dsse.json");
    std::fs::write(&tampered, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = in_toto_verify(&tampered, &support::provenance_public_key())
        .expect_err("a changed statement must not verify");
    assert!(err.contains("signature"), "{err}");
    // One byte of the file itself changed (in the signature): refused.
    let mut bytes = std::fs::read(&envelope).unwrap();
    let sig_at = String::from_utf8_lossy(&bytes).find("\"sig\": \"").unwrap() + 10;
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&tampered, &bytes).unwrap();
    assert!(in_toto_verify(&tampered, &support::provenance_public_key()).is_err());
    // Another key: refused.
    let other = sb.path().join("other.pub.pem");
    let out = tools::venv_python()
        .args(["-c", OTHER_KEY])
        .arg(sb.path().join("other.pem"))
        .arg(&other)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(in_toto_verify(&envelope, &other).is_err());
}

/// Python: writes a new ECDSA P-256 key (PKCS#8 PEM) to argv[1] and its public
/// key to argv[2].
const OTHER_KEY: &str = "
import sys
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization as s
k = ec.generate_private_key(ec.SECP256R1())
open(sys.argv[1], 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
open(sys.argv[2], 'wb').write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
";

#[test]
fn two_checkouts_make_the_same_sbom_and_provenance_bytes() {
    // Two sandboxes (own caches, own CAS) and two folders of other names.
    let (sa, sb) = (Sandbox::new(), Sandbox::new());
    let a = sa.hello_world("first-checkout");
    let b = sb.hello_world("elsewhere/second");
    build(&sa, &a);
    build(&sb, &b);
    for path in [sbom_path, statement_path, envelope_path] {
        let (x, y) = (path(&a, SERVICE), path(&b, SERVICE));
        assert_eq!(
            std::fs::read(&x).unwrap(),
            std::fs::read(&y).unwrap(),
            "{} differs",
            x.display()
        );
    }

    // ECDSA P-256 (`[provenance] key`): the same statement, signatures that
    // differ (ECDSA is randomized) and both verify.
    for (sandbox, dir) in [(&sa, &a), (&sb, &b)] {
        let out = tools::venv_python()
            .args(["-c", OTHER_KEY])
            .arg(dir.join("ecdsa.pem"))
            .arg(dir.join("ecdsa.pub.pem"))
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(
            dir.join("scone.toml"),
            "[provenance]\nkey = \"ecdsa.pem\"\n",
        )
        .unwrap();
        let msgs = build(sandbox, dir);
        let built: Vec<_> = support::step_statuses(&msgs)
            .into_iter()
            .filter(|s| s.2 == "built")
            .map(|s| s.0)
            .collect();
        assert_eq!(built, ["provenance"], "only the provenance is signed again");
        in_toto_verify(&envelope_path(dir, SERVICE), &dir.join("ecdsa.pub.pem"))
            .unwrap_or_else(|e| panic!("in-toto refuses the ECDSA provenance: {e}"));
    }
    assert_eq!(
        std::fs::read(statement_path(&a, SERVICE)).unwrap(),
        std::fs::read(statement_path(&b, SERVICE)).unwrap()
    );
    let sig = |dir: &Path| read_json(&envelope_path(dir, SERVICE))["signatures"][0]["sig"].clone();
    assert_ne!(sig(&a), sig(&b));
}

#[test]
fn apply_push_attaches_the_sbom_and_provenance_as_referrers_listed_by_skopeo() {
    let registry = Registry::start();
    let sb = Sandbox::new();
    let dir = sb.multi(registry.addr());
    let msgs = sb.json_ok(&dir, &["apply", "--push"]);
    let position = |step: &str, unit: &str| {
        msgs.iter()
            .position(|m| m["step"] == step && m["unit"] == unit)
    };
    let upload = position("upload", "multi").expect("an upload");
    for short in ["a", "b", "c"] {
        let name = &format!("multi_{short}");
        // The artifacts are pushed with the image, after the policy upload.
        let push = position("push", name).expect("a push");
        assert!(upload < push);
        let repository = format!("{}/multi/{short}", registry.addr());
        let digest = built_image_digest(&dir, name);
        // No referrers API in this registry (distribution 2.8): the referrers
        // tag schema, `sha256-<hex>`, lists them.
        let tag = digest.replace(':', "-");
        assert!(
            tools::skopeo_list_tags(&repository).contains(&tag),
            "{repository} has no referrers tag"
        );
        let index = tools::skopeo_raw_manifest(&format!("{repository}:{tag}"));
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let listed = index["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 2, "{index}");
        let mut found = Vec::new();
        for referrer in listed {
            let manifest = tools::skopeo_raw_manifest(&format!(
                "{repository}@{}",
                referrer["digest"].as_str().unwrap()
            ));
            assert_eq!(manifest["subject"]["digest"], digest.as_str());
            assert_eq!(manifest["artifactType"], referrer["artifactType"]);
            found.push((
                manifest["artifactType"].as_str().unwrap().to_string(),
                manifest["layers"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
        found.sort();
        let file_digest = |p: PathBuf| sha256_digest(&std::fs::read(p).unwrap());
        assert_eq!(
            found,
            [
                (
                    "application/spdx+json".to_string(),
                    file_digest(sbom_path(&dir, name))
                ),
                (
                    "application/vnd.in-toto+json".to_string(),
                    file_digest(envelope_path(&dir, name))
                ),
            ],
            "{name}: the attached blobs are the files under target/"
        );
        // The blob is the file: pulled back by its digest, byte for byte.
        let pulled = sb.path().join(format!("{name}.dsse.json"));
        let out = tools::skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!(
                "docker://{repository}@{}",
                listed
                    .iter()
                    .find(|r| r["artifactType"] == "application/vnd.in-toto+json")
                    .unwrap()["digest"]
                    .as_str()
                    .unwrap()
            ))
            .arg(format!("dir:{}", sb.path().join(name).display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let blob = found[1].1.trim_start_matches("sha256:");
        std::fs::copy(sb.path().join(name).join(blob), &pulled).unwrap();
        assert_eq!(
            std::fs::read(&pulled).unwrap(),
            std::fs::read(envelope_path(&dir, name)).unwrap()
        );
        in_toto_verify(&pulled, &support::provenance_public_key())
            .unwrap_or_else(|e| panic!("{name}: the pulled provenance does not verify: {e}"));
    }

    // Applied again: nothing new is attached (the index still lists two).
    sb.json_ok(&dir, &["apply", "--push"]);
    let digest = built_image_digest(&dir, "multi_a");
    let index = tools::skopeo_raw_manifest(&format!(
        "{}/multi/a:{}",
        registry.addr(),
        digest.replace(':', "-")
    ));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

/// `scone verify --registry --key PUB --message-format json`: exit code and
/// `(subject, field, place, ok)` of every check.
fn verify_checks(sb: &Sandbox, dir: &Path) -> (i32, Vec<(String, String, String, bool)>) {
    let out = sb
        .scone(dir)
        .args(["verify", "--registry", "--key"])
        .arg(support::provenance_public_key())
        .args(["--message-format", "json"])
        .output()
        .unwrap();
    let checks = messages(&out.stdout)
        .iter()
        .filter(|m| m["reason"] == "verify-check")
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_string(),
                m["field"].as_str().unwrap_or_default().to_string(),
                m["place"].as_str().unwrap_or_default().to_string(),
                m["ok"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    (out.status.code().unwrap_or(-1), checks)
}

/// The referrers API's answer for `digest` in `repository` (with a query).
fn referrers_api(
    registry: &ReferrersRegistry,
    repository: &str,
    digest: &str,
    query: &str,
) -> (serde_json::Value, Option<String>) {
    scone::oci::registry::install_crypto_provider();
    let response = reqwest::blocking::get(format!(
        "http://{}/v2/{repository}/referrers/{digest}{query}",
        registry.addr()
    ))
    .unwrap();
    assert!(response.status().is_success());
    let filters = response
        .headers()
        .get("oci-filters-applied")
        .map(|v| v.to_str().unwrap().to_string());
    (response.json().unwrap(), filters)
}

#[test]
fn a_registry_with_the_referrers_api_is_used_through_it_and_verify_finds_them() {
    let registry = ReferrersRegistry::start();
    let sb = Sandbox::new();
    let dir = sb.multi(registry.addr());
    let msgs = sb.json_ok(&dir, &["apply", "--push"]);
    let pushed_log = registry.log();
    let spdx = "application/spdx+json";
    let in_toto = "application/vnd.in-toto+json";
    let file_digest = |p: PathBuf| sha256_digest(&std::fs::read(p).unwrap());
    for short in ["a", "b", "c"] {
        let name = &format!("multi_{short}");
        let repository = format!("multi/{short}");
        let digest = built_image_digest(&dir, name);
        // The push step says how the registry lists them.
        let push = msgs
            .iter()
            .find(|m| m["step"] == "push" && m["unit"] == name.as_str())
            .unwrap_or_else(|| panic!("no push of {name}: {msgs:?}"));
        assert_eq!(
            push["outputs"]["referrers_listed_by"], "referrers API",
            "{push}"
        );
        let mut attached: Vec<&str> = push["outputs"]["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        attached.sort();
        // The registry answered with OCI-Subject: no referrers tag was
        // written, or even looked for.
        assert_eq!(registry.tags(&repository), ["1"]);
        let tag = digest.replace(':', "-");
        let tag_requests: Vec<&String> = pushed_log.iter().filter(|l| l.contains(&tag)).collect();
        assert!(tag_requests.is_empty(), "{tag_requests:?}");
        // The API lists both, each a manifest whose subject is the image and
        // whose blob is the file under target/.
        let (index, filters) = referrers_api(&registry, &repository, &digest, "");
        assert_eq!(filters, None);
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let descriptors = index["manifests"].as_array().unwrap();
        let mut listed: Vec<&str> = descriptors
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(listed, attached, "the API lists what the push attached");
        let mut found: Vec<(String, String)> = descriptors
            .iter()
            .map(|d| {
                let manifest = registry
                    .manifest(&repository, d["digest"].as_str().unwrap())
                    .unwrap();
                assert_eq!(manifest["subject"]["digest"], digest.as_str());
                assert_eq!(manifest["artifactType"], d["artifactType"]);
                (
                    d["artifactType"].as_str().unwrap().to_string(),
                    manifest["layers"][0]["digest"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (spdx.to_string(), file_digest(sbom_path(&dir, name))),
                (in_toto.to_string(), file_digest(envelope_path(&dir, name))),
            ],
            "{name}: {index}"
        );
        // `artifactType` filters the list.
        let (only, filters) = referrers_api(
            &registry,
            &repository,
            &digest,
            "?artifactType=application/spdx+json",
        );
        assert_eq!(filters.as_deref(), Some("artifactType"));
        let listed = only["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{only}");
        assert_eq!(listed[0]["artifactType"], spdx);
    }

    // `scone verify` finds them through the API.
    let before = registry.log().len();
    let (code, checks) = verify_checks(&sb, &dir);
    assert_eq!(code, 0, "{checks:?}");
    for field in ["SBOM", "provenance"] {
        let found: Vec<_> = checks
            .iter()
            .filter(|c| c.1 == field && c.2.ends_with("(referrers)"))
            .collect();
        assert_eq!(found.len(), 3, "{field}: {checks:?}");
        assert!(found.iter().all(|c| c.3), "{checks:?}");
    }
    let asked = &registry.log()[before..];
    for short in ["a", "b", "c"] {
        let digest = built_image_digest(&dir, &format!("multi_{short}"));
        let tag = digest.replace(':', "-");
        assert!(
            asked.contains(&format!("GET /v2/multi/{short}/referrers/{digest}")),
            "{asked:?}"
        );
        assert!(!asked.iter().any(|l| l.contains(&tag)), "{asked:?}");
    }
    // The API is what verify read: with b's referrers gone from it, verify
    // names b's SBOM and provenance.
    let digest = built_image_digest(&dir, "multi_b");
    registry.forget_referrers("multi/b", &digest);
    let (code, checks) = verify_checks(&sb, &dir);
    assert_eq!(code, 1, "{checks:?}");
    let mut failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.3)
        .map(|c| {
            assert_eq!(c.0, "multi_b", "{c:?}");
            c.1.as_str()
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["SBOM", "provenance"], "{checks:?}");
}
