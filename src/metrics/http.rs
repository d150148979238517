//! The metrics/health HTTP endpoint: HTTP/1.1 only, served with `hyper`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Metrics;

/// Content type of `GET /metrics`: the OpenMetrics text format that
/// `prometheus_client::encoding::text::encode` produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

/// Connections served at once; a new one beyond this closes the oldest, so
/// idle or slow peers can never keep a probe from being answered.
const MAX_CONNECTIONS: usize = 128;

/// A peer must send each request's headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Each request is answered within this time (`/readyz` says "not ready" then).
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// No connection lives longer than this, however busy (keep-alive included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// After `stop`, how long in-flight requests may take before being dropped.
const DRAIN: Duration = Duration::from_secs(5);

/// What `/readyz` awaits: true when ready.
pub type ReadyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// Makes a [`ReadyFuture`] per `/readyz` request.
pub type Ready = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

/// What `/status` (and `/`) awaits: the status snapshot.
pub type StatusFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>>;

/// Makes a [`StatusFuture`] per `/status` or `/` request.
pub type Status = Arc<dyn Fn() -> StatusFuture + Send + Sync>;

/// What the endpoint asks the server for.
#[derive(Clone)]
pub struct Probes {
    /// `/readyz`.
    pub ready: Ready,
    /// `/status` and `/`; `None`: those are 404.
    pub status: Option<Status>,
}

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the metrics endpoint on `listener` until `stop` is cancelled.
///
/// Routes (`GET` or `HEAD`; the query string is ignored):
/// - `/metrics`: 200, [`Metrics::encode`] with content type [`CONTENT_TYPE`];
/// - `/healthz`: 200 `ok`;
/// - `/readyz`: 200 `ready` when `ready()` resolves to true, else 503 `not ready`;
/// - `/status`: the status snapshot as JSON; `/`: the same as an HTML page
///   ([`super::status_page`]);
/// - anything else: 404 `not found`.
///
/// HTTP/1.1 with keep-alive; a malformed request ends its connection (hyper
/// may first answer it with a 400); nothing request-derived can panic here.
/// Request headers must arrive within 2 s and each answer is given within 5 s;
/// at most 128 connections are open at once, a new one closing the oldest.
/// When `stop` is cancelled the
/// listener is dropped, idle connections are closed, and in-flight requests
/// get up to 5 s to finish before being dropped; then this returns.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    probes: Probes,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    // Open connections, oldest first (finished ones are skipped lazily).
    let mut by_age: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let stream = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        by_age.retain(|c| !c.is_finished());
        while by_age.len() >= MAX_CONNECTIONS {
            if let Some(oldest) = by_age.pop_front() {
                debug!("metrics endpoint: connection limit reached, closing the oldest");
                oldest.abort();
            }
        }
        let handle = connections.spawn(connection(
            stream,
            Arc::clone(&metrics),
            probes.clone(),
            stop.clone(),
        ));
        by_age.push_back(handle);
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!(
            left = connections.len(),
            "metrics endpoint: dropping connections still busy after the drain"
        );
    }
    // Dropping the set aborts whatever is left.
}

/// One HTTP/1.1 connection; on `stop`, finishes the request in flight and closes.
async fn connection(
    stream: TcpStream,
    metrics: Arc<Metrics>,
    probes: Probes,
    stop: CancellationToken,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (metrics, probes) = (Arc::clone(&metrics), probes.clone());
        async move {
            let answer =
                tokio::time::timeout(REQUEST_DEADLINE, respond(&request, &metrics, &probes));
            Ok::<_, Infallible>(
                answer
                    .await
                    .unwrap_or_else(|_| text(StatusCode::SERVICE_UNAVAILABLE, "not ready")),
            )
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = lifetime => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(REQUEST_DEADLINE, conn).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "metrics endpoint: connection ended with an error");
    }
}

/// Routes one request. Never fails: everything unknown is a 404.
async fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    probes: &Probes,
) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok"),
        "/readyz" if (probes.ready)().await => text(StatusCode::OK, "ready"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        path @ ("/status" | "/") => match &probes.status {
            Some(status) => {
                let snapshot = status().await;
                let (body, kind) = if path == "/status" {
                    (snapshot.to_string(), JSON)
                } else {
                    (super::status_page::render(&snapshot), HTML)
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(kind));
                response
            }
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(TEXT_PLAIN));
    response
}
