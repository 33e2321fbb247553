//! Requests across the bridge, both ways, each ending within its timeout
//! with the other bus's answer or a clear error:
//!
//! - from NATS to a local service: the bridge answers requests on the
//!   exported names (prefixed) as a NATS queue group, calls the service
//!   here as its package, and replies with `Busd-Status` set to how the
//!   call ended (`Success`, `Failure`, `NoResponders`, `NotAuthorized`,
//!   `Timeout`, `ResponderGone`);
//! - from a local caller to a NATS service: the bridge relays the
//!   imported names here; each call becomes a NATS request, and NATS's
//!   `NoResponders` and time-out come back as the caller's own statuses.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::HeaderMap;
use busd_client::{ErrorKind, RequestOptions};
use busd_proto::{Headers, Status, Subject};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Semaphore;

use super::headers::{from_nats, to_nats};
use super::{Ends, SENDER_HEADER, STATUS_HEADER, TIMEOUT_HEADER};

/// Calls in flight each way; past it a call is refused at once.
const MAX_CALLS: usize = 1024;
/// The longest timeout a request from NATS may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers NATS requests for the exported services until the daemon stops.
pub(super) async fn serve_exports(ends: &Ends) {
    let room = Arc::new(Semaphore::new(MAX_CALLS));
    let each = (ends.config.export_services.iter()).map(|p| serve_export(ends, p, &room));
    futures::future::join_all(each).await;
}

async fn serve_export(ends: &Ends, pattern: &Subject, room: &Arc<Semaphore>) {
    let subject = ends.exported(pattern.as_str());
    let queue = format!("busd-bridge.{}", ends.config.name);
    let mut sub = match ends
        .nats
        .client
        .queue_subscribe(subject.clone(), queue)
        .await
    {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!(bridge = %ends.config.name, %subject, cause = %e, "cannot export services: the NATS subscription failed");
            return;
        }
    };
    while let Some(msg) = sub.next().await {
        // Publishes to the exported names are the local bus's to make.
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let nats = ends.nats.client.clone();
        let Ok(permit) = Arc::clone(room).try_acquire_owned() else {
            let headers = status_headers("Failure", None);
            let busy = Bytes::from_static(b"the bridge has too many calls in flight");
            let _ = nats.publish_with_headers(reply, headers, busy).await;
            continue;
        };
        let Some(service) = ends
            .unexported(msg.subject.as_str())
            .and_then(|s| Subject::parse(s).ok())
        else {
            continue;
        };
        ends.stats.calls_in.fetch_add(1, Ordering::Relaxed);
        let (local, default_timeout) = (ends.local.clone(), ends.config.request_timeout);
        tokio::spawn(async move {
            let headers = from_nats(msg.headers.as_ref());
            let timeout = headers
                .as_ref()
                .and_then(|h| h.get(TIMEOUT_HEADER))
                .and_then(|ms| ms.parse::<u64>().ok())
                .map_or(default_timeout, Duration::from_millis)
                .clamp(Duration::from_millis(1), MAX_TIMEOUT);
            let options = RequestOptions {
                timeout: Some(timeout),
                headers,
            };
            let answer = local.request_with(service, &msg.payload, options).await;
            let (headers, payload) = match answer {
                Ok(resp) => (
                    status_headers(resp.status.as_str(), resp.headers.as_ref()),
                    resp.payload,
                ),
                Err(e) => (
                    status_headers(status_of(e.kind()), None),
                    Bytes::from(e.message().to_owned()),
                ),
            };
            let _ = nats.publish_with_headers(reply, headers, payload).await;
            drop(permit);
        });
    }
}

/// The `Busd-Status` a local call's error is told to NATS as.
fn status_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NoResponders => "NoResponders",
        ErrorKind::NotAuthorized => "NotAuthorized",
        ErrorKind::Timeout => "Timeout",
        ErrorKind::ResponderGone => "ResponderGone",
        _ => "Failure",
    }
}

fn status_headers(status: &str, given: Option<&Headers>) -> HeaderMap {
    to_nats(given, &[(STATUS_HEADER, status)])
}

/// Relays local calls to the imported services until the daemon stops.
pub(super) async fn relay_imports(ends: &Ends) {
    let room = Arc::new(Semaphore::new(MAX_CALLS));
    let each = (ends.config.import_services.iter()).map(|p| relay_import(ends, p, &room));
    futures::future::join_all(each).await;
}

async fn relay_import(ends: &Ends, pattern: &Subject, room: &Arc<Semaphore>) {
    let mut relay = match ends.local.serve_relay(pattern.clone()).await {
        Ok(relay) => relay,
        Err(e) => {
            tracing::error!(bridge = %ends.config.name, %pattern, cause = %e, "cannot import services: the local registration was refused");
            return;
        }
    };
    while let Some(request) = relay.next().await {
        let Ok(permit) = Arc::clone(room).try_acquire_owned() else {
            let why = "the bridge has too many calls in flight";
            let _ = request.respond_failure(why).await;
            continue;
        };
        if !*ends.nats.connected.borrow() {
            let why = format!("bridge {}: NATS is unreachable", ends.config.name);
            let _ = request.respond_failure(why).await;
            continue;
        }
        ends.stats.calls_out.fetch_add(1, Ordering::Relaxed);
        let (nats, timeout) = (ends.nats.client.clone(), ends.config.request_timeout);
        let sender = ends.sender_of(&request.from);
        tokio::spawn(async move {
            let millis = timeout.as_millis().to_string();
            let extra = [(SENDER_HEADER, sender.as_str()), (TIMEOUT_HEADER, &millis)];
            let headers = to_nats(request.headers.as_ref(), &extra);
            let call = async_nats::Request::new()
                .payload(request.payload.clone())
                .headers(headers)
                .timeout(Some(timeout));
            let subject = request.service.as_str().to_owned();
            let answered = nats.send_request(subject, call).await;
            let (status, headers, payload) = match answered {
                Ok(msg) => {
                    let headers = from_nats(msg.headers.as_ref());
                    let status = match headers.as_ref().and_then(|h| h.get(STATUS_HEADER)) {
                        None => Status::Success,
                        Some(s) if s == "Success" => Status::Success,
                        // Failure, or a daemon status the local daemon
                        // gives the caller as its own (`relayed_status`).
                        Some(_) => Status::Failure,
                    };
                    (status, headers, msg.payload)
                }
                Err(e) => {
                    let named = match e.kind() {
                        async_nats::RequestErrorKind::NoResponders => "NoResponders",
                        async_nats::RequestErrorKind::TimedOut => "Timeout",
                        _ => "Failure",
                    };
                    let mut headers = Headers::new();
                    headers.insert(STATUS_HEADER.to_owned(), named.to_owned());
                    let why = format!("NATS: {e}");
                    (Status::Failure, Some(headers), Bytes::from(why))
                }
            };
            let _ = request.respond_with(status, headers, payload).await;
            drop(permit);
        });
    }
}
