//! Warnings for the fields SCONE publishes that scone accepts but does not
//! implement (docs/manifests.md, "Published forms"): each names the file, line,
//! column and field, and says what scone does instead. A manifest copied from
//! SCONE's tutorials thus passes `check`, and its author sees what is ignored.

use super::diag::{Diagnostic, ErrorKind};
use super::located::{Located, Pos};
use super::model::{Mesh, ServiceManifest, Unused, CAS_ROLES};
use super::suggest;
use std::path::Path;

fn warn(out: &mut Vec<Diagnostic>, file: &Path, pos: Pos, field: &str, instead: &str) {
    out.push(Diagnostic::warning(
        ErrorKind::Unimplemented,
        file,
        pos,
        format!("`{field}` is not implemented by scone and is ignored: {instead}"),
    ));
}

fn unused(
    out: &mut Vec<Diagnostic>,
    file: &Path,
    field: &Option<Located<Unused>>,
    name: &str,
    instead: &str,
) {
    if let Some(f) = field {
        warn(out, file, f.pos, name, instead);
    }
}

/// Warnings for a service manifest's published but unimplemented fields.
pub fn service(m: &ServiceManifest, out: &mut Vec<Diagnostic>) {
    let file = m.path.as_path();
    unused(
        out,
        file,
        &m.injection_files,
        "injection_files",
        "no file is injected; pass values through `environment`",
    );
    unused(
        out,
        file,
        &m.requirements,
        "requirements",
        "no packages are installed; use a `build.from` base image that has them",
    );
    let b = &m.build;
    unused(
        out,
        file,
        &b.requirements,
        "build.requirements",
        "no packages are installed; use a `build.from` base image that has them",
    );
    unused(
        out,
        file,
        &b.run,
        "build.run",
        "no command runs at build time; use a `build.from` base image that has its result",
    );
    unused(
        out,
        file,
        &b.stable,
        "build.stable",
        "the policy allows only this build's enclave",
    );
    for (field, name) in [
        (&b.host_paths, "build.host_paths"),
        (&b.host_path, "build.host_path"),
    ] {
        unused(
            out,
            file,
            field,
            name,
            "the enclave reads no host folder; `copy` the files into the image",
        );
    }
    if let Some(sign) = b.signature.as_ref().and_then(|s| s.sign.as_ref()) {
        if !sign.value {
            warn(
                out,
                file,
                sign.pos,
                "build.signature.sign: false",
                "scone always signs the enclave",
            );
        }
    }
    for s in m.secrets.global.iter().chain(&m.secrets.local) {
        for (field, name) in [
            (&s.private_key, "private_key"),
            (&s.issuer, "issuer"),
            (&s.dns, "dns"),
            (&s.common_name, "common_name"),
        ] {
            unused(
                out,
                file,
                field,
                &format!("secrets[{}].{name}", s.name.value),
                "the secret goes to CAS with its name, kind, size and value only",
            );
        }
    }
}

/// Warnings for a Meshfile's published but unimplemented fields, for `alias`
/// roles that are no CAS role, and for a `cas` entry that plays no role.
pub fn mesh(mesh: &Mesh, out: &mut Vec<Diagnostic>) {
    let file = mesh.path.as_path();
    for cas in &mesh.cas {
        for (field, name, instead) in [
            (
                &cas.cas_key,
                "cas_key",
                "the CAS is not attested by its key; scone trusts it by TLS (`--cas-ca`)",
            ),
            (
                &cas.cas_software_key,
                "cas_software_key",
                "the CAS is not attested by its key; scone trusts it by TLS (`--cas-ca`)",
            ),
            (
                &cas.cas_encryption_key,
                "cas_encryption_key",
                "the session is uploaded over TLS, not encrypted for the CAS",
            ),
            (
                &cas.tolerance,
                "tolerance",
                "the CAS is not attested; scone trusts it by TLS (`--cas-ca`)",
            ),
            (
                &cas.mode,
                "mode",
                "the session is uploaded over TLS as it is (neither encrypted nor signed)",
            ),
        ] {
            if let Some(v) = field {
                warn(
                    out,
                    file,
                    v.pos,
                    &format!("cas[{}].{name}", cas.name.value),
                    instead,
                );
            }
        }
        if let Some(alias) = &cas.alias {
            for role in alias.items() {
                if !CAS_ROLES.contains(&role.as_str()) {
                    let hint = suggest::did_you_mean(&role, CAS_ROLES.iter().copied())
                        .map(|b| format!(" (did you mean `{b}`?)"))
                        .unwrap_or_default();
                    out.push(Diagnostic::warning(
                        ErrorKind::CasRole,
                        file,
                        cas.name.pos,
                        format!(
                            "alias `{role}` of cas `{}` is no CAS role{hint}; the roles are {}",
                            cas.name.value,
                            CAS_ROLES.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    for (cas, roles) in mesh.cas.iter().zip(mesh.cas_roles()) {
        if roles.is_empty() {
            let why = if cas.alias.is_some() {
                "its `alias` names no role"
            } else {
                "only the first `cas` entry without `alias` gets the default alias"
            };
            out.push(
                Diagnostic::warning(
                    ErrorKind::CasRole,
                    file,
                    cas.name.pos,
                    format!("cas `{}` plays no role: {why}", cas.name.value),
                )
                .with_hint(format!(
                    "add `alias: [...]` with the roles it should play ({}), or remove the entry",
                    CAS_ROLES.join(", ")
                )),
            );
        }
    }
    let p = &mesh.policy;
    for (field, name) in [
        (&p.attestation_policy_name, "policy.attestation_policy_name"),
        (&p.access_policy_name, "policy.access_policy_name"),
        (&p.security_policy_name, "policy.security_policy_name"),
    ] {
        unused(
            out,
            file,
            field,
            name,
            "the session is the whole policy, named `policy.namespace`",
        );
    }
    unused(
        out,
        file,
        &mesh.helm,
        "helm",
        "the chart is written as generated; pass `--set` to `helm install`",
    );
    unused(
        out,
        file,
        &mesh.helm_extra_values,
        "helm_extra_values",
        "the chart is written as generated; pass `-f values.yaml` to `helm install`",
    );
    unused(
        out,
        file,
        &mesh.extra_policies,
        "extra_policies",
        "only the mesh's session is uploaded",
    );
    for svc in &mesh.services {
        unused(
            out,
            file,
            &svc.image_secrets,
            &format!("services[{}].image_secrets", svc.name.value),
            "declare the secrets in the service manifest's `secrets`",
        );
        unused(
            out,
            file,
            &svc.helm_extra_values,
            &format!("services[{}].helm_extra_values", svc.name.value),
            "the chart is written as generated; pass `-f values.yaml` to `helm install`",
        );
    }
}
