//! The fspf tag protects the image's whole file system, not only the service's
//! own files: checked against an independent reading of the image (`umoci
//! unpack`, the tag recomputed here from the unpacked folder by the format
//! docs/enclave.md gives), and against the attack it closes — the base's
//! `sitecustomize.py` changed in a re-packed image, which the interpreter runs
//! at start-up while MRENCLAVE (the interpreter's) stays the same.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use support::{messages, tools, Sandbox};

const SERVICE: &str = "python_hello_user";
/// The name the layout gives the image (umoci's tag).
const TAG: &str = "registry.scontain.com:5050/cicd/python_hello_user:latest";

/// `umoci ARGS`, which must succeed.
fn umoci(args: &[&str], paths: &[&Path]) {
    let out = tools::umoci().args(args).args(paths).output().unwrap();
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The image at `layout`, unpacked into `bundle` by umoci.
fn unpack(layout: &Path, bundle: &Path) {
    let image = format!("{}:{TAG}", layout.display());
    umoci(&["unpack", "--rootless", "--image", &image], &[bundle]);
}

/// "scone fspf v2" of the folder `root`, written from the documentation: one
/// line per file, link and special file, sorted by path bytes; folders are
/// not entries.
fn tag_of_folder(root: &Path) -> String {
    let mut lines: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = format!("/{}", path.strip_prefix(root).unwrap().display());
            let mode = meta.mode() & 0o7777;
            let kind = meta.file_type();
            let line = if kind.is_dir() {
                pending.push(path);
                continue;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                let target = target.to_str().unwrap();
                format!("link {}:{target} {}:{name}\n", target.len(), name.len())
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                format!(
                    "{} {mode:04o} {} {}:{name}\n",
                    hex::encode(Sha256::digest(&bytes)),
                    bytes.len(),
                    name.len()
                )
            } else {
                assert!(kind.is_fifo() || kind.is_char_device() || kind.is_block_device());
                panic!("the example's image has no special files: {name}");
            };
            lines.insert(name.into_bytes(), line.into_bytes());
        }
    }
    let mut text = b"scone fspf v2\n".to_vec();
    for line in lines.values() {
        text.extend_from_slice(line);
    }
    hex::encode(Sha256::digest(&text))
}

fn built_tag(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("target/enclave").join(SERVICE).join("fspf_tag"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_tag_is_the_whole_file_system_of_the_image_as_umoci_unpacks_it() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = sb.scone(&dir).args(["build", "-q"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = sb.path().join("bundle");
    unpack(&dir.join("target/images").join(SERVICE), &bundle);
    let rootfs = bundle.join("rootfs");
    // The base's files are there to be protected, not only the service's.
    assert!(rootfs.join("etc/python3.11/sitecustomize.py").is_file());
    assert!(rootfs.join("python/print_env.py").is_file());
    assert_eq!(tag_of_folder(&rootfs), built_tag(&dir));
}

#[test]
fn a_base_file_changed_in_a_repacked_image_fails_verify_against_the_session() {
    let sb = Sandbox::new();
    let dir = sb.hello_world("hw");
    let out = sb.scone(&dir).args(["apply", "-q"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = |layout: &Path| {
        let out = sb
            .scone(&dir)
            .args([
                "verify",
                "--message-format",
                "json",
                "--session",
                "cas:myPythonApp",
            ])
            .arg("--image")
            .arg(format!("oci:{}", layout.display()))
            .arg("--sigstruct")
            .arg(
                dir.join("target/enclave")
                    .join(SERVICE)
                    .join("sigstruct.bin"),
            )
            .output()
            .unwrap();
        let failed: Vec<String> = messages(&out.stdout)
            .iter()
            .filter(|m| m["reason"] == "verify-check" && m["ok"] == false)
            .map(|m| m["field"].as_str().unwrap().to_string())
            .collect();
        (out.status.code(), failed)
    };
    let built = dir.join("target/images").join(SERVICE);
    assert_eq!(verify(&built), (Some(0), Vec::new()), "the image as built");

    // Someone who runs the image adds two lines to the base's
    // sitecustomize.py (imported by the interpreter at start-up) and packs it
    // again as a layer of its own: the interpreter, and so MRENCLAVE, stay.
    let tampered = sb.path().join("tampered");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&built)
        .arg(&tampered)
        .status()
        .unwrap();
    assert!(copied.success());
    let bundle = sb.path().join("bundle");
    unpack(&tampered, &bundle);
    let site = bundle.join("rootfs/etc/python3.11/sitecustomize.py");
    let held = std::fs::read_to_string(&site).unwrap();
    std::fs::write(
        &site,
        format!("{held}import os\nprint(os.environ.get('API_PASSWORD'))\n"),
    )
    .unwrap();
    let image = format!("{}:{TAG}", tampered.display());
    umoci(&["repack", "--image", &image], &[&bundle]);

    let (code, failed) = verify(&tampered);
    assert_eq!(code, Some(1), "{failed:?}");
    assert!(failed.contains(&"fspf tag".to_string()), "{failed:?}");
    assert!(!failed.contains(&"MRENCLAVE".to_string()), "{failed:?}");
}
