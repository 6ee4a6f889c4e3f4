//! `scone cas serve`: the embedded local CAS over HTTPS for teams that want a
//! shared development CAS. Client certificates are required (a client without one
//! is refused during the TLS handshake); the certificate that creates a session
//! owns it. Endpoints: `POST /session` (body: session YAML; `201 {"hash": …}`) and
//! `GET /v1/sessions/<name>` (`200 {"name", "hash", "session"}` for its owner).
//! Errors answer `{"msg": …}` (plus `"current"` on a predecessor conflict).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_rustls::TlsAcceptor;

use super::error::CasError;
use super::local::LocalCas;
use super::tls::{cert_fingerprint, ServerTls};

/// Largest session document the server accepts.
pub const MAX_SESSION_BYTES: usize = 4 << 20;

/// What a started server reports before it begins to answer.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// The CA certificate clients must trust.
    pub ca_cert_path: PathBuf,
    /// The CAS directory served.
    pub cas_dir: PathBuf,
}

/// Serves the local CAS in `cas_dir` on `listen` until interrupted (Ctrl-C).
/// `hosts` are extra names or addresses for the server certificate; `on_ready`
/// runs once the socket is bound.
pub fn serve(
    listen: SocketAddr,
    cas_dir: &Path,
    hosts: &[String],
    on_ready: impl FnOnce(&ServerInfo),
) -> Result<(), CasError> {
    let cas = LocalCas::open(cas_dir)?;
    let mut names = hosts.to_vec();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let tls = ServerTls::load_or_create(cas_dir, &names)?;
    let acceptor = TlsAcceptor::from(tls.server_config()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        });
        let cas = Arc::new(cas);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    tokio::spawn(connection(stream, peer, acceptor.clone(), cas.clone()));
                }
            }
        }
    })
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    cas: Arc<LocalCas>,
) {
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("cas: TLS handshake with {peer} refused: {e}");
            return;
        }
    };
    let owner = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| cert_fingerprint(cert));
    let service = hyper::service::service_fn(move |req| {
        let (cas, owner) = (cas.clone(), owner.clone());
        async move { Ok::<_, Infallible>(route(req, cas, owner).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        eprintln!("cas: connection with {peer} ended: {e}");
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_reply(err: &CasError) -> Response<Full<Bytes>> {
    let (status, current) = match err {
        CasError::InvalidSession(_) => (StatusCode::BAD_REQUEST, None),
        CasError::PredecessorConflict { current, .. } => (StatusCode::CONFLICT, current.clone()),
        CasError::NotOwner { .. } => (StatusCode::FORBIDDEN, None),
        CasError::NotFound { .. } => (StatusCode::NOT_FOUND, None),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let msg = match err {
        CasError::NotOwner { detail, .. } => detail.clone(),
        other => other.to_string(),
    };
    match current {
        Some(current) => reply(status, json!({ "msg": msg, "current": current })),
        None => reply(status, json!({ "msg": msg })),
    }
}

async fn route(
    req: Request<Incoming>,
    cas: Arc<LocalCas>,
    owner: Option<String>,
) -> Response<Full<Bytes>> {
    let Some(owner) = owner else {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({ "msg": "a client certificate is required" }),
        );
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match (&method, path.as_str()) {
        (&Method::POST, "/session") => post_session(req, cas, owner).await,
        (&Method::GET, p) if p.starts_with("/v1/sessions/") => {
            let name = p.trim_start_matches("/v1/sessions/").to_string();
            blocking(move || {
                cas.session_as(&name, Some(&owner))
                    .map(|found| (name, found))
            })
            .await
            .map_or_else(
                |e| error_reply(&e),
                |(name, found)| match found {
                    Some(record) => reply(
                        StatusCode::OK,
                        json!({ "name": record.name, "hash": record.hash, "session": record.yaml }),
                    ),
                    None => error_reply(&CasError::NotFound { name }),
                },
            )
        }
        (_, "/session") => reply(StatusCode::METHOD_NOT_ALLOWED, json!({ "msg": "use POST" })),
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({ "msg": format!("no such endpoint: {path}") }),
        ),
    };
    eprintln!("cas: {method} {path} -> {}", response.status().as_u16());
    response
}

async fn post_session(
    req: Request<Incoming>,
    cas: Arc<LocalCas>,
    owner: String,
) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_SESSION_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "msg": format!("the session exceeds {MAX_SESSION_BYTES} bytes or was cut off") }),
            )
        }
    };
    let Ok(yaml) = String::from_utf8(body.to_vec()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "msg": "the session is not UTF-8 text" }),
        );
    };
    match blocking(move || cas.upload_document_as(yaml, Some(&owner))).await {
        Ok(hash) => reply(StatusCode::CREATED, json!({ "hash": hash })),
        Err(e) => error_reply(&e),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CasError> + Send + 'static,
) -> Result<T, CasError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(CasError::Store {
            path: PathBuf::from("<server>"),
            detail: format!("request handler failed: {e}"),
        })
    })
}
