//! The Debian packages a root file system was made from, read from its dpkg
//! status file (`var/lib/dpkg/status`): what `scripts/python-rootfs.sh`
//! records, and what every Debian-based image has.

use serde::{Deserialize, Serialize};

/// Where dpkg keeps its status, relative to the root.
pub const STATUS_PATH: &str = "var/lib/dpkg/status";

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package, when it differs from the name (`Source:`, without
    /// a version in parentheses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
}

/// The installed packages of a status file, sorted by name and architecture.
/// Paragraphs without a name or version, or not installed, are left out.
pub fn parse_status(text: &str) -> Vec<DebPackage> {
    let mut out = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut fields = std::collections::BTreeMap::new();
        for line in paragraph.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // a continuation of a multi-line field
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let installed = fields
            .get("status")
            .is_none_or(|s| s.ends_with(" installed"));
        let (Some(name), Some(version)) = (fields.get("package"), fields.get("version")) else {
            continue;
        };
        if !installed || name.is_empty() || version.is_empty() {
            continue;
        }
        let source = fields
            .get("source")
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
            .filter(|s| !s.is_empty() && s != name);
        out.push(DebPackage {
            name: name.clone(),
            version: version.clone(),
            architecture: fields.get("architecture").cloned().unwrap_or_default(),
            source,
            maintainer: fields.get("maintainer").cloned(),
        });
    }
    out.sort();
    out.dedup();
    out
}

impl DebPackage {
    /// The package URL (purl spec, type `deb`).
    pub fn purl(&self) -> String {
        let mut purl = format!(
            "pkg:deb/debian/{}@{}",
            purl_escape(&self.name),
            purl_escape(&self.version)
        );
        let mut qualifiers = Vec::new();
        if !self.architecture.is_empty() {
            qualifiers.push(format!("arch={}", purl_escape(&self.architecture)));
        }
        if let Some(source) = &self.source {
            qualifiers.push(format!("upstream={}", purl_escape(source)));
        }
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        purl
    }
}

/// Percent-encodes what a purl component may not hold as is.
pub fn purl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_are_read_with_their_versions() {
        let status = "Package: python3.11-minimal\nStatus: install ok installed\n\
            Architecture: amd64\nSource: python3.11\nVersion: 3.11.2-6+deb12u6\n\
            Description: minimal\n a continuation: with a colon\n\n\
            Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
            Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u10\n\
            Architecture: amd64\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n";
        let p = parse_status(status);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[1].source.as_deref(), Some("python3.11"));
        assert_eq!(
            p[1].purl(),
            "pkg:deb/debian/python3.11-minimal@3.11.2-6%2Bdeb12u6?arch=amd64&upstream=python3.11"
        );
    }
}
