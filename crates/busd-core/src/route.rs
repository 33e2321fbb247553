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
//!
//! A reused route also keeps its publishes' counts until the session
//! [settles](Route::settle) them, which it does before it waits for more
//! frames: two shared atomic additions per publish were about a
//! twentieth of the daemon's time in a 16 B stream.

use std::sync::atomic::{AtomicU64, Ordering};

use busd_proto::{Overflow, Subject};

/// A delivery the daemon must make: a `Msg` for `sid` on the connection `handle`.
#[derive(Debug, Clone)]
pub struct Target<H> {
    /// The receiving connection.
    pub handle: H,
    /// Its connection id.
    pub conn: u64,
    /// The receiving subscription.
    pub sid: u64,
    /// What to do if the receiver's queue is full.
    pub overflow: Overflow,
}

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

    pub(crate) fn count(&self, publishes: u64, deliveries: u64) {
        self.published.fetch_add(publishes, Ordering::Relaxed);
        self.delivered.fetch_add(deliveries, Ordering::Relaxed);
    }
}

/// The receivers of one publish, as [`Router::route`](crate::Router::route)
/// found them, kept for the next publish to the same subject.
#[derive(Debug)]
pub struct Route<H> {
    pub(crate) targets: Vec<Target<H>>,
    /// The subject and the epoch it was routed in, if it may be used again.
    pub(crate) reusable: Option<(Subject, u64)>,
    /// Publishes and deliveries made through this route since it was
    /// last settled, not yet in the shared counters.
    unsettled: (u64, u64),
    /// Deliveries the rules denied when it was made (a route with any is
    /// never reused).
    pub(crate) denied: u64,
}

impl<H> Default for Route<H> {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            reusable: None,
            unsettled: (0, 0),
            denied: 0,
        }
    }
}

impl<H> Route<H> {
    /// The deliveries to make.
    pub fn targets(&self) -> &[Target<H>] {
        &self.targets
    }

    /// The deliveries the rules denied (none in a route used again).
    pub fn denied(&self) -> u64 {
        self.denied
    }

    /// Whether this is still the route of a publish to `subject`: nothing
    /// has changed since it was made. If so, the publish is counted here,
    /// for [`settle`](Self::settle) to add to the shared counters.
    pub fn reuse(&mut self, subject: &Subject, epoch: &RouteEpoch) -> bool {
        let fresh = self
            .reusable
            .as_ref()
            .is_some_and(|(s, e)| *e == epoch.current() && s == subject);
        if fresh {
            self.unsettled.0 += 1;
            self.unsettled.1 += self.targets.len() as u64;
        }
        fresh
    }

    /// Adds the publishes counted by [`reuse`](Self::reuse) to `epoch`'s
    /// shared counters (call before waiting, and when the publisher goes).
    pub fn settle(&mut self, epoch: &RouteEpoch) {
        if self.unsettled.0 > 0 {
            let (publishes, deliveries) = std::mem::take(&mut self.unsettled);
            epoch.count(publishes, deliveries);
        }
    }

    /// Lets go of the receivers' handles unless the route will be used
    /// again (call after the deliveries).
    pub fn release(&mut self) {
        if self.reusable.is_none() {
            self.targets.clear();
        }
    }
}
