//! Shared fixtures of the OCI tests: the seed's hello-world sources, an app layer
//! staged under `/python`, image layouts built with the library, the python rootfs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use scone::oci::base::{BaseContext, BaseImage};
use scone::oci::image::{build, ImageInput};
use scone::oci::layout::write_layout;
use scone::oci::tar::{entries_from_dir, write_layer, Compression, LayerBlob, ModePolicy};

/// print_env.py of the seed (docs: seed/scone-mesh-example.md).
pub const PRINT_ENV: &str = r#"import os

# Get some environment variables
API_USER = os.getenv('API_USER')
API_PASSWORD = os.environ.get('API_PASSWORD')

# Exit with error if one is not defined
if API_USER == None or API_PASSWORD == None:
    print("Not all required environment variables are defined!")
    exit(1)

# Print API_USER - this is - unlike the API_PASSWORD - not confidential
print(f"Hello '{API_USER}' - thanks for passing along the API_PASSWORD")
"#;

pub const HELLO: &str = "Hello 'myself' - thanks for passing along the API_PASSWORD";

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write the hello-world sources into `dir` with the modes a given umask would give.
pub fn write_sources(dir: &Path, umask: u32) {
    fs::create_dir_all(dir.join("lib/data")).unwrap();
    fs::write(dir.join("print_env.py"), PRINT_ENV).unwrap();
    fs::write(dir.join("run.sh"), "#!/bin/sh\nexec python3 print_env.py\n").unwrap();
    fs::write(dir.join("lib/data/config.txt"), "answer=42\n").unwrap();
    for (file, mode) in [
        ("print_env.py", 0o666),
        ("run.sh", 0o777),
        ("lib/data/config.txt", 0o666),
    ] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode & !umask)).unwrap();
    }
    for d in ["lib", "lib/data"] {
        fs::set_permissions(dir.join(d), fs::Permissions::from_mode(0o777 & !umask)).unwrap();
    }
}

/// The app layer: the sources staged under `/python` (the seed's `pwd`).
pub fn app_layer(sources: &Path, blobs: &Path, compression: Compression) -> LayerBlob {
    let entries = entries_from_dir(sources, "python", ModePolicy::Normalize).unwrap();
    write_layer(&entries, 0, compression, blobs).unwrap()
}

pub fn hello_input<'a>(base: Option<&'a BaseImage>, layer: LayerBlob) -> ImageInput<'a> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.scontain.source.print_env.py".to_string(),
        "blake3:test".to_string(),
    );
    ImageInput {
        base,
        layers: vec![layer],
        env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
        working_dir: Some("/python".into()),
        entrypoint: vec!["python3".into(), "print_env.py".into()],
        cmd: vec![],
        labels,
    }
}

/// Build an image layout at `out` from sources in `sources`; returns the manifest digest.
pub fn build_layout(
    sources: &Path,
    work: &Path,
    out: &Path,
    base: Option<&BaseImage>,
    tag: &str,
) -> String {
    let blobs_dir = work.join("blobs");
    let layer = app_layer(sources, &blobs_dir, Compression::Gzip);
    let layer_path = blobs_dir
        .join("sha256")
        .join(layer.digest.trim_start_matches("sha256:"));
    let input = hello_input(base, layer.clone());
    let image = build(&input, 0).unwrap();
    let mut blobs: Vec<(&Path, &str)> = base.map(|b| b.blobs()).unwrap_or_default();
    blobs.push((&layer_path, &layer.digest));
    write_layout(out, &blobs, &image.manifest, &image.config, tag).unwrap();
    image.manifest_digest
}

pub fn ctx(cache: &Path) -> BaseContext {
    BaseContext {
        cache_dir: cache.to_path_buf(),
        ..BaseContext::default()
    }
}

/// A python3 rootfs made from Debian packages (once per test process).
pub fn python_rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-rootfs");
            run(
                Command::new(crate::support::project_root().join("scripts/python-rootfs.sh"))
                    .arg(&out),
            );
            out
        })
        .clone()
}
