//! `scone enclave` and the files it is given (probe 52 F1, F5): an output is
//! written whole (a new file renamed into place), so one that is no regular file,
//! a link, or an input of the command is refused and left as it was; an input
//! that is no regular file is refused before it is opened, and a big one is
//! never read whole. Everything here lives in a temporary folder: no test touches
//! a device or a system path.

mod support;

use std::path::{Path, PathBuf};

use predicates::prelude::*;

const HASH: &str = "c50673624a6cb17c1c6c2a4e6906f47a170c4629b8723781d1017ef376f1a75d";

fn sign(key: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = support::scone();
    cmd.args(["enclave", "sign", "--key"])
        .arg(key)
        .args(["--enclave-hash", HASH, "-o"])
        .arg(out);
    cmd
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .expect("still there")
        .file_type()
        .is_fifo()
}

#[test]
fn sign_refuses_an_output_that_is_no_regular_file_and_leaves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = support::sig1_key();
    // A FIFO (as a device would be: replaced, where it should receive the bytes).
    let fifo = d.join("out.fifo");
    support::mkfifo(&fifo);
    sign(&key, &fifo)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "out.fifo: is a FIFO, not a regular file",
        ));
    assert!(is_fifo(&fifo), "the FIFO is left as it was");
    // A link to one (as /dev/stdout is a link to the terminal or a pipe).
    let to_fifo = d.join("stdout");
    std::os::unix::fs::symlink(&fifo, &to_fifo).expect("link");
    sign(&key, &to_fifo)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("stdout: is a link to a FIFO"));
    assert!(std::fs::symlink_metadata(&to_fifo)
        .expect("link")
        .file_type()
        .is_symlink());
    // A link to a file: refused, the link and its target left as they were.
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "victim content").expect("write");
    let link = d.join("outlink");
    std::os::unix::fs::symlink(&victim, &link).expect("link");
    sign(&key, &link)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("outlink: is a symbolic link"))
        .stderr(predicate::str::contains("give the path it leads to"));
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&victim).expect("victim"), b"victim content");
    // A folder.
    let folder = d.join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    sign(&key, &folder)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a folder, not a regular file"));
    assert!(folder.is_dir());
    // Nothing else was left in the folder (no temp file).
    let mut names: Vec<_> = std::fs::read_dir(d)
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["folder", "out.fifo", "outlink", "stdout", "victim.txt"]
    );
    // A regular file is replaced, as before.
    let out = d.join("sig.bin");
    std::fs::write(&out, "old").expect("write");
    sign(&key, &out).assert().success();
    assert_eq!(std::fs::metadata(&out).expect("out").len(), 1808);
}

#[test]
fn sign_refuses_an_output_that_is_its_key_or_its_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = d.join("kcopy.pem");
    std::fs::copy(support::sig1_key(), &key).expect("copy");
    let before = std::fs::read(&key).expect("key");
    // The key itself, by another path, and by a hard link.
    let hard = d.join("khard.pem");
    std::fs::hard_link(&key, &hard).expect("hard link");
    for out in [key.clone(), d.join(".").join("kcopy.pem"), hard] {
        sign(&key, &out)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("is the same file as --key"));
        assert_eq!(std::fs::read(&key).expect("key"), before, "{out:?}");
    }
    // The .sgxs stream.
    let sgxs = d.join("e.sgxs");
    std::fs::copy(support::vectors().join("test_enclave.sgxs"), &sgxs).expect("copy");
    let stream = std::fs::read(&sgxs).expect("sgxs");
    support::scone()
        .args(["enclave", "sign", "--key"])
        .arg(&key)
        .arg("--sgxs")
        .arg(&sgxs)
        .arg("-o")
        .arg(&sgxs)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is the same file as --sgxs"));
    assert_eq!(std::fs::read(&sgxs).expect("sgxs"), stream);
}

/// Runs `args` with `input` a FIFO whose writer opens and closes it at once if
/// scone opens it (so a scone that reads it ends, with another message).
fn with_fifo_input(args: &[&str], extra: &[&str]) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("in.fifo");
    support::mkfifo(&fifo);
    let writer_fifo = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Blocks until a reader opens it; then ends the stream at once.
        drop(std::fs::OpenOptions::new().write(true).open(writer_fifo));
    });
    let assert = support::scone().args(args).arg(&fifo).args(extra).assert();
    // Let the writer go if scone never opened the FIFO.
    let release = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
    };
    writer.join().expect("writer");
    drop(release);
    assert
}

#[test]
fn measure_show_and_sign_refuse_a_fifo_before_opening_it() {
    let key = support::sig1_key();
    let key = key.to_str().expect("utf-8");
    let out: PathBuf = tempfile::tempdir().expect("tempdir").path().join("o.bin");
    let out = out.to_str().expect("utf-8");
    for (args, extra) in [
        (vec!["enclave", "measure"], vec![]),
        (vec!["enclave", "show"], vec![]),
        (
            vec!["enclave", "sign", "--key", key, "-o", out, "--sgxs"],
            vec![],
        ),
    ] {
        with_fifo_input(&args, &extra)
            .code(1)
            .stderr(predicate::str::contains(
                "in.fifo: is a FIFO, not a regular file",
            ));
    }
}

#[test]
fn show_and_measure_never_read_a_big_file_whole() {
    // A sparse 3 GiB file under a 1.5 GB address-space limit: read whole, it
    // ends in "out of memory"; `show` needs its size only, `measure` its first
    // record.
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(3 << 30))
        .expect("sparse file");
    let scone = assert_cmd::cargo::cargo_bin("scone");
    let limited = |sub: &str| {
        let mut cmd = assert_cmd::Command::new("sh");
        cmd.arg("-c")
            .arg("ulimit -v 1500000 && exec \"$0\" enclave \"$1\" \"$2\"")
            .arg(&scone)
            .arg(sub)
            .arg(&big);
        cmd
    };
    limited("show")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "a SIGSTRUCT is 1808 bytes, this one has 3221225472",
        ));
    limited("measure")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "invalid SGXS stream at byte 0: the stream does not start with ECREATE",
        ));
}
