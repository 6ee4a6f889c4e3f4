//! Unit tests of `oci::base` (the base images and the user cache).

use super::*;

#[test]
fn parses_every_kind() {
    assert_eq!(BaseSpec::parse("scratch").unwrap(), BaseSpec::Scratch);
    assert_eq!(
        BaseSpec::parse("dir:/r").unwrap(),
        BaseSpec::Dir(PathBuf::from("/r"))
    );
    assert_eq!(
        BaseSpec::parse("oci:./img:v1").unwrap(),
        BaseSpec::Oci {
            dir: PathBuf::from("./img"),
            tag: Some("v1".into())
        }
    );
    assert_eq!(
        BaseSpec::parse("oci:img").unwrap(),
        BaseSpec::Oci {
            dir: PathBuf::from("img"),
            tag: None
        }
    );
    assert_eq!(
        BaseSpec::parse("docker-daemon:app:1").unwrap(),
        BaseSpec::DockerDaemon("app:1".into())
    );
    match BaseSpec::parse("python:3.11").unwrap() {
        BaseSpec::Registry(r) => assert_eq!(r.repository, "library/python"),
        other => panic!("{other:?}"),
    }
    assert!(BaseSpec::parse("dir:").is_err());
}

/// A shared user cache: another build's blob or layer key being written
/// now stays, whatever `--keep-days` (0 here) says; what a killed build
/// left an hour ago goes, as does an unused blob.
#[test]
fn gc_leaves_another_builds_writes_in_flight() {
    let cache = tempfile::tempdir().unwrap();
    let sha = cache.path().join("blobs/sha256");
    let layers = cache.path().join("dir-layers");
    std::fs::create_dir_all(&sha).unwrap();
    std::fs::create_dir_all(&layers).unwrap();
    let write = |path: &Path, age_s: i64| {
        std::fs::write(path, b"bytes").unwrap();
        let t =
            filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() - age_s, 0);
        filetime::set_file_mtime(path, t).unwrap();
    };
    let writing = sha.join(".blob.tmp-4242-1");
    let key_writing = layers.join(".key.json.tmp-4242-2");
    let left = sha.join(".blob.tmp-4141-1");
    let unused = sha.join("ab".repeat(32));
    write(&writing, 1);
    write(&key_writing, 1);
    write(&left, 2 * 3600);
    write(&unused, 2 * 3600);
    let cutoff = std::time::SystemTime::now();
    let gone = collect_user_cache(cache.path(), &Default::default(), cutoff).unwrap();
    assert!(writing.exists() && key_writing.exists(), "in flight: kept");
    assert!(
        !left.exists() && !unused.exists(),
        "left or unused: removed"
    );
    assert_eq!(
        gone,
        Collected {
            files: 2,
            bytes: 10
        }
    );
}
