//! The workspace an edit sequence starts from: a pure function of the seed and the
//! [`Shape`] (the tree is drawn in the doc of [`super`]).

use super::layout::{image, ConfigDoc, MeshDoc, MeshEntry, ServiceDoc};
use super::{Rng, Shape};
use crate::support::monorepo::{minimal_elf, write_file, APP_PATH};
use std::path::Path;

/// The workspace's signing key, relative to the root.
pub const KEY_PATH: &str = "keys/signing.pem";

/// The folder link a `key-link` edit may put on the way to the key: `keys/current`
/// -> `store-a` or `store-b` (each holding a `key.pem`), with [`KEY_PATH`] ->
/// `current/key.pem`.
pub const KEY_FOLDER: &str = "keys/current";

/// The ignore lists an `ignore-link` edit links ignore files to: `ignores/one/list`
/// and `ignores/two/list` (written when missing), at times through the folder link
/// [`IGNORE_FOLDER`].
pub const IGNORE_LISTS: &[&str] = &["one", "two"];

/// The folder link to one of the ignore lists' folders: `ignores/current` -> `one`
/// or `two`.
pub const IGNORE_FOLDER: &str = "ignores/current";

/// The `members` of `scone.toml` at the start.
pub const MEMBERS: &str = "apps/*/mesh.yml";

/// The `[base] binary` of `scone.toml`: services without `build.from` use it.
pub const BASE: &str = "dir:base";

/// `build.from` of a service at `apps/<team>/<svc>/`.
pub const FROM_APPS: &str = "dir:../../../base";

/// A service's manifest: build.name `b<id>`, image `<team>/<svc>`, copying
/// `main.cfg` and `lib`; every other service names its base itself.
pub fn service(team: &str, svc: &str, id: usize, heap: &str) -> ServiceDoc {
    ServiceDoc {
        locals: vec![
            ("SERVICE_ID".into(), format!("{team}-{svc}")),
            ("SCONE_HEAP".into(), heap.into()),
        ],
        globals: vec![
            ("LOG_LEVEL".into(), None),
            ("REGION".into(), Some("eu".into())),
        ],
        name: format!("b{id}"),
        from: id.is_multiple_of(2).then(|| FROM_APPS.to_string()),
        to: image(team, svc),
        command: "app main.cfg".into(),
        copy: vec!["main.cfg".into(), "lib".into()],
        comments: Vec::new(),
    }
}

/// Writes a service folder: the manifest and the files it copies (and one it does not).
pub fn write_service(dir: &Path, doc: &ServiceDoc, rng: &mut Rng) -> std::io::Result<()> {
    write_file(&dir.join("service.yml"), doc.render().as_bytes(), 0o644)?;
    let size = 40 + rng.below(200);
    write_file(&dir.join("main.cfg"), &rng.text(size), 0o644)?;
    let size = 40 + rng.below(200);
    write_file(&dir.join("lib/a.txt"), &rng.text(size), 0o644)?;
    let size = 40 + rng.below(200);
    write_file(&dir.join("lib/sub/b.txt"), &rng.text(size), 0o755)?;
    write_file(&dir.join("notes.md"), b"not copied\n", 0o644)
}

/// A Meshfile for `team` over `entries`, LOG_LEVEL set.
pub fn mesh(team: &str, entries: Vec<MeshEntry>) -> MeshDoc {
    MeshDoc {
        namespace: team.to_string(),
        env: vec![("LOG_LEVEL".into(), "info".into())],
        services: entries,
        comments: Vec::new(),
    }
}

/// The mesh entry of service `svc`: every other one linked by `manifest:`.
pub fn entry(team: &str, svc: &str, by_manifest: bool) -> MeshEntry {
    MeshEntry {
        name: svc.to_string(),
        image: image(team, svc),
        manifest: by_manifest.then(|| format!("{svc}/service.yml")),
    }
}

/// Writes the starting workspace into `root` (created; must not exist or be empty).
/// The signing key is the public sig1 test key.
pub fn write(root: &Path, seed: u64, shape: Shape) -> std::io::Result<()> {
    let mut rng = Rng::new(seed ^ 0x1a17_1a17);
    let config = ConfigDoc {
        members: vec![MEMBERS.into()],
        base: Some(BASE.into()),
        key: Some(KEY_PATH.into()),
        comments: Vec::new(),
    };
    write_file(&root.join("scone.toml"), config.render().as_bytes(), 0o644)?;
    write_file(
        &root.join(KEY_PATH),
        &std::fs::read(crate::support::sig1_key())?,
        0o600,
    )?;
    write_file(&root.join("base").join(APP_PATH), &minimal_elf(), 0o755)?;
    write_file(&root.join("base/etc/motd"), b"welcome\n", 0o644)?;

    let mut id = 0;
    let mut decoy = None;
    for t in 1..=shape.meshes {
        let team = format!("t{t}");
        let mut entries = Vec::new();
        for _ in 0..shape.services {
            id += 1;
            let svc = format!("s{id}");
            let heap = rng.pick(&["1M", "2M", "4M"]).to_string();
            let doc = service(&team, &svc, id, &heap);
            write_service(&root.join("apps").join(&team).join(&svc), &doc, &mut rng)?;
            let by_manifest = !id.is_multiple_of(2);
            if !by_manifest && decoy.is_none() {
                decoy = Some(doc.clone());
            }
            entries.push(entry(&team, &svc, by_manifest));
        }
        let doc = mesh(&team, entries);
        write_file(
            &root.join("apps").join(&team).join("mesh.yml"),
            doc.render().as_bytes(),
            0o644,
        )?;
    }

    id += 1;
    let mut solo = service("solo", "tool", id, "1M");
    solo.from = Some("dir:../../base".into());
    solo.globals.clear();
    write_service(&root.join("solo/tool"), &solo, &mut rng)?;

    if let Some(mut doc) = decoy {
        doc.name = format!("{}-old", doc.name);
        doc.from = Some("dir:../../base".into());
        let dir = root.join("attic").join(format!("old-{}", doc.name));
        write_service(&dir, &doc, &mut rng)?;
    }
    write_file(&root.join(".gitignore"), b"attic/\n", 0o644)
}
