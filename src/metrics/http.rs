//! The metrics/health HTTP endpoint: HTTP/1.1 only, served with `hyper`.

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
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Metrics;

/// Content type of `GET /metrics`: the OpenMetrics text format that
/// `prometheus_client::encoding::text::encode` produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Connections served at once; further ones are closed right after accept.
const MAX_CONNECTIONS: usize = 64;

/// A peer must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After `stop`, how long in-flight requests may take before being dropped.
const DRAIN: Duration = Duration::from_secs(5);

/// What `/readyz` awaits: true when ready.
pub type ReadyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// Makes a [`ReadyFuture`] per `/readyz` request.
pub type Ready = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the metrics endpoint on `listener` until `stop` is cancelled.
///
/// Routes (`GET` or `HEAD`; the query string is ignored):
/// - `/metrics`: 200, [`Metrics::encode`] with content type [`CONTENT_TYPE`];
/// - `/healthz`: 200 `ok`;
/// - `/readyz`: 200 `ready` when `ready()` resolves to true, else 503 `not ready`;
/// - anything else: 404 `not found`.
///
/// HTTP/1.1 with keep-alive; a malformed request ends its connection (hyper
/// may first answer it with a 400); nothing request-derived can panic here.
/// At most 64 connections are served at once. When `stop` is cancelled the
/// listener is dropped, idle connections are closed, and in-flight requests
/// get up to 5 s to finish before being dropped; then this returns.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Ready,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
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
        if connections.len() >= MAX_CONNECTIONS {
            debug!("metrics endpoint: too many connections, closing a new one");
            continue;
        }
        connections.spawn(connection(
            stream,
            Arc::clone(&metrics),
            Arc::clone(&ready),
            stop.clone(),
        ));
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
    ready: Ready,
    stop: CancellationToken,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (metrics, ready) = (Arc::clone(&metrics), Arc::clone(&ready));
        async move { Ok::<_, Infallible>(respond(&request, &metrics, &ready).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
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
    ready: &Ready,
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
        "/readyz" if ready().await => text(StatusCode::OK, "ready"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
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
