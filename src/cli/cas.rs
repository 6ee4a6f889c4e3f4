//! `scone cas …`: serve the embedded local CAS over HTTPS, show the client
//! identity used for remote CAS, and inspect a session of the local CAS.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;
use scone::cas::local::{default_dir, LocalCas};
use scone::cas::serve::{log, serve, Limits, DEFAULT_MAX_CONNECTIONS};
use scone::cas::tls::{default_config_dir, ClientIdentity};
use scone::cas::Cas as _;

/// Subcommands of `scone cas`.
#[derive(Debug, Subcommand)]
pub enum CasCommand {
    /// Serve the embedded local CAS over HTTPS (client certificates required).
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// The CAS directory to serve (default: $SCONE_CAS_DIR, else the user data dir).
        #[arg(long, value_name = "DIR")]
        cas_dir: Option<PathBuf>,
        /// Extra DNS name or address for the server certificate (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Connections kept open at once; past it a new connection closes the
        /// oldest idle one (lowered to fit the open-files limit).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS as u32,
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_connections: u32,
    },
    /// Show (creating on first use) the client certificate used with a remote CAS.
    Identity,
    /// Show the current hash, chain, project, owning client certificate and YAML of a
    /// session in the local CAS.
    Session {
        /// The session name (the mesh's `policy.namespace`).
        name: String,
        /// The CAS directory (default: $SCONE_CAS_DIR, else the user data dir).
        #[arg(long, value_name = "DIR")]
        cas_dir: Option<PathBuf>,
    },
}

fn cas_dir(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.clone()),
        None => Ok(default_dir()?),
    }
}

/// Runs one `scone cas` subcommand; returns the process exit code.
pub fn run(cmd: &CasCommand) -> anyhow::Result<i32> {
    match cmd {
        CasCommand::Serve {
            listen,
            cas_dir: dir,
            hosts,
            max_connections,
        } => {
            let addr = *listen;
            // A folder given here is refused naming this flag (the error
            // of the library names SCONE_CAS_DIR, what the others read).
            if let Some(given) = dir {
                if let Err(scone::cas::CasError::NotCasDir { dir, detail }) =
                    scone::cas::local::check_dir(given)
                {
                    anyhow::bail!(
                        "the local CAS dir {} {detail}: scone keeps sessions and their secrets \
                         in a folder of its own, and changes no other; give --cas-dir a new or \
                         empty folder, or a local CAS",
                        dir.display()
                    );
                }
            }
            let dir = cas_dir(dir)?;
            let limits = Limits {
                max_connections: *max_connections as usize,
                ..Limits::default()
            };
            serve(addr, &dir, hosts, limits, |info| {
                log(format_args!(
                    "     Serving local CAS {} on https://{}",
                    info.cas_dir.display(),
                    info.addr
                ));
                log(format_args!(
                    "      Limits {} connections, sessions up to {} bytes (docs/cas.md)",
                    info.limits.max_connections, info.limits.max_body_bytes
                ));
                log(format_args!(
                    "  CA certificate {} (clients trust this file)",
                    info.ca_cert_path.display()
                ));
                log(format_args!("       Stopping with Ctrl-C"));
            })?;
            Ok(0)
        }
        CasCommand::Identity => {
            let dir = default_config_dir()?;
            let identity = ClientIdentity::load_or_create(&dir)?;
            println!("certificate: {}", dir.join("client.crt").display());
            println!("key:         {}", dir.join("client.key").display());
            println!("fingerprint: {}", identity.fingerprint()?);
            Ok(0)
        }
        CasCommand::Session { name, cas_dir: dir } => {
            // A reader: makes and changes nothing in the folder.
            let dir = cas_dir(dir)?;
            let cas = LocalCas::open(&dir)?;
            let Some(record) = cas.session(name)? else {
                if !cas.exists() {
                    anyhow::bail!(
                        "the local CAS has no session `{name}`: there is no local CAS in {} \
                         (no `sessions/` folder; `scone apply` makes one)",
                        dir.display()
                    );
                }
                anyhow::bail!(
                    "the local CAS has no session `{name}` (local CAS: {})",
                    dir.display()
                );
            };
            println!("# hash: {}", record.hash);
            if let Some(project) = cas.project_of(name)? {
                println!("# project: {project}");
            }
            if let Some(certificate) = cas.certificate_of(name)? {
                println!(
                    "# owner: client certificate {certificate} (created through \
                     `scone cas serve`: it may read and update the session)"
                );
            }
            for (i, earlier) in cas.history(name)?.iter().rev().enumerate() {
                println!("# predecessor {}: {earlier}", i + 1);
            }
            // The values stay in CAS: `scone run` reads them from there.
            print!("{}", scone::cas::fixed::redact(&record.yaml));
            Ok(0)
        }
    }
}
