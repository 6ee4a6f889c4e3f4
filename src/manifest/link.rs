//! Rules across the manifests of one mesh: the Meshfile's `env` (both forms),
//! resolving each service's environment (own entry > `helm` > `global` / seed
//! form > the manifest's default), globals nobody defines, locals the mesh tries
//! to override, per-service blocks naming unknown services, and imports nobody
//! exports.

use super::diag::{Diagnostic, ErrorKind};
use super::located::{Located, Pos};
use super::model::{EnvVar, Mesh, ServiceManifest};
use super::secret_refs;
use super::suggest;
use super::validate::is_env_name;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Reserved per-service env targets.
pub const GLOBAL: &str = "global";
pub const HELM: &str = "helm";

/// Variables set in one scope of a Meshfile's `env`.
pub type EnvScope = BTreeMap<String, Located<String>>;

/// A Meshfile's `env`, by scope.
#[derive(Clone, Debug, Default)]
pub struct MeshEnv {
    /// The seed form (`{key|name, value}`) and `service: global` entries.
    pub global: EnvScope,
    /// `service: helm` entries.
    pub helm: EnvScope,
    /// `service: <svc>` entries, with where the `service:` was written.
    pub services: BTreeMap<String, (Pos, EnvScope)>,
    /// Whether the Meshfile uses the per-service form (for hints).
    pub per_service_form: bool,
}

fn insert(
    scope: &mut EnvScope,
    name: &Located<String>,
    value: Located<String>,
    file: &Path,
    out: &mut Vec<Diagnostic>,
) {
    if !is_env_name(&name.value) {
        out.push(
            Diagnostic::new(
                ErrorKind::InvalidValue,
                file,
                name.pos,
                format!("`{}` is not an environment variable name", name.value),
            )
            .with_hint("letters, digits and `_`, not starting with a digit"),
        );
    }
    if let Some(first) = scope.get(&name.value) {
        out.push(
            Diagnostic::new(
                ErrorKind::DuplicateEnv,
                file,
                name.pos,
                format!("`{}` is set twice in the same scope", name.value),
            )
            .with_hint(format!("first set at line {}", first.pos.line)),
        );
        return;
    }
    scope.insert(name.value.clone(), value);
}

fn vars_into(scope: &mut EnvScope, vars: &[EnvVar], file: &Path, out: &mut Vec<Diagnostic>) {
    for var in vars {
        match &var.value {
            Some(v) => insert(scope, &var.name, v.clone(), file, out),
            None => out.push(
                Diagnostic::new(
                    ErrorKind::MissingField,
                    file,
                    var.name.pos,
                    format!("`{}` has no value", var.name.value),
                )
                .with_hint(format!(
                    "write `- {{ name: {}, value: … }}`",
                    var.name.value
                )),
            ),
        }
    }
}

/// Reads a Meshfile's `env` into scopes, reporting malformed entries.
pub fn mesh_env(mesh: &Mesh, out: &mut Vec<Diagnostic>) -> MeshEnv {
    let file = mesh.path.as_path();
    let mut env = MeshEnv::default();
    for entry in &mesh.env {
        let seed_field = entry.key.as_ref().or(entry.name.as_ref());
        match (&entry.service, seed_field) {
            (Some(service), Some(field)) => out.push(
                Diagnostic::new(
                    ErrorKind::InvalidValue,
                    file,
                    field.pos,
                    "this env entry mixes the two forms",
                )
                .with_hint(format!(
                    "either `{{ name: {}, value: … }}` or `{{ service: {}, env: [ … ] }}`",
                    field.value, service.value
                )),
            ),
            (Some(service), None) => {
                env.per_service_form = true;
                let Some(vars) = &entry.env else {
                    out.push(
                        Diagnostic::new(
                            ErrorKind::MissingField,
                            file,
                            service.pos,
                            "missing required field `env`",
                        )
                        .with_hint(format!(
                            "`{{ service: {}, env: [ {{ name: X, value: … }} ] }}`",
                            service.value
                        )),
                    );
                    continue;
                };
                let scope = match service.value.as_str() {
                    GLOBAL => &mut env.global,
                    HELM => &mut env.helm,
                    other => {
                        &mut env
                            .services
                            .entry(other.to_string())
                            .or_insert_with(|| (service.pos, EnvScope::new()))
                            .1
                    }
                };
                vars_into(scope, vars, file, out);
            }
            (None, Some(field)) => {
                if let (Some(k), Some(n)) = (&entry.key, &entry.name) {
                    out.push(
                        Diagnostic::new(
                            ErrorKind::InvalidValue,
                            file,
                            n.pos,
                            format!("both `key: {}` and `name: {}`", k.value, n.value),
                        )
                        .with_hint("`key` is the old spelling of `name`: keep one"),
                    );
                    continue;
                }
                if entry.env.is_some() {
                    out.push(
                        Diagnostic::new(
                            ErrorKind::MissingField,
                            file,
                            field.pos,
                            "an entry with `env:` needs `service:`",
                        )
                        .with_hint("`{ service: global|helm|<service>, env: [ … ] }`"),
                    );
                    continue;
                }
                match &entry.value {
                    Some(v) => insert(&mut env.global, field, v.clone(), file, out),
                    None => out.push(
                        Diagnostic::new(
                            ErrorKind::MissingField,
                            file,
                            field.pos,
                            format!("`{}` has no value", field.value),
                        )
                        .with_hint(format!("add `value: …` below `name: {}`", field.value)),
                    ),
                }
            }
            (None, None) => {
                let pos = entry.value.as_ref().map(|v| v.pos).unwrap_or_default();
                out.push(
                    Diagnostic::new(ErrorKind::MissingField, file, pos, "this env entry has neither `name` nor `service`")
                        .with_hint("`{ name: X, value: … }` or `{ service: global|helm|<service>, env: [ … ] }`"),
                );
            }
        }
    }
    env
}

/// One mesh service linked to its manifest, as the rules below see it.
pub struct Member<'a> {
    pub name: &'a str,
    pub manifest: &'a ServiceManifest,
}

/// The environment CAS gives service `name`: its locals in order, then its
/// globals resolved. A global nobody defines is an UndefinedGlobal diagnostic
/// at the manifest's entry.
pub fn resolve_environment(
    mesh: &Mesh,
    env: &MeshEnv,
    member: &Member<'_>,
    out: &mut Vec<Diagnostic>,
) -> Vec<(String, String)> {
    let m = member.manifest;
    let own = env.services.get(member.name).map(|(_, s)| s);
    let mut resolved: Vec<(String, String)> = m.environment.locals();
    for g in &m.environment.global {
        let name = &g.name.value;
        let from_mesh = own
            .and_then(|s| s.get(name))
            .or_else(|| env.helm.get(name))
            .or_else(|| env.global.get(name));
        if let Some(v) = from_mesh {
            check_mesh_secret_refs(mesh, member, name, v, out);
        }
        match from_mesh.or(g.value.as_ref()) {
            Some(v) => resolved.push((name.clone(), v.value.clone())),
            None => out.push(
                Diagnostic::new(
                    ErrorKind::UndefinedGlobal,
                    &m.path,
                    g.name.pos,
                    format!(
                        "global `{name}` of service `{}` has no value in mesh `{}`",
                        member.name, mesh.policy.namespace.value
                    ),
                )
                .with_hint(undefined_hint(mesh, env, name)),
            ),
        }
    }
    resolved
}

/// A Meshfile value given to a service may reference only secrets that service
/// declares global or imports: the service author decides what their program
/// may see and where, the Meshfile author only wires it (docs/security.md). A
/// local secret is the service's own: the Meshfile may not route it (into a
/// global the program prints, say).
fn check_mesh_secret_refs(
    mesh: &Mesh,
    member: &Member<'_>,
    var: &str,
    value: &Located<String>,
    out: &mut Vec<Diagnostic>,
) {
    let secrets = &member.manifest.secrets;
    let manifest_file = || file_name(&member.manifest.path);
    let given: Vec<(&str, Option<&str>)> = secrets
        .global
        .iter()
        .map(|s| (s.name.value.as_str(), Some(s.kind.value.as_str())))
        .chain(secrets.import.iter().map(|s| (s.value.as_str(), None)))
        .collect();
    let kind_of = |name: &str| given.iter().find(|(n, _)| *n == name).map(|(_, k)| *k);
    for (secret, _) in secret_refs::secret_refs(&value.value) {
        // A secret given (or a part its kind has) resolves; an empty name,
        // or a part its kind has not, is invalid whatever is declared.
        let Err(problem) = secret_refs::resolve(secret, kind_of) else {
            continue;
        };
        if let Some(diagnostic) = secret_refs::invalid(&problem, secret, &mesh.path, value) {
            out.push(diagnostic);
            continue;
        }
        // `$$SCONE::cert.crt$$`: a part of certificate `cert`.
        let base = secret.rsplit_once('.').map_or(secret, |(b, _)| b);
        let local = |name: &str| secrets.local.iter().any(|s| s.name.value == name);
        if let Some(name) = [secret, base].into_iter().find(|n| local(n)) {
            out.push(
                Diagnostic::new(
                    ErrorKind::LocalOverride,
                    &mesh.path,
                    value.pos,
                    format!(
                        "`$$SCONE::{secret}` in the value of `{var}` is a local secret of service `{}`: \
                         a Meshfile value may reference only the secrets a service declares global or imports",
                        member.name
                    ),
                )
                .with_hint(format!(
                    "if the Meshfile should route it, declare `{name}` under `secrets.global` in {}; \
                     else leave it to the service's own `environment.local`",
                    manifest_file()
                )),
            );
            continue;
        }
        let hint = match suggest::did_you_mean(secret, given.iter().map(|(n, _)| *n)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!(
                "a Meshfile value may only reference the secrets of the service it is given to: \
                 declare (under `secrets.global`) or import `{secret}` in {}",
                manifest_file()
            ),
        };
        out.push(
            Diagnostic::new(
                ErrorKind::UndeclaredSecret,
                &mesh.path,
                value.pos,
                format!(
                    "`$$SCONE::{secret}` in the value of `{var}` is no secret of service `{}` (it neither declares nor imports it)",
                    member.name
                ),
            )
            .with_hint(hint),
        );
    }
}

/// The last part of `path`, as hints name a manifest.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn undefined_hint(mesh: &Mesh, env: &MeshEnv, name: &str) -> String {
    let file = file_name(&mesh.path);
    if env.per_service_form {
        format!("add to {file}:\n    env:\n      - service: global\n        env:\n          - name: {name}\n            value: …\n  or give it a default in the service manifest (`value:`)")
    } else {
        format!("add to {file}:\n    env:\n      - name: {name}\n        value: …\n  or give it a default in the service manifest (`value:`)")
    }
}

/// Cross-service checks of a mesh's `env` against its linked services:
/// unknown per-service targets, local overrides, and (as warnings) variables
/// no service declares global.
pub fn check_env(
    mesh: &Mesh,
    env: &MeshEnv,
    members: &[Member<'_>],
    out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    let file = mesh.path.as_path();
    let names: Vec<&str> = mesh
        .services
        .iter()
        .map(|s| s.name.value.as_str())
        .collect();
    let declares = |m: &ServiceManifest, local: bool, var: &str| {
        let list = if local {
            &m.environment.local
        } else {
            &m.environment.global
        };
        list.iter().any(|v| v.name.value == var)
    };
    // The first member of each name, as `members.iter().find` would give it
    // (a mesh of 1,000 services with an env block each was quadratic).
    let mut by_name: HashMap<&str, &Member<'_>> = HashMap::with_capacity(members.len());
    for m in members {
        by_name.entry(m.name).or_insert(m);
    }
    let known: HashSet<&str> = names.iter().copied().collect();
    for (target, (pos, scope)) in &env.services {
        let Some(&member) = by_name.get(target.as_str()) else {
            if !known.contains(target.as_str()) {
                let hint = suggest::hint(target, names.iter().copied().chain([GLOBAL, HELM]))
                    .unwrap_or_default();
                out.push(
                    Diagnostic::new(
                        ErrorKind::UnknownService,
                        file,
                        *pos,
                        format!("env block for unknown service `{target}`"),
                    )
                    .with_hint(hint),
                );
            }
            continue;
        };
        for (var, value) in scope {
            if declares(member.manifest, true, var) {
                out.push(local_override(file, value.pos, var, member));
            } else if !declares(member.manifest, false, var) {
                let globals = member
                    .manifest
                    .environment
                    .global
                    .iter()
                    .map(|v| v.name.value.as_str());
                warnings.push(
                    Diagnostic::warning(
                        ErrorKind::UnusedEnv,
                        file,
                        value.pos,
                        format!(
                            "mesh sets `{var}` for service `{target}`, which does not declare it global"
                        ),
                    )
                    .with_hint(unused_env_hint(var, globals)),
                );
            }
        }
    }
    if env.global.is_empty() && env.helm.is_empty() {
        return;
    }
    // Who declares what, once: the first member declaring a variable local.
    let mut global_somewhere: HashSet<&str> = HashSet::new();
    let mut first_local: HashMap<&str, &Member<'_>> = HashMap::new();
    for m in members {
        for v in &m.manifest.environment.global {
            global_somewhere.insert(v.name.value.as_str());
        }
        for v in &m.manifest.environment.local {
            first_local.entry(v.name.value.as_str()).or_insert(m);
        }
    }
    for (var, value) in &env.global {
        if global_somewhere.contains(var.as_str()) {
            continue;
        }
        match first_local.get(var.as_str()).copied() {
            Some(member) => out.push(local_override(file, value.pos, var, member)),
            None => warnings.push(
                Diagnostic::warning(
                    ErrorKind::UnusedEnv,
                    file,
                    value.pos,
                    format!("mesh sets `{var}`, which no service declares global"),
                )
                .with_hint(unused_env_hint(var, global_somewhere.iter().copied())),
            ),
        }
    }
    // `service: helm` values feed the services' globals as `service: global`
    // ones do (above them in precedence): one no service declares global is
    // read by nobody, and is warned of alike.
    for (var, value) in &env.helm {
        if global_somewhere.contains(var.as_str()) {
            continue;
        }
        let message =
            format!("mesh sets `{var}` under `service: helm`, which no service declares global");
        let warning = match first_local.get(var.as_str()) {
            Some(member) => Diagnostic {
                message: format!(
                    "{message} (service `{}` declares it local: the mesh cannot set it)",
                    member.name
                ),
                ..local_override(file, value.pos, var, member)
            },
            None => Diagnostic::new(ErrorKind::UnusedEnv, file, value.pos, message)
                .with_hint(unused_env_hint(var, global_somewhere.iter().copied())),
        };
        warnings.push(Diagnostic {
            level: super::diag::Level::Warning,
            kind: ErrorKind::UnusedEnv,
            ..warning
        });
    }
}

/// The hint of an env entry no service reads: the declared global it was
/// probably meant to be (a typo sets nothing, and the service starts with
/// its default), else what would make it read.
fn unused_env_hint<'a>(var: &str, declared: impl IntoIterator<Item = &'a str>) -> String {
    match super::suggest::did_you_mean(var, declared) {
        Some(meant) => format!("did you mean `{meant}`? (a service declares it global)"),
        None => format!(
            "nothing reads it: declare `{var}` in a service's `environment.global`, or remove this entry"
        ),
    }
}

fn local_override(file: &Path, pos: Pos, var: &str, member: &Member<'_>) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::LocalOverride,
        file,
        pos,
        format!(
            "`{var}` is local to service `{}`: the mesh cannot set it",
            member.name
        ),
    )
    .with_hint(format!(
        "remove this entry, or move `{var}` to `environment.global` in {}",
        file_name(&member.manifest.path)
    ))
}

/// Every imported secret must be exported (declared global) by some service of
/// the mesh.
pub fn check_imports(mesh: &Mesh, members: &[Member<'_>], out: &mut Vec<Diagnostic>) {
    let exported: Vec<&str> = members
        .iter()
        .flat_map(|m| {
            m.manifest
                .secrets
                .global
                .iter()
                .map(|s| s.name.value.as_str())
        })
        .collect();
    let exported_set: HashSet<&str> = exported.iter().copied().collect();
    let mut seen_files = std::collections::HashSet::new();
    for member in members {
        let m = member.manifest;
        if !seen_files.insert(&m.path) {
            continue;
        }
        for import in &m.secrets.import {
            if !exported_set.contains(import.value.as_str()) {
                let hint = match suggest::did_you_mean(&import.value, exported.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!(
                        "declare it under `secrets.global` of the service that owns it (mesh `{}`)",
                        mesh.policy.namespace.value
                    ),
                };
                out.push(
                    Diagnostic::new(
                        ErrorKind::UnexportedImport,
                        &m.path,
                        import.pos,
                        format!(
                            "imported secret `{}` is exported by no service of mesh `{}`",
                            import.value, mesh.policy.namespace.value
                        ),
                    )
                    .with_hint(hint),
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
