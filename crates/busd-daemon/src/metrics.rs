//! Prometheus metrics: what the daemon records for them as things happen
//! (here), what a scrape reads from the live state (`export`), and the
//! loopback HTTP listener that serves them (`http`).
//!
//! Most figures already exist for `busd ctl` (router counters, delivery
//! tally, each connection's traffic) and are read at scrape time; only
//! what nothing else keeps is recorded here, each off the per-message
//! path: answered requests (their status and latency), failed handshakes,
//! and the traffic of connections that closed.

mod export;
mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use busd_policy::Identity;
use busd_proto::Status;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::sync::lock;
use crate::traffic::TrafficDoc;

pub(crate) use self::http::serve;

/// What the daemon records for its metrics.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// Seconds from a request read to its responder's answer read, for
    /// the requests a responder answered.
    request_seconds: Histogram,
    replies_success: AtomicU64,
    replies_failure: AtomicU64,
    /// Handshakes refused, by reason.
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// The traffic of connections that have closed, by identity, so that
    /// counters never go back when a client leaves.
    closed: Mutex<HashMap<String, TrafficDoc>>,
}

impl Default for Recorded {
    fn default() -> Self {
        Self {
            // 10 µs to 10.5 s, each bucket four times the one before.
            request_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 11)),
            replies_success: AtomicU64::new(0),
            replies_failure: AtomicU64::new(0),
            auth_failures: Mutex::default(),
            closed: Mutex::default(),
        }
    }
}

impl Recorded {
    /// A responder answered with `status` a request read at `received`.
    pub(crate) fn replied(&self, status: Status, received: Instant) {
        let counter = if status == Status::Success {
            &self.replies_success
        } else {
            &self.replies_failure
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.request_seconds
            .observe(received.elapsed().as_secs_f64());
    }

    /// A handshake was refused for `reason`.
    pub(crate) fn auth_failed(&self, reason: &'static str) {
        *lock(&self.auth_failures).entry(reason).or_default() += 1;
    }

    /// Adds `traffic` of a connection of `identity` that is closing: what
    /// it had when it left the router (to be called under the router's
    /// lock, so that a scrape sees each count once: see `export`), then
    /// what its last writes added.
    pub(crate) fn closed(&self, identity: &Identity, traffic: TrafficDoc) {
        *lock(&self.closed).entry(label(identity)).or_default() += traffic;
    }
}

/// The `identity` label: the package's PFN, or `unpackaged:UID`.
pub(crate) fn label(identity: &Identity) -> String {
    match (&identity.pfn, identity.uid) {
        (Some(pfn), _) => pfn.to_string(),
        (None, Some(uid)) => format!("unpackaged:{uid}"),
        (None, None) => "unpackaged".to_owned(),
    }
}
