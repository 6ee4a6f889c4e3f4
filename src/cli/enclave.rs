//! `scone enclave measure|sign|show`: sign enclaves by hand or in CI.

use clap::Subcommand;
use std::path::PathBuf;

/// Subcommands of `scone enclave`.
#[derive(Debug, Subcommand)]
pub enum EnclaveCommand {
    /// Print the MRENCLAVE of an .sgxs file.
    Measure {
        /// The .sgxs measurement stream.
        file: PathBuf,
    },
}

/// Runs one `scone enclave` subcommand; returns the process exit code.
pub fn run(cmd: &EnclaveCommand) -> anyhow::Result<i32> {
    match cmd {
        EnclaveCommand::Measure { .. } => anyhow::bail!("`scone enclave measure` is not implemented yet"),
    }
}
