//! A reload rehearsed: what new rules would change for the connections
//! and registrations live now, without applying anything
//! (`busd ctl reload --dry-run`).

use busd_policy::{Identity, Policy};

use crate::introspect::Registration;
use crate::router::Router;

/// What applying a policy would do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rehearsal {
    /// Connections that would be closed: their package is not configured
    /// in the new rules (as [`Router::set_policy`] closes them).
    pub closed: Vec<u64>,
    /// Registrations whose senders would change, each with the live
    /// connections it would stop or start hearing from.
    pub changes: Vec<Change>,
}

/// One subscription or service whose senders would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The subscription or service.
    pub registration: Registration,
    /// Live connections whose messages (or requests) it receives now and
    /// would not.
    pub stops: Vec<u64>,
    /// Live connections it would receive from, and does not now.
    pub starts: Vec<u64>,
}

impl Rehearsal {
    /// Whether anything would be cut: a connection closed, or a sender a
    /// registration would stop hearing from.
    pub fn cuts(&self) -> bool {
        !self.closed.is_empty() || self.changes.iter().any(|c| !c.stops.is_empty())
    }
}

impl<H: Clone> Router<H> {
    /// What [`set_policy`](Router::set_policy) with `new` would do now:
    /// the connections it would close, and for every subscription and
    /// service of the others, which live connections it would stop or
    /// start receiving from (a service: with the capability each policy's
    /// rule for it requires). Decided by the same [`Policy::decide`] the
    /// router delivers by.
    pub fn rehearse(&self, new: &Policy) -> Rehearsal {
        let old = &**self.policy();
        let closed = self.gone_under(new);
        let live: Vec<(u64, &Identity)> = self
            .conns
            .iter()
            .filter(|(id, _)| !closed.contains(id))
            .map(|(id, c)| (*id, &*c.identity))
            .collect();
        let mut changes = Vec::new();
        for registration in self.registrations() {
            let Some((_, to)) = live.iter().find(|(id, _)| *id == registration.conn) else {
                continue;
            };
            let hears = |policy: &Policy, from: &Identity| {
                if !registration.service {
                    return policy.decide(from, to).allowed;
                }
                let subject = &registration.subject;
                let rule = policy.service(subject);
                let capability = rule.and_then(|r| r.require_capability.as_deref());
                policy.decide_request(from, to, subject, capability).allowed
            };
            let (mut stops, mut starts) = (Vec::new(), Vec::new());
            for &(id, from) in &live {
                match (hears(old, from), hears(new, from)) {
                    (true, false) => stops.push(id),
                    (false, true) => starts.push(id),
                    _ => {}
                }
            }
            if !stops.is_empty() || !starts.is_empty() {
                stops.sort_unstable();
                starts.sort_unstable();
                changes.push(Change {
                    registration,
                    stops,
                    starts,
                });
            }
        }
        let mut closed = closed;
        closed.sort_unstable();
        Rehearsal { closed, changes }
    }
}
