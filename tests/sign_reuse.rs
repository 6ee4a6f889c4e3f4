//! The sign step's memos (`src/steps/sign/memo.rs`, `reuse.rs`): an enclave, its
//! SIGSTRUCT and the entry binary's digests computed once and reused must give
//! exactly what a measurement from nothing gives, on the python hello-world, and a
//! damaged or removed memo is computed again.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{tree, Sandbox};

const SERVICE: &str = "python_hello_user";

fn build(sb: &Sandbox, dir: &Path) {
    sb.build_json(dir, &[]);
}

/// The published enclave files of the hello-world service.
fn enclave(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(&dir.join("target/enclave").join(SERVICE))
}

fn memo_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir.join("target/.scone/memo")) {
        Ok(entries) => entries.map(|e| e.expect("a memo entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn set_heap(dir: &Path, heap: &str) {
    let path = dir.join("service.yml");
    let manifest = std::fs::read_to_string(&path).expect("service.yml");
    let with_heap = manifest.replace(
        "  local:\n",
        &format!("  local:\n    - name: SCONE_HEAP\n      value: {heap}\n"),
    );
    assert_ne!(with_heap, manifest);
    std::fs::write(path, with_heap).expect("writing service.yml");
}

/// A fresh copy of hello-world with `print_env.py` and heap as given, built once
/// from nothing: what a memo must reproduce.
fn fresh(sb: &Sandbox, name: &str, script: &[u8], heap: Option<&str>) -> BTreeMap<String, Vec<u8>> {
    let dir = sb.hello_world(name);
    std::fs::write(dir.join("print_env.py"), script).expect("print_env.py");
    if let Some(heap) = heap {
        set_heap(&dir, heap);
    }
    build(sb, &dir);
    enclave(&dir)
}

#[test]
fn reused_measurements_are_byte_for_byte_what_a_fresh_measurement_gives() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("edited");
    build(&sb, &dir);
    let first = enclave(&dir);
    let kinds: Vec<String> = memo_files(&dir)
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .rsplit_once('-')
                .map(|(k, _)| k.to_string())
        })
        .collect();
    for kind in ["layer-index", "file", "enclave", "prefix", "sigstruct"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} memo: {kinds:?}");
    }

    // A source edit: the enclave and SIGSTRUCT come from the memos.
    std::fs::write(dir.join("print_env.py"), b"print('edited')\n").expect("edit");
    build(&sb, &dir);
    let edited = enclave(&dir);
    assert_eq!(edited, fresh(&sb, "fresh-edit", b"print('edited')\n", None));
    for same in ["enclave.sgxs", "mrenclave", "mrsigner", "sigstruct.bin"] {
        assert_eq!(edited[same], first[same], "{same} after a source edit");
    }
    assert_ne!(edited["fspf_tag"], first["fspf_tag"]);

    // Another heap of the same enclave size: a new enclave, whose first pages'
    // hash state comes from the memo of the 64M one.
    set_heap(&dir, "100M");
    build(&sb, &dir);
    let bigger = enclave(&dir);
    assert_ne!(bigger["mrenclave"], first["mrenclave"]);
    assert_eq!(
        bigger,
        fresh(&sb, "fresh-heap", b"print('edited')\n", Some("100M"))
    );
}

#[test]
fn damaged_or_collected_memos_are_computed_again() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    build(&sb, &dir);
    let expected = enclave(&dir);
    let memos = memo_files(&dir);
    assert!(!memos.is_empty(), "the build keeps memos");

    // Every memo damaged (one bit of its value): each reads as absent.
    for memo in &memos {
        let mut bytes = std::fs::read(memo).expect("memo");
        bytes[0] ^= 1;
        std::fs::write(memo, bytes).expect("damaging a memo");
    }
    std::fs::write(dir.join("print_env.py"), b"print('again')\n").expect("edit");
    build(&sb, &dir);
    let again = enclave(&dir);
    assert_eq!(again, fresh(&sb, "fresh", b"print('again')\n", None));
    assert_eq!(again["mrenclave"], expected["mrenclave"]);

    // `clean --gc` removes them; the next build measures anew, the same.
    sb.scone(&dir).args(["clean", "--gc"]).assert().success();
    assert!(memo_files(&dir).is_empty(), "gc leaves no memo");
    std::fs::write(dir.join("print_env.py"), b"print('hello')\n").expect("edit");
    build(&sb, &dir);
    assert_eq!(
        enclave(&dir),
        fresh(&sb, "fresh2", b"print('hello')\n", None)
    );
}
