//! The provenance of an image: an in-toto Statement v1 whose subject is the
//! image manifest digest, with a SLSA Provenance v1 predicate. Its build
//! definition holds what the build resolved (the base image by digest, the
//! manifests that described it) and the settings that shape the enclave;
//! its byproducts are what attestation checks: MRENCLAVE (the SHA-256 of the
//! measured `enclave.sgxs`), MRSIGNER, the fspf tag, the SIGSTRUCT (digest and
//! bytes: a verifier needs nothing else to check it) and the SBOM by digest.
//! The session that lists the image is not in it: it changes with every
//! service of the mesh, and would make one edit re-sign every image's
//! provenance (`scone verify` checks the session against the image instead).
//!
//! No time, host or path of this machine is in it: two builds of the same
//! sources give the same bytes. [`Facts`] reads a statement back.

use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::AttestError;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build made the image (a SLSA `buildType`).
pub const BUILD_TYPE: &str = "urn:scone:build-type:confidential-image:v1";
/// Who built it (a SLSA `builder.id`).
pub const BUILDER_ID: &str = "urn:scone:builder:v1";
/// The media type of a SIGSTRUCT byproduct.
pub const SIGSTRUCT_MEDIA_TYPE: &str = "application/vnd.scone.sgx.sigstruct";

/// A file the build read, by path relative to the workspace root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    /// `None` when the file holds a secret value (a manifest giving a secret
    /// a fixed value): no hash of a secret leaves the machine.
    pub sha256: Option<String>,
}

/// What a statement says.
#[derive(Clone, Debug)]
pub struct ProvenanceInput<'a> {
    /// `build.name`.
    pub service: &'a str,
    /// `build.to`.
    pub reference: &'a str,
    /// The image manifest digest (`sha256:…`).
    pub image_digest: &'a str,
    /// The base: its reference and manifest digest.
    pub base: (&'a str, &'a str),
    /// The service manifest.
    pub manifests: &'a [SourceFile],
    /// Build settings (`internalParameters`): mode, compression, the enclave
    /// binary and `SCONE_*` settings, `SOURCE_DATE_EPOCH`…
    pub settings: BTreeMap<String, Value>,
    pub mrenclave: &'a str,
    pub mrsigner: &'a str,
    pub fspf_tag: &'a str,
    pub sigstruct: &'a [u8],
    /// The SBOM's SHA-256 (hex).
    pub sbom_sha256: &'a str,
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The statement of `input`.
pub fn statement(input: &ProvenanceInput<'_>) -> Value {
    let mut resolved = vec![json!({
        "name": "base-image",
        "uri": input.base.0,
        "digest": {"sha256": hex_of(input.base.1)},
    })];
    for m in input.manifests {
        let mut entry = json!({"name": "manifest", "uri": m.path});
        match &m.sha256 {
            Some(sum) => entry["digest"] = json!({"sha256": sum}),
            None => {
                entry["annotations"] = json!({
                    "digest": "left out: the manifest gives a secret a fixed value"
                })
            }
        }
        resolved.push(entry);
    }
    let sigstruct_sha = crate::oci::digest::sha256_digest(input.sigstruct);
    let byproducts = vec![
        json!({
            "name": "enclave.sgxs",
            "digest": {"sha256": input.mrenclave},
            "annotations": {"mrenclave": input.mrenclave},
        }),
        json!({
            "name": "sigstruct.bin",
            "digest": {"sha256": hex_of(&sigstruct_sha)},
            "mediaType": SIGSTRUCT_MEDIA_TYPE,
            "content": base64::engine::general_purpose::STANDARD.encode(input.sigstruct),
        }),
        json!({
            "name": "mrsigner",
            "digest": {"sha256": input.mrsigner},
            "annotations": {"mrsigner": input.mrsigner},
        }),
        json!({
            "name": "fspf_tag",
            "digest": {"sha256": input.fspf_tag},
            "annotations": {"fspf_tag": input.fspf_tag},
        }),
        json!({
            "name": "sbom.spdx.json",
            "digest": {"sha256": input.sbom_sha256},
            "mediaType": super::spdx::MEDIA_TYPE,
        }),
    ];
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": input.reference,
            "digest": {"sha256": hex_of(input.image_digest)},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "service": input.service,
                    "image": input.reference,
                },
                "internalParameters": input.settings,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"scone": env!("CARGO_PKG_VERSION")},
                },
                "byproducts": byproducts,
            },
        },
    })
}

/// What a verifier reads out of a statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The subject's name and manifest digest (`sha256:…`).
    pub subject: (String, String),
    pub mrenclave: Option<String>,
    pub mrsigner: Option<String>,
    pub fspf_tag: Option<String>,
    pub sigstruct: Option<Vec<u8>>,
    /// The entry binary's path in the image.
    pub binary: Option<String>,
    /// The `SCONE_*` enclave settings.
    pub enclave_env: Vec<(String, String)>,
    pub debug: Option<bool>,
}

impl Facts {
    /// Reads a statement (the payload of its envelope).
    pub fn parse(bytes: &[u8]) -> Result<Facts, AttestError> {
        let bad = |what: &str| AttestError::Invalid(format!("the provenance statement {what}"));
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(&format!("is not JSON: {e}")))?;
        if doc["_type"] != STATEMENT_TYPE || doc["predicateType"] != PREDICATE_TYPE {
            return Err(bad(
                "is no in-toto statement with a SLSA provenance v1 predicate",
            ));
        }
        let subject = &doc["subject"][0];
        let digest = subject["digest"]["sha256"]
            .as_str()
            .ok_or_else(|| bad("has no subject digest"))?;
        let mut facts = Facts {
            subject: (
                subject["name"].as_str().unwrap_or_default().to_string(),
                format!("sha256:{digest}"),
            ),
            ..Facts::default()
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        for b in doc["predicate"]["runDetails"]["byproducts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let sha = text(&b["digest"]["sha256"]);
            match b["name"].as_str().unwrap_or_default() {
                "enclave.sgxs" => facts.mrenclave = sha,
                "mrsigner" => facts.mrsigner = sha,
                "fspf_tag" => facts.fspf_tag = sha,
                "sigstruct.bin" => {
                    let bytes = b["content"]
                        .as_str()
                        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                        .ok_or_else(|| bad("holds a SIGSTRUCT that is not base64"))?;
                    if sha.as_deref() != Some(hex_of(&crate::oci::digest::sha256_digest(&bytes))) {
                        return Err(bad("holds a SIGSTRUCT that does not match its digest"));
                    }
                    facts.sigstruct = Some(bytes);
                }
                _ => {}
            }
        }
        let settings = &doc["predicate"]["buildDefinition"]["internalParameters"];
        facts.binary = text(&settings["enclave_binary"]);
        facts.debug = settings["mode"].as_str().map(|m| m == "debug");
        if let Some(env) = settings["enclave_env"].as_object() {
            facts.enclave_env = env
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
        }
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_reads_back_as_its_facts() {
        let sigstruct = vec![7u8; 1808];
        let manifests = [
            SourceFile {
                path: "service.yml".into(),
                sha256: Some("1".repeat(64)),
            },
            SourceFile {
                path: "secret.yml".into(),
                sha256: None,
            },
        ];
        let digest = format!("sha256:{}", "a".repeat(64));
        let base = format!("sha256:{}", "b".repeat(64));
        let settings = BTreeMap::from([
            ("mode".to_string(), json!("debug")),
            ("enclave_binary".to_string(), json!("/usr/bin/python3.11")),
            ("enclave_env".to_string(), json!({"SCONE_HEAP": "128M"})),
        ]);
        let input = ProvenanceInput {
            service: "python_hello_user",
            reference: "r/p:latest",
            image_digest: &digest,
            base: ("dir:default:python", &base),
            manifests: &manifests,
            settings,
            mrenclave: &"2".repeat(64),
            mrsigner: &"3".repeat(64),
            fspf_tag: &"4".repeat(64),
            sigstruct: &sigstruct,
            sbom_sha256: &"6".repeat(64),
        };
        let doc = statement(&input);
        let bytes = super::super::pretty_json(&doc);
        let facts = Facts::parse(&bytes).unwrap();
        assert_eq!(facts.subject.1, digest);
        assert_eq!(facts.mrenclave.as_deref(), Some("2".repeat(64).as_str()));
        assert_eq!(facts.sigstruct.as_deref(), Some(sigstruct.as_slice()));
        assert_eq!(facts.binary.as_deref(), Some("/usr/bin/python3.11"));
        assert_eq!(facts.debug, Some(true));
        assert_eq!(facts.enclave_env, [("SCONE_HEAP".into(), "128M".into())]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("left out: the manifest gives a secret a fixed value"));
        let tampered = text.replace(&"2".repeat(64), &"9".repeat(64));
        assert_ne!(
            Facts::parse(tampered.as_bytes()).unwrap().mrenclave,
            facts.mrenclave
        );
    }
}
