//! A publisher's last route, used again without the router's lock while
//! nothing that decides routes has changed.
//!
//! A stream publishes to one subject again and again, and the router's
//! answer (who subscribes, what the rules allow) stays the same until a
//! subscription, a connection or the rules change. Every such change is
//! made under the router's lock and bumps one epoch counter. A session
//! keeps its last [`Route`] with the epoch it was made in, and checks the
//! counter (one atomic load) instead of taking the lock, hashing the
//! subject, asking the rules and cloning a handle per receiver. A route
//! with a queue group (each publish picks the next member) or a denied
//! delivery (each one is counted and audited) is never used twice.

use std::sync::atomic::{AtomicU64, Ordering};

use busd_proto::Subject;

use crate::router::Target;

/// What routing shares with the sessions that publish: the epoch and the
/// publish counters, which a reused route updates without the lock.
#[derive(Debug, Default)]
pub struct RouteEpoch {
    epoch: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
}

impl RouteEpoch {
    /// Called (under the router's lock) on every change that could route
    /// a publish differently.
    pub(crate) fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn current(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn count(&self, deliveries: usize) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.delivered
            .fetch_add(deliveries as u64, Ordering::Relaxed);
    }
}

/// The receivers of one publish, as [`Router::route`](crate::Router::route)
/// found them, kept for the next publish to the same subject.
#[derive(Debug)]
pub struct Route<H> {
    pub(crate) targets: Vec<Target<H>>,
    /// The subject and the epoch it was routed in, if it may be used again.
    pub(crate) reusable: Option<(Subject, u64)>,
}

impl<H> Default for Route<H> {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            reusable: None,
        }
    }
}

impl<H> Route<H> {
    /// The deliveries to make.
    pub fn targets(&self) -> &[Target<H>] {
        &self.targets
    }

    /// Whether this is still the route of a publish to `subject`: nothing
    /// has changed since it was made. If so, the publish is counted.
    pub fn reuse(&self, subject: &Subject, epoch: &RouteEpoch) -> bool {
        let fresh = self
            .reusable
            .as_ref()
            .is_some_and(|(s, e)| *e == epoch.current() && s == subject);
        if fresh {
            epoch.count(self.targets.len());
        }
        fresh
    }

    /// Lets go of the receivers' handles unless the route will be used
    /// again (call after the deliveries).
    pub fn release(&mut self) {
        if self.reusable.is_none() {
            self.targets.clear();
        }
    }
}
