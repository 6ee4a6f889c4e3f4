//! The HTTP side of `scone cas serve`, over any byte stream (TLS in the server,
//! an in-memory pipe in tests and the fuzzer): hyper's HTTP/1.1 with the header
//! bounds and the idle timeout of [`Limits`], the two endpoints, and every
//! request's body read under its cap and deadline, its work done under the
//! server-wide cap on requests at once.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connections::Request as InRequest;
use super::stall::Stall;
use super::Limits;
use crate::cas::error::CasError;
use crate::cas::local::LocalCas;

/// An answer's body. It holds the connection's request mark until hyper has
/// written its last byte (or dropped it).
pub type AnswerBody = BoxBody<Bytes, Infallible>;

/// What every connection of one server shares: the CAS, the bounds, and the
/// permits of the requests handled at once.
#[derive(Debug)]
pub struct Handler {
    cas: LocalCas,
    limits: Limits,
    requests: Arc<Semaphore>,
    log: bool,
}

impl Handler {
    /// Serves `cas` within `limits`, logging each request on stderr.
    pub fn new(cas: LocalCas, limits: Limits) -> Arc<Handler> {
        Arc::new(Handler {
            requests: Arc::new(Semaphore::new(limits.max_requests.max(1))),
            cas,
            limits,
            log: true,
        })
    }

    /// [`Handler::new`] without the request log (the fuzzer sends millions).
    pub fn quiet(cas: LocalCas, limits: Limits) -> Arc<Handler> {
        let mut handler = Handler::new(cas, limits);
        if let Some(handler) = Arc::get_mut(&mut handler) {
            handler.log = false;
        }
        handler
    }

    /// The bounds this handler enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Serves HTTP/1.1 on `io` for the client `owner` (its certificate fingerprint;
/// `None`: no certificate, every request is refused) until the client closes,
/// idles past [`Limits::idle_timeout`], stops reading its answer for
/// [`Limits::write_timeout`], or breaks the protocol. `requests` counts the
/// requests in progress on this connection (see `connections`).
pub async fn serve_http<IO>(
    io: IO,
    owner: Option<String>,
    handler: Arc<Handler>,
    requests: Arc<AtomicUsize>,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = handler.limits.clone();
    let service = hyper::service::service_fn(move |req| {
        let mark = InRequest::start(&requests);
        let (handler, owner) = (handler.clone(), owner.clone());
        async move {
            let answer = route(req, &handler, owner).await;
            Ok::<_, Infallible>(answer.map(move |body| {
                body.map_frame(move |frame| {
                    let _in_request = &mark;
                    frame
                })
                .boxed()
            }))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192) + 16 * 1024)
        .serve_connection(TokioIo::new(Stall::new(io, limits.write_timeout)), service)
        .await
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

fn refuse(status: StatusCode, msg: String) -> Response<Full<Bytes>> {
    reply(status, json!({ "msg": msg }))
}

/// `response` with `Connection: close`: the rest of a refused body is not read,
/// so the connection ends after the answer.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
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
        None => refuse(status, msg),
    }
}

async fn route(
    req: Request<Incoming>,
    handler: &Arc<Handler>,
    owner: Option<String>,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match (owner, &method, path.as_str()) {
        (None, _, _) => refuse(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required".into(),
        ),
        (Some(owner), &Method::POST, "/session") => post_session(req, handler, owner).await,
        (Some(owner), &Method::GET, p) if p.starts_with("/v1/sessions/") => {
            let name = p.trim_start_matches("/v1/sessions/").to_string();
            get_session(handler, name, owner).await
        }
        (_, _, "/session") => refuse(StatusCode::METHOD_NOT_ALLOWED, "use POST".into()),
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {}", printable(&path)),
        ),
    };
    if handler.log {
        super::log(format_args!(
            "cas: {method} {} -> {}",
            printable(&path),
            response.status().as_u16()
        ));
    }
    response
}

/// `text` cut to 200 characters, control characters escaped: a path as the
/// client sent it is safe to log and to answer.
fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

/// Waits until `deadline` for one of the permits of requests handled at once.
async fn permit(handler: &Handler, deadline: Instant) -> Option<OwnedSemaphorePermit> {
    tokio::time::timeout_at(deadline, handler.requests.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

fn busy(limits: &Limits) -> Response<Full<Bytes>> {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the CAS is handling {} requests and none ended within {} s; try again",
            limits.max_requests,
            limits.body_timeout.as_secs()
        ),
    )
}

async fn post_session(
    req: Request<Incoming>,
    handler: &Arc<Handler>,
    owner: String,
) -> Response<Full<Bytes>> {
    let limits = &handler.limits;
    let max = limits.max_body_bytes;
    let too_large = || {
        closing(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the session is larger than {max} bytes, the most this CAS accepts"),
        ))
    };
    // A declared length past the cap is refused before a byte of the body is read.
    if req.body().size_hint().lower() > max as u64 {
        return too_large();
    }
    let deadline = Instant::now() + limits.body_timeout;
    let Some(permit) = permit(handler, deadline).await else {
        return closing(busy(limits));
    };
    let body = Limited::new(req.into_body(), max).collect();
    let body = match tokio::time::timeout_at(deadline, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(_)) => {
            return closing(refuse(
                StatusCode::BAD_REQUEST,
                "the session was cut off before its end".into(),
            ))
        }
        Err(_) => {
            return closing(refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the session was not received within {} s",
                    limits.body_timeout.as_secs()
                ),
            ))
        }
    };
    let Ok(yaml) = String::from_utf8(Vec::from(body)) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the session is not UTF-8 text".into(),
        );
    };
    let cas = handler.cas.clone();
    match blocking(permit, move || cas.upload_document_as(yaml, Some(&owner))).await {
        Ok(hash) => reply(StatusCode::CREATED, json!({ "hash": hash })),
        Err(e) => error_reply(&e),
    }
}

async fn get_session(handler: &Arc<Handler>, name: String, owner: String) -> Response<Full<Bytes>> {
    let deadline = Instant::now() + handler.limits.body_timeout;
    let Some(permit) = permit(handler, deadline).await else {
        return busy(&handler.limits);
    };
    let cas = handler.cas.clone();
    let lookup = name.clone();
    match blocking(permit, move || cas.session_as(&lookup, Some(&owner))).await {
        Ok(Some(record)) => reply(
            StatusCode::OK,
            json!({ "name": record.name, "hash": record.hash, "session": record.yaml }),
        ),
        Ok(None) => error_reply(&CasError::NotFound { name }),
        Err(e) => error_reply(&e),
    }
}

/// Runs `work` on the blocking pool, holding `permit` until it ends (even when
/// the client has gone away meanwhile).
async fn blocking<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    work: impl FnOnce() -> Result<T, CasError> + Send + 'static,
) -> Result<T, CasError> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .unwrap_or_else(|e| {
        Err(CasError::Store {
            path: PathBuf::from("<server>"),
            detail: format!("request handler failed: {e}"),
        })
    })
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
