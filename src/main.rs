//! The `scone` binary: parse arguments, call the library, render errors.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Enclave(cmd) => cli::enclave::run(cmd),
        Command::Cas(cmd) => cli::cas::run(cmd),
        _ => Err(anyhow::anyhow!("this command is not implemented yet")),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
