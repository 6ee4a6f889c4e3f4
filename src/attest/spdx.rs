//! The SBOM of an image as an SPDX 2.3 JSON document: the image (by manifest
//! digest) made of the files of the service's own layer (SHA-1 and SHA-256
//! each; SPDX asks for SHA-1) on top of its base image (by digest), and the
//! Debian packages the base was made from (from its dpkg status).
//!
//! SPDX rather than CycloneDX: its 2.3 JSON schema is one self-contained file
//! (CycloneDX 1.5's refers to two others), it is the SBOM format of ISO/IEC
//! 5962, and SPDX has a per-file checksum model that matches what a layer is.
//! Everything in it is a function of the image: the creation time is
//! `SOURCE_DATE_EPOCH` (else 1970-01-01), the namespace is made of the
//! service's name and the manifest digest, elements are sorted.

use serde_json::{json, Value};

use super::dpkg::{purl_escape, DebPackage};

/// The media type of an SPDX JSON document (an OCI artifact type).
pub const MEDIA_TYPE: &str = "application/spdx+json";

/// A file of the service's own layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFile {
    /// Path in the image, without a leading `/`.
    pub path: String,
    pub sha1: String,
    pub sha256: String,
}

/// What an SBOM says.
#[derive(Clone, Debug)]
pub struct SbomInput<'a> {
    /// `build.name`.
    pub service: &'a str,
    /// `build.to`.
    pub reference: &'a str,
    /// The image manifest digest (`sha256:…`).
    pub image_digest: &'a str,
    /// The base image: its reference and manifest digest.
    pub base: (&'a str, &'a str),
    /// Files of the service's own layer, sorted by path.
    pub files: &'a [LayerFile],
    /// The base's Debian packages.
    pub packages: &'a [DebPackage],
    /// `SOURCE_DATE_EPOCH`.
    pub created: u64,
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// An SPDX id made of letters, digits, `.` and `-`.
fn spdx_id(parts: &[&str]) -> String {
    let mut out = String::from("SPDXRef");
    for part in parts {
        out.push('-');
        out.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        }));
    }
    out
}

/// `pkg:oci/NAME@DIGEST?repository_url=…` of an image reference.
fn oci_purl(reference: &str, digest: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    // The tag is after the last `:` that comes after the last `/`.
    let slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repository = match without_digest[slash..].rfind(':') {
        Some(colon) => &without_digest[..slash + colon],
        None => without_digest,
    };
    let name = repository.rsplit('/').next().unwrap_or(repository);
    format!(
        "pkg:oci/{}@{}?repository_url={}",
        purl_escape(name),
        purl_escape(digest),
        purl_escape(repository)
    )
}

/// SPDX's package verification code: the SHA-1 of the sorted SHA-1s of its files.
fn verification_code(files: &[LayerFile]) -> String {
    let mut sums: Vec<&str> = files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort_unstable();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sums.concat().as_bytes(),
    );
    hex::encode(digest.as_ref())
}

/// `Person: NAME (EMAIL)`-style supplier text of a Debian maintainer.
fn supplier(maintainer: &str) -> String {
    let text = maintainer.replace('<', "(").replace('>', ")");
    format!("Organization: {}", text.trim())
}

/// The SPDX document of `input`.
pub fn document(input: &SbomInput<'_>) -> Value {
    let noassertion = "NOASSERTION";
    let image_id = "SPDXRef-Image".to_string();
    let base_id = "SPDXRef-BaseImage".to_string();
    let mut files = Vec::new();
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut file_ids = Vec::new();
    for (i, f) in input.files.iter().enumerate() {
        let id = spdx_id(&["File", &i.to_string(), &f.path]);
        files.push(json!({
            "SPDXID": id,
            "fileName": format!("./{}", f.path),
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": f.sha1},
                {"algorithm": "SHA256", "checksumValue": f.sha256},
            ],
            "licenseConcluded": noassertion,
            "copyrightText": noassertion,
        }));
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
        file_ids.push(id);
    }
    relationships.push(json!({
        "spdxElementId": image_id,
        "relationshipType": "DESCENDANT_OF",
        "relatedSpdxElement": base_id,
    }));
    let mut image = json!({
        "SPDXID": image_id,
        "name": input.reference,
        "versionInfo": input.image_digest,
        "downloadLocation": noassertion,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(input.image_digest)}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": oci_purl(input.reference, input.image_digest),
        }],
        "filesAnalyzed": !file_ids.is_empty(),
        "hasFiles": file_ids,
        "licenseConcluded": noassertion,
        "licenseDeclared": noassertion,
        "copyrightText": noassertion,
        "comment": format!("the image of service `{}` built by scone", input.service),
    });
    if !input.files.is_empty() {
        image["packageVerificationCode"] =
            json!({"packageVerificationCodeValue": verification_code(input.files)});
    }
    let (base_ref, base_digest) = input.base;
    let mut packages = vec![
        image,
        json!({
            "SPDXID": base_id,
            "name": base_ref,
            "versionInfo": base_digest,
            "downloadLocation": noassertion,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(base_digest)}],
            "filesAnalyzed": false,
            "licenseConcluded": noassertion,
            "licenseDeclared": noassertion,
            "copyrightText": noassertion,
            "comment": "the base image, by the digest of its manifest",
        }),
    ];
    for (i, p) in input.packages.iter().enumerate() {
        let id = spdx_id(&["deb", &i.to_string(), &p.name]);
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": noassertion,
            "primaryPackagePurpose": "LIBRARY",
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(),
            }],
            "licenseConcluded": noassertion,
            "licenseDeclared": noassertion,
            "copyrightText": noassertion,
        });
        if let Some(m) = &p.maintainer {
            package["supplier"] = json!(supplier(m));
        }
        if let Some(source) = &p.source {
            package["sourceInfo"] = json!(format!("built from the Debian source package {source}"));
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": base_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} {}", input.service, input.image_digest),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/scone/{}-{}",
            purl_escape(input.service),
            hex_of(input.image_digest)
        ),
        "creationInfo": {
            "created": crate::oci::image::rfc3339(input.created),
            "creators": [format!("Tool: scone-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": ["SPDXRef-Image"],
        "packages": packages,
        "files": files,
        "relationships": relationships,
    })
}

/// The document's bytes: sorted keys, indented, a final newline.
pub fn to_bytes(document: &Value) -> Vec<u8> {
    super::pretty_json(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_files_base_and_packages_and_is_stable() {
        let files = [LayerFile {
            path: "python/print_env.py".into(),
            sha1: "a".repeat(40),
            sha256: "b".repeat(64),
        }];
        let packages = [DebPackage {
            name: "libc6".into(),
            version: "2.36-9".into(),
            architecture: "amd64".into(),
            source: Some("glibc".into()),
            maintainer: Some("GNU Libc Maintainers <x@lists.debian.org>".into()),
        }];
        let digest = format!("sha256:{}", "c".repeat(64));
        let base = format!("sha256:{}", "d".repeat(64));
        let input = SbomInput {
            service: "python_hello_user",
            reference: "127.0.0.1:5000/cicd/python_hello_user:latest",
            image_digest: &digest,
            base: ("dir:default:python", &base),
            files: &files,
            packages: &packages,
            created: 0,
        };
        let doc = document(&input);
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        assert_eq!(doc["files"][0]["fileName"], "./python/print_env.py");
        assert_eq!(
            doc["packages"][1]["checksums"][0]["checksumValue"],
            "d".repeat(64)
        );
        assert_eq!(
            doc["packages"][0]["externalRefs"][0]["referenceLocator"],
            format!(
                "pkg:oci/python_hello_user@sha256%3A{}?repository_url=127.0.0.1%3A5000%2Fcicd%2Fpython_hello_user",
                "c".repeat(64)
            )
        );
        assert_eq!(doc["packages"][2]["name"], "libc6");
        assert_eq!(to_bytes(&doc), to_bytes(&document(&input)));
    }
}
