//! Services, and the table of calls in flight, kept by connection id.
//!
//! A request goes to exactly one allowed responder; its call id is the
//! daemon's, so only that responder can answer it, once. This module only
//! keeps the books; which responder the rules allow is decided by the
//! router (`services.rs`), which owns the connections.
//!
//! Deadlines are kept in an ordered set beside the table, entry for entry:
//! a call answered, or dropped with its connection, leaves both at once,
//! whatever its timeout. (A heap pruned lazily kept each answered call's
//! deadline until it came due: an hour's worth of answered requests
//! with the longest timeout held memory for an hour.)

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use busd_proto::{Sender, Subject};

/// A request routed to a responder: the daemon sends it
/// `Call{rid: call_id, sid, service, from}` with the request's payload.
#[derive(Debug, Clone)]
pub struct Routed<H> {
    /// The responder's connection.
    pub responder: H,
    /// The daemon's id for this call.
    pub call_id: u64,
    /// The responder's `Serve` registration.
    pub sid: u64,
    /// Who asks, as the daemon proved it.
    pub from: Sender,
    /// This call's deadline is earlier than the one the daemon's timer
    /// sleeps towards (see [`Router::next_deadline`](crate::Router::next_deadline)):
    /// the timer must wake up and sleep again.
    pub wake_timer: bool,
}

/// A request whose answer goes back to `requester` under its own `rid`
/// (a reply, or the daemon's `Timeout` / `ResponderGone`).
#[derive(Debug, Clone)]
pub struct Unanswered<H> {
    /// The requesting connection.
    pub requester: H,
    /// The requester's id for the request.
    pub rid: u64,
    /// When the daemon read the request.
    pub received: Instant,
}

/// One call in flight.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) requester: u64,
    pub(crate) rid: u64,
    pub(crate) responder: u64,
    /// The service asked.
    pub(crate) service: Subject,
    /// When the daemon read the request.
    pub(crate) received: Instant,
    /// Its key in the deadline index, with the call id.
    deadline: Instant,
}

/// One `Serve` registration.
#[derive(Debug)]
pub(crate) struct Responder {
    pub(crate) conn: u64,
    pub(crate) sid: u64,
    /// The capability it requires of callers, if any.
    pub(crate) capability: Option<String>,
}

/// The responders of one service, picked round robin.
#[derive(Debug, Default)]
pub(crate) struct Service {
    pub(crate) responders: Vec<Responder>,
    /// Where the next pick starts.
    pub(crate) next: usize,
}

/// Services and calls in flight.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    services: HashMap<Subject, Service>,
    /// The wildcard names among `services` (a bridge's relays), in the
    /// order they were first served: few, so a scan finds one.
    patterns: Vec<Subject>,
    table: ahash::AHashMap<u64, Call>,
    /// `(deadline, call id)` of every call in `table`, and of no other:
    /// the earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
    next_id: u64,
    /// The deadline the daemon's timer was last told to sleep towards.
    armed: Option<Instant>,
}

impl Calls {
    pub(crate) fn add_responder(&mut self, service: Subject, responder: Responder) {
        if service.has_wildcards() && !self.services.contains_key(&service) {
            self.patterns.push(service.clone());
        }
        self.services
            .entry(service)
            .or_default()
            .responders
            .push(responder);
    }

    pub(crate) fn remove_responder(&mut self, service: &Subject, conn: u64, sid: u64) {
        if let Some(s) = self.services.get_mut(service) {
            s.responders.retain(|r| (r.conn, r.sid) != (conn, sid));
            if s.responders.is_empty() {
                self.services.remove(service);
                self.patterns.retain(|p| p != service);
            }
        }
    }

    /// The responders a request to `service` goes to: those serving the
    /// name, else (with `relayed`) those of the first wildcard name that
    /// matches it.
    pub(crate) fn route_to(&mut self, service: &Subject, relayed: bool) -> Option<&mut Service> {
        let key = match self.services.contains_key(service) {
            true => service,
            false if relayed => self.patterns.iter().find(|p| p.matches(service))?,
            false => return None,
        };
        self.services.get_mut(key)
    }

    /// Whether anyone serves `service`.
    pub(crate) fn is_served(&self, service: &Subject) -> bool {
        self.services.contains_key(service)
    }

    /// The capability each of `service`'s responders requires of
    /// callers (`None`: any caller the rules allow).
    pub(crate) fn capabilities(&self, service: &Subject) -> Vec<Option<&str>> {
        let responders = self.services.get(service).map(|s| &s.responders[..]);
        responders
            .unwrap_or_default()
            .iter()
            .map(|r| r.capability.as_deref())
            .collect()
    }

    /// Records a call from `requester` (its `rid`, read at `received`) to
    /// `responder`, due by `deadline`; its call id, and whether the timer
    /// must be woken for it.
    pub(crate) fn open(
        &mut self,
        (requester, rid): (u64, u64),
        (responder, service): (u64, Subject),
        (received, deadline): (Instant, Instant),
    ) -> (u64, bool) {
        self.next_id += 1;
        let call_id = self.next_id;
        let call = Call {
            requester,
            rid,
            responder,
            service,
            received,
            deadline,
        };
        self.table.insert(call_id, call);
        self.deadlines.insert((deadline, call_id));
        let wake = self.armed.is_none_or(|armed| deadline < armed);
        if wake {
            self.armed = Some(deadline);
        }
        (call_id, wake)
    }

    /// Ends call `call_id` if `from` is the connection it was routed to.
    pub(crate) fn answer(&mut self, call_id: u64, from: u64) -> Option<Call> {
        match self.table.get(&call_id) {
            Some(call) if call.responder == from => self.remove(call_id),
            _ => None,
        }
    }

    /// Ends call `call_id`, whoever it was routed to: its entry and its
    /// deadline go at once.
    pub(crate) fn remove(&mut self, call_id: u64) -> Option<Call> {
        let call = self.table.remove(&call_id)?;
        self.deadlines.remove(&(call.deadline, call_id));
        self.shrink_if_sparse();
        Some(call)
    }

    fn shrink_if_sparse(&mut self) {
        if let Some(room) = shrunk_room(self.table.len(), self.table.capacity()) {
            self.table.shrink_to(room);
        }
    }

    /// Ends and returns the next call whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(u64, Call)> {
        let &(deadline, _) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        let (_, call_id) = self.deadlines.pop_first()?;
        let call = self.table.remove(&call_id)?;
        self.shrink_if_sparse();
        Some((call_id, call))
    }

    /// The earliest deadline of a call in flight, which the timer now
    /// sleeps towards.
    pub(crate) fn arm(&mut self) -> Option<Instant> {
        self.armed = self.deadlines.first().map(|&(deadline, _)| deadline);
        self.armed
    }

    /// Calls in flight.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Deadlines kept: one per call in flight, never more.
    #[cfg(test)]
    pub(crate) fn deadline_count(&self) -> usize {
        self.deadlines.len()
    }
}
/// What a hash table of `len` entries in `capacity` should shrink to, if
/// anything. Hash tables never give room back by themselves, so one flood
/// of calls would leave them sized for it for good. Once a table is down
/// to an eighth of its room (and the room is worth it) it shrinks to twice
/// its length: each shrink copies at most a seventh of the entries removed
/// since the table was last that large, O(1) per removal.
pub(crate) fn shrunk_room(len: usize, capacity: usize) -> Option<usize> {
    const WORTH_IT: usize = 1024;
    (capacity > WORTH_IT && len < capacity / 8).then_some(len * 2)
}

#[cfg(test)]
mod tests {
    use super::shrunk_room;

    #[test]
    fn a_table_shrinks_only_once_mostly_empty_and_worth_it() {
        assert_eq!(shrunk_room(10, 1024), None, "small tables keep their room");
        assert_eq!(shrunk_room(1000, 4096), None, "a quarter full");
        assert_eq!(shrunk_room(511, 4096), Some(1022));
        assert_eq!(shrunk_room(0, 1 << 20), Some(0));
    }
}
