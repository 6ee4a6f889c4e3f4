//! Secret names across the services of one mesh. A mesh is one CAS session,
//! and a session holds one secret of a name (`plan::mesh` merges the
//! declarations by name), so two services declaring a secret of one name get
//! one value. For globals that is the sharing they declare; a local secret is
//! its service's own, and another service naming it would read it.

use super::diag::{Diagnostic, ErrorKind};
use super::link::Member;
use super::located::Located;
use super::model::{Mesh, Secret};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The first declaration of a secret name in a mesh.
struct First<'a> {
    service: &'a str,
    file: &'a Path,
    name: &'a Located<String>,
    local: bool,
    secret: &'a Secret,
}

/// What a declaration makes of a secret, as far as two of them must agree to
/// be one: its kind, its size, whether it has a fixed value (the value itself
/// is not compared: a manifest read from the parse cache withholds it).
fn shape(secret: &Secret) -> (&str, Option<u32>, bool) {
    (
        secret.kind.value.as_str(),
        secret.size.as_ref().map(|s| s.value),
        secret.value.is_some(),
    )
}

fn describe(secret: &Secret) -> String {
    let (kind, size, fixed) = shape(secret);
    let mut text = format!("kind `{kind}`");
    if let Some(size) = size {
        text.push_str(&format!(", size {size}"));
    }
    text.push_str(if fixed {
        ", a fixed value"
    } else {
        ", generated"
    });
    text
}

fn scope(local: bool) -> &'static str {
    if local {
        "local"
    } else {
        "global"
    }
}

/// Refuses (`duplicate-secret`, at the later declaration) a secret name that
/// two service manifests of `mesh` declare when either declares it local:
/// the session would hold one secret for both, so one service would read the
/// other's local secret (or, through a global of that name, every importer
/// would). Two globals of one name are one shared secret, as declared; a
/// manifest linked by several mesh services is one author's and is looked at
/// once. `shown` writes a manifest's path for the message, as the
/// diagnostic's own file is shown.
pub fn check_local_secrets(
    mesh: &Mesh,
    members: &[Member<'_>],
    shown: &dyn Fn(&Path) -> String,
    out: &mut Vec<Diagnostic>,
) {
    let mut first: HashMap<&str, First<'_>> = HashMap::new();
    let mut seen_files: HashSet<&Path> = HashSet::new();
    for member in members {
        let m = member.manifest;
        let file = m.path.as_path();
        if !seen_files.insert(file) {
            continue;
        }
        let secrets = &m.secrets;
        let decls = (secrets.global.iter().map(|s| (s, false)))
            .chain(secrets.local.iter().map(|s| (s, true)));
        for (secret, local) in decls {
            let name = &secret.name;
            let Some(earlier) = first.get(name.value.as_str()) else {
                first.insert(
                    name.value.as_str(),
                    First {
                        service: member.name,
                        file,
                        name,
                        local,
                        secret,
                    },
                );
                continue;
            };
            // One manifest declaring a name twice is `validate`'s
            // `duplicate-secret`; two globals are shared by design.
            if earlier.file == file {
                continue;
            }
            if !(local || earlier.local) {
                // One secret for both: the first declaration would win, and
                // the other service get what it did not declare.
                if shape(secret) != shape(earlier.secret) {
                    out.push(
                        Diagnostic::new(
                            ErrorKind::DuplicateSecret,
                            file,
                            name.pos,
                            format!(
                                "global secret `{}` of service `{}` ({}: {}) is declared otherwise by service `{}` ({}:{}: {}): mesh `{}` has one secret of a name, and it would be the first one's",
                                name.value,
                                member.name,
                                shown(file),
                                describe(secret),
                                earlier.service,
                                shown(earlier.file),
                                earlier.name.pos,
                                describe(earlier.secret),
                                mesh.policy.namespace.value,
                            ),
                        )
                        .with_hint(
                            "declare it the same way in both, or declare it in one and list it under `secrets.import` in the other",
                        ),
                    );
                }
                continue;
            }
            out.push(
                Diagnostic::new(
                    ErrorKind::DuplicateSecret,
                    file,
                    name.pos,
                    format!(
                        "{} secret `{}` of service `{}` ({}) has the name of the {} secret of service `{}` ({}:{}): mesh `{}` has one secret of a name, so both services would get the same value",
                        scope(local),
                        name.value,
                        member.name,
                        shown(file),
                        scope(earlier.local),
                        earlier.service,
                        shown(earlier.file),
                        earlier.name.pos,
                        mesh.policy.namespace.value,
                    ),
                )
                .with_hint(
                    "local secrets are per service: rename one; if both services should share it, \
                     declare it under `secrets.global` in one and list it under `secrets.import` in the other",
                ),
            );
        }
    }
}

/// Refuses (`invalid-value`, at the declaration that crosses the bound) a mesh
/// whose session would declare more than
/// [`MAX_SESSION_SECRET_BYTES`](crate::cas::secret::MAX_SESSION_SECRET_BYTES)
/// characters or bytes of generated (`ascii`, `binary`) secrets in all, which
/// the `policy` step refuses to render: counted as it counts them, one secret
/// per name (the first declaration in the Meshfile's order of services
/// decides, so a manifest linked by several services counts once), a missing
/// `size` as [`DEFAULT_SECRET_SIZE`](crate::cas::secret::DEFAULT_SECRET_SIZE).
/// A size past the per-secret maximum is refused by itself, and not counted.
pub fn check_session_secret_bytes(
    mesh: &Mesh,
    members: &[Member<'_>],
    shown: &dyn Fn(&Path) -> String,
    out: &mut Vec<Diagnostic>,
) {
    use crate::cas::secret::{
        is_generated, DEFAULT_SECRET_SIZE, MAX_SECRET_SIZE, MAX_SESSION_SECRET_BYTES,
    };
    let mut seen: HashSet<&str> = HashSet::new();
    let mut total: u64 = 0;
    let mut crossing: Option<(&Path, &Secret, &str)> = None;
    for member in members {
        let m = member.manifest;
        for secret in m.secrets.global.iter().chain(&m.secrets.local) {
            if !seen.insert(secret.name.value.as_str()) || !is_generated(&secret.kind.value) {
                continue;
            }
            let size = secret
                .size
                .as_ref()
                .map_or(DEFAULT_SECRET_SIZE, |s| s.value);
            if size > MAX_SECRET_SIZE {
                continue;
            }
            total += u64::from(size);
            if total > MAX_SESSION_SECRET_BYTES && crossing.is_none() {
                crossing = Some((m.path.as_path(), secret, member.name));
            }
        }
    }
    let Some((file, secret, service)) = crossing else {
        return;
    };
    let pos = secret.size.as_ref().map_or(secret.name.pos, |s| s.pos);
    out.push(
        Diagnostic::new(
            ErrorKind::InvalidValue,
            file,
            pos,
            format!(
                "mesh `{}` declares {total} characters or bytes of generated secrets in all, more than the maximum of {MAX_SESSION_SECRET_BYTES} of a CAS session; secret `{}` of service `{}` ({}) crosses it",
                mesh.policy.namespace.value,
                secret.name.value,
                service,
                shown(file),
            ),
        )
        .with_hint(
            "declare fewer or smaller generated secrets in this mesh (no `size` counts as 32); larger data belongs in a file",
        ),
    );
}
