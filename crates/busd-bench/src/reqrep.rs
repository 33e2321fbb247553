//! The request/reply roles: requesters that time every call in an HDR
//! histogram, and responders that echo the request back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::bus::{Call, Conn};
use crate::error::chain;
use crate::spec::{RoleResult, unix_ns};

/// The longest latency the histogram records; longer ones are clamped.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// A histogram of nanoseconds from 1 ns to [`MAX_LATENCY`], 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    let max = u64::try_from(MAX_LATENCY.as_nanos()).unwrap_or(u64::MAX);
    // Constant, valid bounds: this cannot fail at run time.
    Histogram::new_with_bounds(1, max, 3).expect("valid histogram bounds")
}

/// What one requester does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Requests to make, at most.
    pub(crate) count: u64,
    /// Make requests until this has passed.
    pub(crate) duration: Option<Duration>,
    /// Payload size.
    pub(crate) size: usize,
    /// Each request's timeout.
    pub(crate) timeout: Duration,
}

/// Makes `plan.count` requests of `plan.size` bytes one after the other,
/// or as many as fit in `plan.duration`.
pub(crate) async fn request<C: Conn>(
    conn: C,
    service: C::Subject,
    plan: Plan,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> RoleResult {
    let Plan {
        count,
        duration,
        size,
        timeout,
    } = plan;
    let mut result = RoleResult::default();
    let mut latency = histogram();
    let payload = Bytes::from(vec![0x5a_u8; size]);
    let max = latency.high();
    let deadline = duration.map(|d| Instant::now() + d);
    for _ in 0..count {
        if stop.is_cancelled() {
            result.error = Some("stopped by the runner".into());
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let started = Instant::now();
        result.sent += 1;
        match conn.request(&service, payload.clone(), timeout).await {
            Ok(answer) => {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(max);
                latency.saturating_record(ns.clamp(1, max));
                result.received += 1;
                result.bytes += answer.len() as u64;
            }
            Err(e) => {
                result.errors += 1;
                if result.error.is_none() {
                    result.error = Some(format!("request failed: {}", chain(&e)));
                }
            }
        }
        progress.store(result.sent, Ordering::Relaxed);
    }
    result.last_ns = Some(unix_ns());
    result.latency = latency
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    result
}

/// Echoes every request until `stop` fires or the registration ends.
pub(crate) async fn respond<C: Call>(
    mut calls: BoxStream<'static, C>,
    stop: CancellationToken,
) -> RoleResult {
    let mut result = RoleResult::default();
    loop {
        let call = tokio::select! {
            () = stop.cancelled() => break,
            call = calls.next() => call,
        };
        let Some(call) = call else {
            result.disconnected = true;
            result.error = Some("the service registration ended (disconnected?)".into());
            break;
        };
        let payload = call.payload().clone();
        result.bytes += payload.len() as u64;
        match call.respond(payload).await {
            Ok(()) => result.received += 1,
            Err(e) => {
                result.errors += 1;
                if result.error.is_none() {
                    result.error = Some(format!("respond failed: {}", chain(&e)));
                }
            }
        }
    }
    result.last_ns = Some(unix_ns());
    result
}
