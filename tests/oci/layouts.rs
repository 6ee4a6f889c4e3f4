//! Layout-level checks: atomic rewrites and zstd layers.

use std::fs;
use std::process::Command;

use scone::oci::image::{build, ImageInput};
use scone::oci::layout::{read_layout, write_layout};
use scone::oci::rootfs;
use scone::oci::tar::Compression;

use super::fixture::{app_layer, build_layout, run, write_sources};

#[test]
fn rewriting_a_layout_replaces_it_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let layout = tmp.path().join("images/svc");
    let first = build_layout(&src, tmp.path(), &layout, None, "latest");
    fs::write(src.join("print_env.py"), "print('changed')\n").unwrap();
    let second = build_layout(&src, tmp.path(), &layout, None, "latest");
    assert_ne!(first, second);
    let image = read_layout(&layout, Some("latest")).unwrap();
    assert_eq!(image.manifest_digest, second);
    // Only the current image's blobs are in the layout: manifest, config, one layer.
    assert_eq!(
        fs::read_dir(layout.join("blobs/sha256")).unwrap().count(),
        3
    );
    let siblings: Vec<_> = fs::read_dir(tmp.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("svc")]);
}

#[test]
fn zstd_layers_are_valid_oci() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_sources(&src, 0o022);
    let blobs = tmp.path().join("blobs");
    let layer = app_layer(&src, &blobs, Compression::Zstd);
    assert_eq!(
        layer.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let layer_path = blobs
        .join("sha256")
        .join(layer.digest.trim_start_matches("sha256:"));
    let image = build(
        &ImageInput {
            layers: vec![layer.clone()],
            ..ImageInput::default()
        },
        0,
    )
    .unwrap();
    let layout = tmp.path().join("img");
    write_layout(
        &layout,
        &[(&layer_path, &layer.digest)],
        &image.manifest,
        &image.config,
        "zstd",
    )
    .unwrap();
    // Debian's umoci (0.4.7) does not know zstd layers: check with skopeo and our reader.
    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:zstd", layout.display())));
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], image.manifest_digest.as_str());
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:zstd", layout.display())));
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        rootfs::read_file(&[layer_path], "python/lib/data/config.txt")
            .unwrap()
            .as_deref(),
        Some(&b"answer=42\n"[..])
    );
}
