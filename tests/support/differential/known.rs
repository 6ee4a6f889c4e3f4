//! The stale results the differential test found on `main` before the build-state
//! rewrite (issue 21, commit 4012f6a), kept as regression cases: the shrunk edit
//! lists, written out, and the random runs (seed, edit count, kinds) that first
//! showed them. Each failed on the code before the rewrite (9b29ce8) and replays
//! cleanly since; the cases of links in front of what scone reads through them
//! came later and name the commit that fixed them.

use super::edits::{Edit, How, KeyId, KeyRoute, Step, Store};

/// A shrunk edit list, replayed on the starting workspace (`Shape::SMALL`) of `seed`.
pub struct Case {
    /// What went wrong before the rewrite.
    pub what: &'static str,
    pub seed: u64,
    pub steps: Vec<Step>,
}

/// A random run that failed before the rewrite: `SCONE_DIFF_SEED`, `SCONE_DIFF_EDITS`,
/// `SCONE_DIFF_KINDS` (empty: all kinds) and what it showed.
pub const RUNS: &[(u64, usize, &str, &str)] = &[
    (
        13,
        1,
        "",
        "a removed service stays in target/ and scone.lock",
    ),
    (
        11,
        8,
        "add-service,add-mesh,members,edit-file,touch",
        "a mesh added under a `members` glob is not built",
    ),
    (
        61,
        4,
        "command,local-env,heap,copy-list,mesh-env,namespace,comment",
        "a renamed namespace leaves its old policy, chart and lock session",
    ),
    (
        92,
        9,
        "gitignore,decoy,touch,edit-file",
        "a new apps/.gitignore hiding an image-linked service's folder is not seen",
    ),
];

fn step(edit: Edit) -> Step {
    Step {
        kind: "known",
        edit,
        pause: true,
    }
}

fn s(text: &str) -> String {
    text.to_string()
}

/// The shrunk cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "removing a service (folder and mesh entry) leaves target/images/b1, \
                   target/enclave/b1 and [image.b1] in scone.lock",
            seed: 13,
            steps: vec![step(Edit::RemoveService {
                team: s("t1"),
                svc: s("s1"),
            })],
        },
        Case {
            what: "a new mesh folder matched by `members = [\"apps/*/mesh.yml\"]` is not \
                   seen: `0 built, N fresh` on the no-op fast path, nothing of it in target/",
            seed: 11,
            steps: vec![step(Edit::AddMesh {
                team: s("t10"),
                services: vec![(s("s11"), 11), (s("s12"), 12)],
                seed: 1,
            })],
        },
        Case {
            what: "a changed policy.namespace leaves target/policy/t1.yaml, target/helm/t1/ \
                   and [session.t1] in scone.lock",
            seed: 61,
            steps: vec![step(Edit::SetNamespace {
                team: s("t1"),
                namespace: s("t1-1"),
            })],
        },
        Case {
            what: "a second manifest building an image-linked service's image, added in a \
                   folder no longer ignored, is not seen (the build should fail: several \
                   manifests build that image); written by hand from the cause of the \
                   members case",
            seed: 5,
            steps: vec![
                step(Edit::Remove {
                    path: s("attic/old-b2-old"),
                }),
                step(Edit::SetIgnore {
                    path: s(".gitignore"),
                    lines: vec![s("*.tmp")],
                }),
                step(Edit::AddDecoy {
                    of: s("apps/t2/s4/service.yml"),
                    dir: s("attic/old-9"),
                }),
            ],
        },
        Case {
            what: "a new ignore file in a folder that holds no manifest (apps/.gitignore \
                   hiding an image-linked service's folder) is not seen (the build should \
                   fail: no manifest builds that image)",
            seed: 92,
            steps: vec![step(Edit::SetIgnore {
                path: s("apps/.gitignore"),
                lines: vec![s("t3/s6/")],
            })],
        },
        Case {
            what: "a signing key behind a folder link (keys/signing.pem -> current/key.pem, \
                   keys/current -> store-a) re-pointed at another key's folder keeps \
                   signing with the old key: the key was an input by its link's text \
                   (fixed by 0c55bdf)",
            seed: 5,
            steps: vec![
                step(Edit::KeyLink {
                    route: KeyRoute::Folder(Store::A),
                }),
                step(Edit::KeyLink {
                    route: KeyRoute::Folder(Store::B),
                }),
            ],
        },
        Case {
            what: "a signing key behind a link (keys/signing.pem -> store-a/key.pem) \
                   replaced in place by another key keeps signing with the old key \
                   (fixed by 0c55bdf)",
            seed: 5,
            steps: vec![
                step(Edit::KeyLink {
                    route: KeyRoute::Direct(Store::A),
                }),
                step(Edit::ReplaceKey { key: KeyId::B }),
            ],
        },
        Case {
            what: "the root .gitignore a link (to ignores/one/list, hiding attic/) and the \
                   file behind it edited to hide attic/ no longer is not seen (the build \
                   should fail: several manifests build an image-linked service's image); \
                   discovery watched the link alone (fixed by 5db8248)",
            seed: 5,
            steps: vec![
                step(Edit::IgnoreLink {
                    path: s(".gitignore"),
                    target: s("ignores/one/list"),
                }),
                step(Edit::WriteBehind {
                    path: s(".gitignore"),
                    lines: vec![s("*.tmp")],
                    how: How::InPlace,
                }),
            ],
        },
    ]
}
