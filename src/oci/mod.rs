//! OCI images: deterministic layers, image layouts, base images, registries, Docker.
//!
//! - [`tar`]: deterministic, compressed layer blobs from a list of entries.
//! - [`image`]: the OCI config and manifest over base layers plus ours.
//! - [`layout`]: OCI image layouts on disk (read and atomic write).
//! - [`base`]: base image references (`scratch`, `dir:`, `oci:`, `docker-daemon:`,
//!   registries) resolved to pinned digests and cached layers.
//! - [`registry`] + [`auth`]: the OCI distribution API (pull and push).
//! - [`docker`]: loading a layout into a Docker-API engine (and exporting from one).
//! - [`rootfs`]: reading a file out of a stack of layers (whiteouts, symlinks).

pub mod digest;
pub mod error;
pub mod tar;

pub use error::{OciError, Result};
