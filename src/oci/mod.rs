//! OCI images: deterministic layers, image layouts, base images, registries, Docker.
//!
//! - [`tar`]: deterministic, compressed layer blobs from a list of entries.
//! - [`image`]: the OCI config and manifest over base layers plus ours.
//! - [`layout`]: OCI image layouts on disk (read and atomic write).
//! - [`base`]: base image references (`scratch`, `dir:`, `oci:`, `docker-daemon:`,
//!   registries) resolved to pinned digests and cached layers.
//! - [`registry`] + [`auth`] + [`reference`]: the OCI distribution API (pull and push).
//! - [`docker`]: loading a layout into a Docker-API engine (and exporting from one).
//! - [`rootfs`]: reading a file out of a stack of layers (whiteouts, symlinks).

pub mod auth;
pub mod base;
mod base_docker;
pub mod digest;
pub mod docker;
pub mod error;
pub mod image;
pub mod layout;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod rootfs;
pub mod tar;

pub use error::{OciError, Result};
