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

use serde::Serialize;

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

/// A checksum of a file or a package.
#[derive(Serialize)]
struct Checksum<'a> {
    algorithm: &'static str,
    #[serde(rename = "checksumValue")]
    value: &'a str,
}

/// A file of the service's layer. The fields of each element below are
/// declared in the order of their JSON keys' bytes: the document is written
/// with sorted keys, as every attestation (`super::pretty_json`), without
/// first being built as a tree of JSON values — for a layer of 20,000 files
/// that tree was 130 MB.
#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "SPDXID")]
    id: String,
    checksums: [Checksum<'a>; 2],
    #[serde(rename = "copyrightText")]
    copyright: &'static str,
    #[serde(rename = "fileName")]
    name: String,
    #[serde(rename = "licenseConcluded")]
    license: &'static str,
}

/// `element` relates to `related` by `kind`.
#[derive(Serialize)]
struct Relationship<'a> {
    #[serde(rename = "relatedSpdxElement")]
    related: &'a str,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "spdxElementId")]
    element: &'a str,
}

/// A package reference (a purl).
#[derive(Serialize)]
struct ExternalRef {
    #[serde(rename = "referenceCategory")]
    category: &'static str,
    #[serde(rename = "referenceLocator")]
    locator: String,
    #[serde(rename = "referenceType")]
    kind: &'static str,
}

impl ExternalRef {
    fn purl(locator: String) -> ExternalRef {
        ExternalRef {
            category: "PACKAGE-MANAGER",
            locator,
            kind: "purl",
        }
    }
}

#[derive(Serialize)]
struct VerificationCode {
    #[serde(rename = "packageVerificationCodeValue")]
    value: String,
}

/// A package: the image, its base, or a Debian package of the base.
#[derive(Serialize)]
struct Package<'a> {
    #[serde(rename = "SPDXID")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksums: Option<[Checksum<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "copyrightText")]
    copyright: &'static str,
    #[serde(rename = "downloadLocation")]
    download: &'static str,
    #[serde(rename = "externalRefs", skip_serializing_if = "Option::is_none")]
    external_refs: Option<[ExternalRef; 1]>,
    #[serde(rename = "filesAnalyzed")]
    files_analyzed: bool,
    #[serde(rename = "hasFiles", skip_serializing_if = "Option::is_none")]
    has_files: Option<Vec<&'a str>>,
    #[serde(rename = "licenseConcluded")]
    license_concluded: &'static str,
    #[serde(rename = "licenseDeclared")]
    license_declared: &'static str,
    name: &'a str,
    #[serde(
        rename = "packageVerificationCode",
        skip_serializing_if = "Option::is_none"
    )]
    verification_code: Option<VerificationCode>,
    #[serde(rename = "primaryPackagePurpose")]
    purpose: &'static str,
    #[serde(rename = "sourceInfo", skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<String>,
    #[serde(rename = "versionInfo")]
    version: &'a str,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: [String; 1],
}

/// The SPDX document of an image, borrowing its parts ([`document`]).
#[derive(Serialize)]
struct Document<'d, 'a> {
    #[serde(rename = "SPDXID")]
    id: &'static str,
    #[serde(rename = "creationInfo")]
    creation_info: CreationInfo,
    #[serde(rename = "dataLicense")]
    data_license: &'static str,
    #[serde(rename = "documentDescribes")]
    describes: [&'static str; 1],
    #[serde(rename = "documentNamespace")]
    namespace: String,
    files: &'d [File<'a>],
    name: String,
    packages: &'d [Package<'a>],
    relationships: &'d [Relationship<'d>],
    #[serde(rename = "spdxVersion")]
    version: &'static str,
}

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";
const BASE_ID: &str = "SPDXRef-BaseImage";

/// The SPDX document of `input`, as its bytes: sorted keys, indented, a
/// final newline (the bytes [`super::pretty_json`] makes of the same
/// document, as of every attestation).
pub fn document(input: &SbomInput<'_>) -> Vec<u8> {
    let files: Vec<File<'_>> = input
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| File {
            id: spdx_id(&["File", &i.to_string(), &f.path]),
            checksums: [
                Checksum {
                    algorithm: "SHA1",
                    value: &f.sha1,
                },
                Checksum {
                    algorithm: "SHA256",
                    value: &f.sha256,
                },
            ],
            copyright: NOASSERTION,
            name: format!("./{}", f.path),
            license: NOASSERTION,
        })
        .collect();
    let image = Package {
        id: IMAGE_ID.to_string(),
        checksums: Some([Checksum {
            algorithm: "SHA256",
            value: hex_of(input.image_digest),
        }]),
        comment: Some(format!(
            "the image of service `{}` built by scone",
            input.service
        )),
        copyright: NOASSERTION,
        download: NOASSERTION,
        external_refs: Some([ExternalRef::purl(oci_purl(
            input.reference,
            input.image_digest,
        ))]),
        files_analyzed: !input.files.is_empty(),
        has_files: Some(files.iter().map(|f| f.id.as_str()).collect()),
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        name: input.reference,
        verification_code: (!input.files.is_empty()).then(|| VerificationCode {
            value: verification_code(input.files),
        }),
        purpose: "CONTAINER",
        source_info: None,
        supplier: None,
        version: input.image_digest,
    };
    let (base_ref, base_digest) = input.base;
    let base = Package {
        id: BASE_ID.to_string(),
        checksums: Some([Checksum {
            algorithm: "SHA256",
            value: hex_of(base_digest),
        }]),
        comment: Some("the base image, by the digest of its manifest".to_string()),
        copyright: NOASSERTION,
        download: NOASSERTION,
        external_refs: None,
        files_analyzed: false,
        has_files: None,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION,
        name: base_ref,
        verification_code: None,
        purpose: "CONTAINER",
        source_info: None,
        supplier: None,
        version: base_digest,
    };
    let mut packages = vec![image, base];
    packages.extend(input.packages.iter().enumerate().map(|(i, p)| {
        Package {
            id: spdx_id(&["deb", &i.to_string(), &p.name]),
            checksums: None,
            comment: None,
            copyright: NOASSERTION,
            download: NOASSERTION,
            external_refs: Some([ExternalRef::purl(p.purl())]),
            files_analyzed: false,
            has_files: None,
            license_concluded: NOASSERTION,
            license_declared: NOASSERTION,
            name: &p.name,
            verification_code: None,
            purpose: "LIBRARY",
            source_info: p
                .source
                .as_ref()
                .map(|source| format!("built from the Debian source package {source}")),
            supplier: p.maintainer.as_deref().map(supplier),
            version: &p.version,
        }
    }));
    // The relationships name the ids of the files and packages.
    let mut relationships = Vec::with_capacity(files.len() + packages.len() + 2);
    relationships.push(Relationship {
        related: IMAGE_ID,
        kind: "DESCRIBES",
        element: "SPDXRef-DOCUMENT",
    });
    relationships.extend(files.iter().map(|f| Relationship {
        related: &f.id,
        kind: "CONTAINS",
        element: IMAGE_ID,
    }));
    relationships.push(Relationship {
        related: BASE_ID,
        kind: "DESCENDANT_OF",
        element: IMAGE_ID,
    });
    relationships.extend(packages.iter().skip(2).map(|p| Relationship {
        related: &p.id,
        kind: "CONTAINS",
        element: BASE_ID,
    }));
    let document = Document {
        id: "SPDXRef-DOCUMENT",
        creation_info: CreationInfo {
            created: crate::oci::image::rfc3339(input.created),
            creators: [format!("Tool: scone-{}", env!("CARGO_PKG_VERSION"))],
        },
        data_license: "CC0-1.0",
        describes: [IMAGE_ID],
        namespace: format!(
            "https://spdx.org/spdxdocs/scone/{}-{}",
            purl_escape(input.service),
            hex_of(input.image_digest)
        ),
        files: &files,
        name: format!("{} {}", input.service, input.image_digest),
        packages: &packages,
        relationships: &relationships,
        version: "SPDX-2.3",
    };
    let mut out = serde_json::to_vec_pretty(&document).unwrap_or_default();
    out.push(b'\n');
    out
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
        let bytes = document(&input);
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
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
        assert_eq!(
            doc["packages"][2]["supplier"],
            "Organization: GNU Libc Maintainers (x@lists.debian.org)"
        );
        assert_eq!(
            doc["relationships"][1]["relatedSpdxElement"],
            doc["files"][0]["SPDXID"]
        );
        assert_eq!(
            doc["relationships"][3]["spdxElementId"],
            "SPDXRef-BaseImage"
        );
        assert_eq!(bytes, document(&input));
        // Written as every attestation is: sorted keys, indented, a final
        // newline — the bytes of the document made a tree of values first.
        assert_eq!(bytes, crate::attest::pretty_json(&doc));
        // Without files and packages: the same keys present, empty.
        let bare = SbomInput {
            files: &[],
            packages: &[],
            ..input
        };
        let bytes = document(&bare);
        let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(doc["packages"][0]["hasFiles"], serde_json::json!([]));
        assert_eq!(doc["packages"][0]["filesAnalyzed"], false);
        assert!(doc["packages"][0].get("packageVerificationCode").is_none());
        assert_eq!(doc["files"], serde_json::json!([]));
        assert_eq!(bytes, crate::attest::pretty_json(&doc));
    }
}
