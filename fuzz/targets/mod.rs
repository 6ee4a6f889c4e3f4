//! The fuzz targets of scone, shared by the AFL++ entry points (`fuzz/src/bin/`)
//! and the normal test suite (`tests/fuzz.rs` replays `fixtures/fuzz/`). Each
//! `run(data)` must return for every input; a panic is a bug (bad input is an
//! error, never a panic), and so is a broken round trip, which the targets check
//! with assertions.

pub mod manifest;
pub mod oci;
pub mod request;
pub mod session;
pub mod yaml;

/// A target: it takes any bytes and panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, as `scripts/fuzz.sh` and `fixtures/fuzz/<name>/` name them.
pub const TARGETS: [(&str, Target); 4] = [
    ("manifest", manifest::run),
    ("session", session::run),
    ("request", request::run),
    ("oci", oci::run),
];

/// A scratch folder for one run: in memory (`/dev/shm`) when there is one, so
/// the targets that write files are not slowed down by the disk.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let made = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("scone-fuzz")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("scone-fuzz").tempdir()
    };
    made.expect("a scratch folder")
}
