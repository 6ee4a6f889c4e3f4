//! `scone cas serve`: the embedded local CAS over HTTPS for teams that want a
//! shared development CAS. Client certificates are required (a client without one
//! is refused during the TLS handshake); the certificate that creates a session
//! owns it. Endpoints: `POST /session` (body: session YAML; `201 {"hash": …}`) and
//! `GET /v1/sessions/<name>` (`200 {"name", "hash", "session"}` for its owner).
//! Errors answer `{"msg": …}` (plus `"current"` on a predecessor conflict).
//!
//! Every resource a client can make the server spend is bounded ([`Limits`],
//! documented in docs/cas.md "Bounds"): connections (the oldest idle one makes
//! room for a new one), the TLS handshake, idle time, header and body sizes, the
//! body's deadline, stalled writes, requests handled at once, and the secrets a
//! session may declare (`secret::MAX_SECRET_SIZE`).

mod connections;
mod http;
mod stall;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

pub use self::connections::{Admission, Connections, Slot};
pub use self::http::{serve_http, AnswerBody, Handler};
use super::error::CasError;
use super::local::LocalCas;
use super::tls::{cert_fingerprint, ServerTls};

/// Largest session document the server accepts (the default of
/// [`Limits::max_body_bytes`]): 8 MiB (the session of a 10,000-service mesh is
/// 4.6 MB: bench/scale.sh).
pub const MAX_SESSION_BYTES: usize = 8 << 20;

/// Connections kept open at once by default ([`Limits::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Files the server keeps for itself besides its connections (listener, CAS
/// files, standard streams, the runtime's own).
const RESERVED_FILES: u64 = 64;

/// The bounds `scone cas serve` enforces; [`Limits::default`] is what the command
/// uses (docs/cas.md lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections kept open at once (256). Past it, a new connection closes the
    /// oldest one that is not in a request, or is refused when all are.
    pub max_connections: usize,
    /// Requests whose body is read or whose work is done at once (8); others wait
    /// for a turn within [`Limits::body_timeout`].
    pub max_requests: usize,
    /// Largest request body (8 MiB); a larger declared length is refused (413)
    /// before the body is read, a longer chunked body once the cap is reached.
    pub max_body_bytes: usize,
    /// Largest request head: request line and headers (16 KiB; 431 past it).
    pub max_header_bytes: usize,
    /// Most headers in one request (64; 431 past it).
    pub max_headers: usize,
    /// Time for the TLS handshake (5 s).
    pub handshake_timeout: Duration,
    /// Time for a request's head to arrive, counted from the end of the handshake
    /// or of the previous answer: the idle timeout (10 s).
    pub idle_timeout: Duration,
    /// Time for a request's turn and its whole body (10 s; 408 or 503 past it).
    pub body_timeout: Duration,
    /// Time a write of an answer may make no progress (10 s).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_requests: 8,
            max_body_bytes: MAX_SESSION_BYTES,
            max_header_bytes: 16 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What a started server reports before it begins to answer.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// The CA certificate clients must trust.
    pub ca_cert_path: PathBuf,
    /// The CAS directory served.
    pub cas_dir: PathBuf,
    /// The bounds in force (the connection cap lowered to fit the open-files limit).
    pub limits: Limits,
}

/// The soft limit on open files of this process (`/proc/self/limits`), when known.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `limits` with the connection cap lowered so that the connections and the
/// server's own files fit `open_files` (a server out of file descriptors can
/// accept no one).
fn fit_open_files(mut limits: Limits, open_files: Option<u64>) -> Limits {
    if let Some(open_files) = open_files {
        let room = usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        limits.max_connections = limits.max_connections.min(room.max(1));
    }
    limits
}

/// Serves the local CAS in `cas_dir` on `listen` until interrupted (Ctrl-C),
/// within `limits`. `hosts` are extra names or addresses for the server
/// certificate; `on_ready` runs once the socket is bound.
pub fn serve(
    listen: SocketAddr,
    cas_dir: &Path,
    hosts: &[String],
    limits: Limits,
    on_ready: impl FnOnce(&ServerInfo),
) -> Result<(), CasError> {
    let cas = LocalCas::create(cas_dir)?;
    let mut names = hosts.to_vec();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let tls = ServerTls::load_or_create(cas_dir, &names)?;
    let acceptor = TlsAcceptor::from(tls.server_config()?);
    let limits = fit_open_files(limits, open_files_limit());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(limits.max_requests.max(1) + 2)
        .enable_all()
        .build()
        .map_err(|e| CasError::io("start the server runtime for", cas_dir, e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CasError::io("listen on", listen.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CasError::io("listen on", listen.to_string(), e))?;
        on_ready(&ServerInfo {
            addr,
            ca_cert_path: tls.ca_cert_path.clone(),
            cas_dir: cas_dir.to_path_buf(),
            limits: limits.clone(),
        });
        let connections = Connections::new(limits.max_connections);
        let handler = Handler::new(cas, limits);
        let mut accept_errors: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(stream, peer, &connections, &acceptor, &handler),
                    Err(e) => {
                        // Out of file descriptors or memory: wait instead of spinning.
                        accept_errors += 1;
                        if accept_errors.is_power_of_two() {
                            log(format_args!("cas: cannot accept a connection ({accept_errors} times so far): {e}"));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    })
}

/// A line of the server's log, on stderr. Not `eprintln!`, which panics when
/// stderr is gone (`scone cas serve 2>&1 | head`, a closed terminal): a log
/// nobody reads must not stop the server, nor the request it logs.
pub fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Admits a new connection (closing the oldest idle one when the cap is reached)
/// or refuses it at once.
fn admit(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    connections: &Arc<Connections>,
    acceptor: &TlsAcceptor,
    handler: &Arc<Handler>,
) {
    let max = handler.limits().max_connections;
    match connections.admit() {
        Admission::Admitted { slot, evicted } => {
            if evicted && connections.evicted().is_power_of_two() {
                log(format_args!(
                    "cas: {max} connections open: closed the oldest idle connection to admit \
                     {peer} ({} so far)",
                    connections.evicted()
                ));
            }
            tokio::spawn(connection(
                stream,
                peer,
                slot,
                acceptor.clone(),
                handler.clone(),
            ));
        }
        Admission::Refused => {
            if connections.refused().is_power_of_two() {
                log(format_args!(
                    "cas: {max} connections open, all in a request: refused {peer} ({} so far)",
                    connections.refused()
                ));
            }
        }
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    acceptor: TlsAcceptor,
    handler: Arc<Handler>,
) {
    let limits = handler.limits().clone();
    let requests = slot.requests();
    let work = async move {
        let tls =
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    log(format_args!("cas: TLS handshake with {peer} refused: {e}"));
                    return;
                }
                Err(_) => {
                    log(format_args!(
                        "cas: TLS handshake with {peer} not done within {} s: closed",
                        limits.handshake_timeout.as_secs()
                    ));
                    return;
                }
            };
        let owner = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| cert_fingerprint(cert));
        if let Err(e) = serve_http(tls, owner, handler, requests).await {
            log(format_args!("cas: connection with {peer} ended: {e}"));
        }
    };
    tokio::select! {
        () = slot.evicted() => {}
        () = work => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_the_open_files_limit() {
        let limits = Limits::default();
        assert_eq!(fit_open_files(limits.clone(), None), limits);
        assert_eq!(fit_open_files(limits.clone(), Some(20_000)), limits);
        assert_eq!(
            fit_open_files(limits.clone(), Some(200)).max_connections,
            136
        );
        assert_eq!(fit_open_files(limits, Some(10)).max_connections, 1);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
