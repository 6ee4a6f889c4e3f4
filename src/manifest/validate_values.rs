//! Checks of the values a build would refuse, made at `check` with the same
//! code the build uses, so a manifest mistake shows at its line before any
//! output is made: the `SCONE_*` enclave settings and their total (the sign
//! step), `build.to` (the push step), `build.from` (the base step), copy paths
//! with `.` or empty components (the layer step), port protocols and clashes
//! (the chart step) and the Meshfile's chart `version` (SemVer, the chart
//! step); and (docs/security.md) text the CAS session cannot hold (control
//! characters, noncharacters), CAS addresses, and names that collide once made
//! Kubernetes names.

use super::diag::{Diagnostic, ErrorKind};
use super::located::Located;
use super::model::{Mesh, ServiceManifest};
use crate::oci::base::BaseSpec;
use crate::oci::reference::Reference;
use crate::sgx::layout::EnclaveSettings;
use crate::sgx::SgxError;
use std::collections::BTreeMap;
use std::path::Path;

/// The `SCONE_*` locals the sign step reads.
const ENCLAVE_SETTINGS: &[&str] = &[
    "SCONE_HEAP",
    "SCONE_STACK",
    "SCONE_THREADS",
    "SCONE_ALLOW_DLOPEN",
];

fn invalid(file: &Path, at: &Located<String>, msg: String, hint: &str) -> Diagnostic {
    Diagnostic::new(ErrorKind::InvalidValue, file, at.pos, msg).with_hint(hint)
}

/// Every value check of a service manifest.
pub fn check_service(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
    check_enclave_settings(m, out);
    let to = &m.build.to;
    if !to.value.trim().is_empty() && !to.value.chars().any(char::is_whitespace) {
        let problem = match Reference::parse(&to.value) {
            Err(e) => Some(e.to_string()),
            Ok(r) if !is_host_port(&r.registry) => Some(format!(
                "invalid image reference `{}`: the registry `{}` is not a host[:port]",
                to.value, r.registry
            )),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            out.push(invalid(
                file,
                to,
                problem,
                "an image reference: `registry.example.com/team/app:1.0` (lower-case repository)",
            ));
        }
    }
    if let Some(from) = &m.build.from {
        if let Err(e) = BaseSpec::parse(&from.value) {
            out.push(invalid(
                file,
                from,
                format!("build.from: {e}"),
                "`scratch`, `dir:FOLDER`, `oci:FOLDER[:TAG]`, `docker-daemon:IMAGE` or an image reference",
            ));
        }
    }
    for entry in &m.build.copy {
        check_copy_components(entry, file, out);
    }
    check_ports(m, out);
}

/// `SCONE_HEAP`, `SCONE_STACK`, `SCONE_THREADS`, `SCONE_ALLOW_DLOPEN` as the
/// sign step reads them, each at its own value; then, if each is valid, their
/// total (heap + threads × stack, [`crate::sgx::layout::MAX_MEMORY`]) at the
/// size given last.
fn check_enclave_settings(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
    let before = out.len();
    for var in &m.environment.local {
        if !ENCLAVE_SETTINGS.contains(&var.name.value.as_str()) {
            continue;
        }
        let Some(value) = &var.value else { continue };
        let pair = [(var.name.value.clone(), value.value.clone())];
        if let Err(e) = EnclaveSettings::from_env(&pair) {
            let reason = match &e {
                SgxError::InvalidSetting { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            out.push(invalid(
                file,
                value,
                format!("`{}: {}`: {reason}", var.name.value, value.value),
                match var.name.value.as_str() {
                    "SCONE_THREADS" => "a number of threads, e.g. `4`",
                    "SCONE_ALLOW_DLOPEN" => "`1` or `0` (also `true` / `false`, `yes` / `no`)",
                    _ => "a size in bytes with an optional unit: `256M`, `1G`, `64MiB`",
                },
            ));
        }
    }
    if out.len() > before {
        return;
    }
    let all: Vec<(String, String)> = m
        .environment
        .locals()
        .into_iter()
        .filter(|(k, _)| ENCLAVE_SETTINGS.contains(&k.as_str()))
        .collect();
    if let Err(SgxError::InvalidSetting { name, reason, .. }) = EnclaveSettings::from_env(&all) {
        let at = m
            .environment
            .local
            .iter()
            .rev()
            .find(|v| v.name.value == name)
            .and_then(|v| v.value.as_ref());
        if let Some(value) = at {
            out.push(invalid(
                file,
                value,
                format!("`{name}: {}`: {reason}", value.value),
                "SCONE_HEAP up to 64G, SCONE_STACK up to 1G, SCONE_THREADS up to 4096, and heap + \
                 threads × stack up to 64G (see docs/enclave.md)",
            ));
        }
    }
}

/// A copy path is one the image layer can hold: no `.`, `..` or empty
/// components (`.`, `./x`, `a//b`); `copy: [.]` would copy the manifest's own
/// folder, `target/` included. A path that leaves the folder (`../x.py`) is
/// `path-escape` alone: one error at one place.
fn check_copy_components(entry: &Located<String>, file: &Path, out: &mut Vec<Diagnostic>) {
    let raw = entry.value.as_str();
    if raw.trim().is_empty()
        || raw.starts_with('/')
        || super::validate_paths::escapes(Path::new(raw))
    {
        return;
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    let bad = trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        let hint = if trimmed == "." {
            "name the files and folders to copy (`copy: [app.py, templates]`): `.` is the manifest's own folder, `target/` and all"
        } else {
            "write the path without `.`, `..` or empty parts, e.g. `src/app.py`"
        };
        out.push(invalid(
            file,
            entry,
            format!("copy path `{raw}` has a `.`, `..` or empty part"),
            hint,
        ));
    }
}

/// Port protocols the chart can write (TCP, UDP, SCTP) and ports that clash.
fn check_ports(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
    let mut seen: Vec<(&str, u16, String)> = Vec::new();
    for p in &m.ports {
        let protocol = p
            .protocol
            .as_ref()
            .map(|x| x.value.to_ascii_uppercase())
            .unwrap_or_else(|| "TCP".to_string());
        if let Some(given) = &p.protocol {
            if !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP") {
                out.push(invalid(
                    file,
                    given,
                    format!("protocol `{}` is not TCP, UDP or SCTP", given.value),
                    "`protocol: TCP` (the default), `UDP` or `SCTP`",
                ));
            }
        }
        // Names clash as the chart writes them (IANA service names: `web_api`
        // and `web-api` are one).
        let iana = |name: &str, port: u16| crate::helm::port_name(name, &protocol, port).0;
        let clash = seen.iter().find(|(n, port, proto)| {
            *n == p.name.value
                || iana(n, *port) == iana(&p.name.value, p.port.value)
                || (*port == p.port.value && *proto == protocol)
        });
        if let Some((n, port, _)) = clash {
            out.push(invalid(
                file,
                &p.name,
                format!(
                    "port `{}` ({}) clashes with port `{n}` ({port}): same name, or same port and protocol",
                    p.name.value, p.port.value
                ),
                "give each port its own name and its own number per protocol",
            ));
        }
        seen.push((p.name.value.as_str(), p.port.value, protocol));
    }
}

/// The first character of `s` an environment value may not hold: a control
/// character other than tab and newline (C0, DEL, C1) or a Unicode
/// noncharacter (U+FDD0–U+FDEF, U+xFFFE, U+xFFFF).
pub fn bad_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        let u = u32::from(c);
        (u < 0x20 && c != '\t' && c != '\n')
            || (0x7f..=0x9f).contains(&u)
            || (0xfdd0..=0xfdef).contains(&u)
            || u & 0xfffe == 0xfffe
    })
}

/// Checks that `value` (of `what`, e.g. "the value of `API_USER`") holds no
/// [`bad_char`].
pub fn check_text(what: &str, value: &Located<String>, file: &Path, out: &mut Vec<Diagnostic>) {
    if let Some(c) = bad_char(&value.value) {
        let kind = if c.is_control() {
            "a control character"
        } else {
            "a Unicode noncharacter"
        };
        out.push(invalid(
            file,
            value,
            format!("{what} holds U+{:04X}, {kind}", u32::from(c)),
            "values may hold tab and newline, but no other control character and no \
             noncharacter: the CAS session they go into is YAML",
        ));
    }
}

/// Whether `s` is `host[:port]`: a DNS name (labels of letters, digits and `-`),
/// an IPv4 address or a bracketed IPv6 address, and a port from 1 to 65535.
pub fn is_host_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    port_ok && host_ok
}

/// Checks a `cas_url`: `host`, `host:port` or `https://host[:port]` (a CAS is
/// reached over https only), without credentials, path or anything else: it is
/// written into the chart as `SCONE_CAS_ADDR`.
pub fn check_cas_url(url: &Located<String>, file: &Path, out: &mut Vec<Diagnostic>) {
    let trimmed = url.value.strip_suffix('/').unwrap_or(&url.value);
    let rest = match trimmed.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => Some(rest),
        Some(_) => None,
        None => Some(trimmed),
    };
    if !rest.is_some_and(is_host_port) {
        out.push(invalid(
            file,
            url,
            format!(
                "cas_url `{}` is not a CAS address",
                without_credentials(&url.value).escape_debug()
            ),
            "`host`, `host:port` or `https://host[:port]`, e.g. `edge.scone-cas.cf` \
             (no other scheme, no credentials, no path)",
        ));
    }
}

/// `url` with what stands before an `@` (credentials) left out, for messages.
fn without_credentials(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.split_once("://").map_or("", |(s, _)| s);
            let sep = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{sep}…@{host}")
        }
        None => url.to_string(),
    }
}

/// Mesh service names that are one Kubernetes name once lowercased and
/// DNS-1123-renamed (`svc_a` and `svc-a`): one chart object would replace the
/// other.
pub fn check_k8s_names(mesh: &Mesh, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<String, &Located<String>> = BTreeMap::new();
    for svc in &mesh.services {
        let (label, _) = crate::helm::dns1123(&svc.name.value);
        match seen.get(&label) {
            Some(first) if first.value != svc.name.value => out.push(
                Diagnostic::new(
                    ErrorKind::DuplicateService,
                    &mesh.path,
                    svc.name.pos,
                    format!(
                        "service `{}` and service `{}` (line {}) are both `{label}` as Kubernetes names",
                        svc.name.value, first.value, first.pos.line
                    ),
                )
                .with_hint("Kubernetes names are lowercase letters, digits and `-`: rename one of them"),
            ),
            Some(_) => {}
            None => {
                seen.insert(label, &svc.name);
            }
        }
    }
}

/// The Meshfile's chart `version` is SemVer, as Helm requires.
pub fn check_mesh(mesh: &Mesh, out: &mut Vec<Diagnostic>) {
    if let Some(v) = &mesh.version {
        if !crate::helm::is_semver(&v.value) {
            out.push(invalid(
                &mesh.path,
                v,
                format!("version `{}` is not SemVer", v.value),
                "the chart's version: MAJOR.MINOR.PATCH, e.g. `version: 0.1.0` (quote it: `\"1.0.0\"`)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::located::Pos;

    fn copy_kinds(raw: &str) -> usize {
        let mut out = Vec::new();
        check_copy_components(
            &Located::new(raw.into(), Default::default()),
            Path::new("s.yml"),
            &mut out,
        );
        out.len()
    }

    #[test]
    fn copy_paths_with_dot_or_empty_parts_are_refused() {
        for bad in [".", "./", "./app.py", "a//b", "a/./b", "a/../a/b"] {
            assert_eq!(copy_kinds(bad), 1, "{bad}");
        }
        for good in ["app.py", "templates/", "src/app.py", ".env", "a..b"] {
            assert_eq!(copy_kinds(good), 0, "{good}");
        }
    }

    #[test]
    fn control_characters_and_noncharacters_are_found() {
        assert_eq!(bad_char("a\tb\nc é ✓ 😀"), None);
        for c in [
            '\0',
            '\r',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{9b}',
            '\u{fdd0}',
            '\u{fffe}',
            '\u{ffff}',
            '\u{1fffe}',
            '\u{10ffff}',
        ] {
            assert_eq!(
                bad_char(&format!("x{c}y")),
                Some(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn host_ports() {
        for ok in [
            "cas",
            "edge.scone-cas.cf",
            "127.0.0.1:8081",
            "[::1]",
            "[::1]:8081",
            "a-b.c:65535",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "", ":8081", "a:", "a:0", "a:65536", "a:+1", "-a", "a-", "a..b", "u@h", "a/b", "a b",
            "[::1", "[zz]", "[::1]x", "a:b:c",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn cas_urls() {
        let check = |url: &str| {
            let mut out = Vec::new();
            check_cas_url(
                &Located::new(url.to_string(), Pos::default()),
                Path::new("m"),
                &mut out,
            );
            out.is_empty()
        };
        for ok in [
            "edge.scone-cas.cf",
            "127.0.0.1:8081",
            "https://cas.example.com:8443",
            "HTTPS://cas/",
        ] {
            assert!(check(ok), "{ok}");
        }
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://u:p@cas",
            "http://cas",
            "cas/x",
            "ftp://cas",
            "https://",
            "cas\"\nx: 1",
        ] {
            assert!(!check(bad), "{bad}");
        }
        // Credentials are not repeated in the message.
        let mut out = Vec::new();
        let url = Located::new("https://user:s3cret@cas".to_string(), Pos::default());
        check_cas_url(&url, Path::new("m"), &mut out);
        assert!(!out[0].message.contains("s3cret"), "{}", out[0].message);
        assert!(
            out[0].message.contains("https://…@cas"),
            "{}",
            out[0].message
        );
    }
}
