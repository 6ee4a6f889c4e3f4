//! Checks of the values a build would refuse, made at `check` with the same
//! code the build uses, so a manifest mistake shows at its line before any
//! output is made: the `SCONE_*` enclave settings (the sign step), `build.to`
//! (the push step), `build.from` (the base step), copy paths with `.` or empty
//! components (the layer step), port protocols and clashes (the chart step) and
//! the Meshfile's chart `version` (SemVer, the chart step).

use super::diag::{Diagnostic, ErrorKind};
use super::located::Located;
use super::model::{Mesh, ServiceManifest};
use crate::oci::base::BaseSpec;
use crate::oci::reference::Reference;
use crate::sgx::layout::EnclaveSettings;
use crate::sgx::SgxError;
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
        if let Err(e) = Reference::parse(&to.value) {
            out.push(invalid(
                file,
                to,
                e.to_string(),
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
/// sign step reads them, each at its own value.
fn check_enclave_settings(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
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
}

/// A copy path is one the image layer can hold: no `.`, `..` or empty
/// components (`.`, `./x`, `a//b`); `copy: [.]` would copy the manifest's own
/// folder, `target/` included.
fn check_copy_components(entry: &Located<String>, file: &Path, out: &mut Vec<Diagnostic>) {
    let raw = entry.value.as_str();
    if raw.trim().is_empty() || raw.starts_with('/') {
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
        let clash = seen.iter().find(|(n, port, proto)| {
            *n == p.name.value || (*port == p.port.value && *proto == protocol)
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
}
