//! Shared test support: the scone binary, fixture paths, and the real services the
//! tests start (registry, dockerd) and tools they call (skopeo, umoci, helm, ...).
#![allow(dead_code)]

pub mod dockerd;
pub mod monorepo;
pub mod registry;
pub mod tools;

use std::path::PathBuf;

/// The project root (where Cargo.toml is).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/` of this project.
pub fn fixtures() -> PathBuf {
    project_root().join("fixtures")
}

/// `../shared` beside the project (or `$SCONE_SHARED`): public test vectors.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("SCONE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => project_root().join("..").join("shared"),
    }
}

/// The `scone` binary under test.
pub fn scone() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("scone").expect("the scone binary is built");
    cmd.env_remove("SCONE_TARGET_DIR").env("NO_COLOR", "1");
    cmd
}
