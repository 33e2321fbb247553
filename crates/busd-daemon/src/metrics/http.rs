//! The metrics listener: HTTP/1.1 on a loopback address, `GET /metrics`
//! answered with the OpenMetrics text that Prometheus scrapes.
//!
//! Any local user can connect, so a client gets little: a few scrapers at
//! a time, a few seconds to send its request, and no more than a short
//! while per connection; the bus itself never waits for it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::export::registry;
use crate::shared::Shared;

/// Scrapers served at once; more are closed at once.
const MAX_SCRAPERS: usize = 8;
/// Time a client has to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, requests and all.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);
/// What Prometheus asks for and `prometheus_client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the metrics on `listener` until the daemon stops.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let registry = Arc::new(registry(Arc::clone(&shared)));
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of fds, most likely: the bus's own connections matter more.
                tracing::warn!(cause = %e, "metrics listener: cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("metrics listener: too many scrapers, closing one");
            continue;
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, Arc::clone(&registry)));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIMIT, connection).await {
                tracing::debug!(cause = %e, "metrics connection failed");
            }
            drop(slot);
        });
    }
}

/// `GET /metrics` (or `HEAD`): the metrics; anything else an error status.
async fn answer(
    req: Request<Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        let body = "not found: the metrics are at /metrics\n".to_owned();
        return Ok(response(StatusCode::NOT_FOUND, body));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = response(StatusCode::METHOD_NOT_ALLOWED, String::new());
        r.headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        let body = format!("cannot encode the metrics: {e}\n");
        return Ok(response(StatusCode::INTERNAL_SERVER_ERROR, body));
    }
    let mut r = response(StatusCode::OK, text);
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(OPENMETRICS),
    );
    Ok(r)
}
