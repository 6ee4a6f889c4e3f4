//! Generates a synthetic monorepo (service manifests, Meshfiles, copied files, a tiny
//! base rootfs and an equivalent `build.ninja`) for scale tests and the no-op benchmark:
//!
//! ```text
//! cargo run --example gen-monorepo -- --services 1000 [--meshes 2] [--files 3] [--file-size 512]
//!     [--link manifest|image|members] DIR
//! ```
//!
//! The generator itself is `tests/support/monorepo.rs`, shared with the tests.

#[allow(dead_code)]
#[path = "../tests/support/monorepo.rs"]
mod monorepo;

use clap::Parser;
use monorepo::MonorepoOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate a synthetic scone monorepo.
#[derive(Debug, Parser)]
#[command(name = "gen-monorepo")]
struct Args {
    /// Number of services (1..=10000).
    #[arg(long, default_value_t = 10)]
    services: usize,
    /// Number of meshes the services are split into.
    #[arg(long, default_value_t = 1)]
    meshes: usize,
    /// Files under each service's lib/ (besides main.cfg).
    #[arg(long, default_value_t = 3)]
    files: usize,
    /// Size in bytes of each copied file.
    #[arg(long, default_value_t = 512)]
    file_size: usize,
    /// How Meshfiles find service manifests: `manifest` (a path per service),
    /// `image` (scone searches the tree by `build.to`), `members` (as
    /// `image`, and the Meshfiles are scone.toml members: no `-f` needed).
    #[arg(long, default_value = "manifest", value_parser = ["manifest", "image", "members"])]
    link: String,
    /// Where to write it (created; must be new or empty).
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = MonorepoOptions {
        services: args.services,
        meshes: args.meshes,
        files_per_service: args.files,
        file_size: args.file_size,
        link: match args.link.as_str() {
            "image" => monorepo::Link::Image,
            "members" => monorepo::Link::Members,
            _ => monorepo::Link::Manifest,
        },
    };
    let repo = match monorepo::try_generate(&args.dir, opts) {
        Ok(repo) => repo,
        Err(err) => {
            eprintln!(
                "error: cannot generate a monorepo in {}: {err}",
                args.dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "generated {} services in {} mesh(es) under {}",
        repo.services.len(),
        repo.meshfiles.len(),
        repo.root.display()
    );
    for meshfile in &repo.meshfiles {
        println!("{}", meshfile.display());
    }
    ExitCode::SUCCESS
}
