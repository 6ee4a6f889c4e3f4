//! scone: a cargo-style build tool for confidential container meshes.
//!
//! Data flows one way: [`manifest`] → [`plan`] → [`engine`] → [`steps`] → outputs.
//! Manifests know nothing of the engine, the engine knows nothing of a step's
//! internals, and steps never call the CLI. See `docs/architecture.md`.

pub mod attest;
pub mod bounded;
pub mod cas;
pub mod cause;
pub mod dev;
pub mod draw;
pub mod durable;
pub mod engine;
pub mod helm;
pub mod link_chain;
pub mod lockfile;
pub mod manifest;
pub mod oci;
pub mod plan;
pub mod regular_file;
pub mod remote;
pub mod run;
pub mod sgx;
pub mod steps;
pub mod timings;
pub mod verify;
pub mod watch;
pub mod workspace;
