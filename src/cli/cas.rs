//! `scone cas serve`: the embedded local CAS over HTTPS with client certificates.

use clap::Subcommand;

/// Subcommands of `scone cas`.
#[derive(Debug, Subcommand)]
pub enum CasCommand {
    /// Serve the embedded local CAS over HTTPS (client certificates required).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
}

/// Runs one `scone cas` subcommand; returns the process exit code.
pub fn run(cmd: &CasCommand) -> anyhow::Result<i32> {
    match cmd {
        CasCommand::Serve { .. } => anyhow::bail!("`scone cas serve` is not implemented yet"),
    }
}
