//! The parse cache and the parallel prefetch through [`load`]: a cached load
//! gives what an uncached one does, and edits to manifests or to the files
//! validation looks at are never hidden by the cache.

use super::parse_cache::FILE_NAME;
use super::*;
use crate::workspace::LoadOptions;
use std::fs;

const MESH: &str = "apiVersion: scone/5.8\nkind: mesh\ncas:\n  - name: cas\n    cas_url: \"127.0.0.1:8081\"\npolicy:\n  namespace: m\nservices:\n  - name: a\n    image: r/a:1\n    manifest: a/service.yml\n  - name: b\n    image: r/b:1\n    manifest: b/service.yml\n";

fn service(name: &str, kind: &str) -> String {
    format!("apiVersion: scone/5.8\nkind: {kind}\nbuild:\n  name: {name}\n  kind: binary\n  from: scratch\n  to: r/{name}:1\n  pwd: /app\n  command: app main.cfg\n  copy: [main.cfg]\n")
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("mesh.yml"), MESH).unwrap();
    for name in ["a", "b"] {
        fs::create_dir_all(dir.path().join(name)).unwrap();
        fs::write(dir.path().join(name).join("main.cfg"), "x").unwrap();
        fs::write(
            dir.path().join(name).join("service.yml"),
            service(
                name,
                if name == "b" {
                    "genservice"
                } else {
                    "genImage"
                },
            ),
        )
        .unwrap();
    }
    dir
}

fn run(dir: &Path) -> Result<Workspace, Diagnostics> {
    load(&LoadOptions {
        files: vec![PathBuf::from("mesh.yml")],
        cwd: dir.to_path_buf(),
        target_dir: None,
    })
}

/// Everything a load decides, as text (the model has no `PartialEq`).
fn summary(ws: &Workspace) -> String {
    format!("{:?}\n{:?}\n{:?}", ws.services, ws.meshes, ws.warnings)
}

#[test]
fn a_cached_load_equals_an_uncached_one() {
    let dir = tree();
    let uncached = summary(&run(dir.path()).unwrap());
    assert!(
        !dir.path().join("target").exists(),
        "no build yet: nothing written"
    );
    let store = dir.path().join("target/.scone");
    fs::create_dir_all(&store).unwrap();
    let first = summary(&run(dir.path()).unwrap());
    assert!(store.join(FILE_NAME).is_file(), "the parses were saved");
    let written = fs::metadata(store.join(FILE_NAME))
        .unwrap()
        .modified()
        .unwrap();
    let cached = summary(&run(dir.path()).unwrap());
    assert_eq!(first, uncached);
    assert_eq!(cached, uncached);
    assert!(
        uncached.contains("`kind: genservice` is deprecated"),
        "{uncached}"
    );
    assert_eq!(
        fs::metadata(store.join(FILE_NAME))
            .unwrap()
            .modified()
            .unwrap(),
        written,
        "all hits: the cache is not rewritten"
    );
}

#[test]
fn an_edited_manifest_is_parsed_again() {
    let dir = tree();
    fs::create_dir_all(dir.path().join("target/.scone")).unwrap();
    run(dir.path()).unwrap();
    let file = dir.path().join("a/service.yml");
    fs::write(&file, service("a", "genImage").replace("r/a:1", "r/a:2")).unwrap();
    let ws = run(dir.path()).unwrap();
    assert_eq!(ws.services[0].manifest.build.to.value, "r/a:2");
    fs::write(
        &file,
        service("a", "genImage").replace("pwd: /app", "pwd: app"),
    )
    .unwrap();
    let err = run(dir.path()).unwrap_err();
    assert!(err.to_string().contains("build.pwd `app`"), "{err}");
}

#[test]
fn validation_sees_file_changes_the_cache_cannot() {
    let dir = tree();
    fs::create_dir_all(dir.path().join("target/.scone")).unwrap();
    run(dir.path()).unwrap();
    let cfg = dir.path().join("b/main.cfg");
    fs::remove_file(&cfg).unwrap();
    let err = run(dir.path()).unwrap_err();
    assert!(
        err.0.iter().any(|d| d.kind == ErrorKind::MissingFile
            && d.message.contains("copy path `main.cfg` does not exist")),
        "{err}"
    );
    fs::write(&cfg, "back").unwrap();
    run(dir.path()).unwrap();
}

#[test]
fn a_damaged_cache_file_gives_the_same_workspace() {
    let dir = tree();
    let store = dir.path().join("target/.scone");
    fs::create_dir_all(&store).unwrap();
    let good = summary(&run(dir.path()).unwrap());
    let path = store.join(FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    // Turn the cached `r/a:1` into `r/a:9`: refused by the checksum.
    let at = bytes.windows(5).position(|w| w == b"r/a:1").unwrap();
    bytes[at + 4] = b'9';
    fs::write(&path, &bytes).unwrap();
    assert_eq!(summary(&run(dir.path()).unwrap()), good);
    fs::write(&path, b"garbage").unwrap();
    assert_eq!(summary(&run(dir.path()).unwrap()), good);
    assert_ne!(fs::read(&path).unwrap(), b"garbage", "rewritten whole");
}

#[test]
fn a_manifest_named_through_a_folder_link_is_one_service() {
    let dir = tree();
    std::os::unix::fs::symlink("a", dir.path().join("alias")).unwrap();
    std::os::unix::fs::symlink("service.yml", dir.path().join("a/same.yml")).unwrap();
    let mesh = MESH.replace(
        "  - name: b\n",
        "  - name: a2\n    image: r/a:1\n    manifest: alias/service.yml\n  - name: a3\n    image: r/a:1\n    manifest: ./a/same.yml\n  - name: b\n",
    );
    fs::write(dir.path().join("mesh.yml"), mesh).unwrap();
    fs::create_dir_all(dir.path().join("target/.scone")).unwrap();
    for _ in 0..2 {
        let ws = run(dir.path()).unwrap();
        assert_eq!(ws.services.len(), 2, "{:?}", ws.services);
        let units: Vec<(&str, usize)> = ws.meshes[0]
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.unit))
            .collect();
        assert_eq!(units, [("a", 0), ("a2", 0), ("a3", 0), ("b", 1)]);
        assert_eq!(ws.services[0].dir, dir.path().join("a"));
    }
    fs::remove_file(dir.path().join("alias/main.cfg")).unwrap();
    let err = run(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("copy path `main.cfg` does not exist"),
        "{err}"
    );
}

#[test]
fn a_fixed_secret_value_is_never_cached_and_always_loaded() {
    let dir = tree();
    let store = dir.path().join("target/.scone");
    fs::create_dir_all(&store).unwrap();
    let file = dir.path().join("a/service.yml");
    let with_secret = service("a", "genImage").replace(
        "build:",
        "secrets:\n  local:\n    - name: db\n      kind: ascii\n      value: \"cacheMeNot-8642\"\nbuild:",
    );
    fs::write(&file, &with_secret).unwrap();
    for _ in 0..2 {
        let ws = run(dir.path()).unwrap();
        let a = &ws.services[ws.find_service("a").unwrap()].manifest;
        let value = a.secrets.local[0].value.as_ref().unwrap();
        assert_eq!(value.value.expose(), Some("cacheMeNot-8642"));
        assert!(!format!("{ws:?}").contains("cacheMeNot"), "Debug hides it");
        let cache = fs::read(store.join(FILE_NAME)).unwrap();
        assert!(!cache.windows(10).any(|w| w == b"cacheMeNot"));
    }
}
