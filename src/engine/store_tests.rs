//! The store's batch of copied files (`Store::ingest_copies`).

use std::fs;
use std::path::Path;

use super::Store;
use crate::engine::stat::hash_file;

fn digest_of(path: &Path) -> String {
    hash_file(path).expect("hash").0.to_hex().to_string()
}

/// Every file under the store's `blobs/`, temporary ones too.
fn blob_files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = walkdir::WalkDir::new(store.root().join("blobs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn copies_are_stored_together_and_a_stored_one_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("target"), Default::default()).unwrap();
    let sources: Vec<_> = (0..5)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            fs::write(&path, format!("file {i}\n").repeat(i * 1000)).unwrap();
            let digest = digest_of(&path);
            (path, digest)
        })
        .collect();
    let files: Vec<(&Path, &str)> = sources
        .iter()
        .map(|(p, d)| (p.as_path(), d.as_str()))
        .collect();
    store.ingest_copies(&files).expect("stored");
    for (path, digest) in &sources {
        assert_eq!(
            fs::read(store.blob_path(digest)).unwrap(),
            fs::read(path).unwrap()
        );
        assert!(store.blob_intact(digest));
    }
    let mut digests: Vec<String> = sources.iter().map(|(_, d)| d.clone()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(blob_files(&store), digests, "the blobs and nothing else");
    // Stored intact: the sources are not opened again (they are gone).
    for (path, _) in &sources {
        fs::remove_file(path).unwrap();
    }
    store.ingest_copies(&files).expect("nothing to read");
}

#[test]
fn a_file_that_changed_since_it_was_hashed_is_refused_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("target"), Default::default()).unwrap();
    let good = dir.path().join("good.py");
    fs::write(&good, "print(1)\n").unwrap();
    let moved = dir.path().join("moved.py");
    fs::write(&moved, "print(2)\n").unwrap();
    let hashed = digest_of(&moved);
    fs::write(&moved, "print(3)\n").unwrap();
    let good_digest = digest_of(&good);
    let err = store
        .ingest_copies(&[(&good, &good_digest), (&moved, &hashed)])
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains(&format!("{} changed during the build", moved.display())),
        "{err}"
    );
    assert!(blob_files(&store).is_empty(), "{:?}", blob_files(&store));
    // A FIFO put in a file's place is refused, never opened for reading
    // (which would wait for a writer).
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.as_ref().is_ok_and(|s| s.success()), "mkfifo: {made:?}");
    let err = store
        .ingest_copies(&[(&fifo, &good_digest)])
        .expect_err("refused");
    assert!(err.to_string().contains("is not a regular file"), "{err}");
}
