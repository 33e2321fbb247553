//! Services, and the table of requests in flight.
//!
//! A request goes to exactly one allowed responder (round robin); its call
//! id is the daemon's, so only that responder can answer it, once. Late,
//! second and stray replies are dropped and counted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use busd_proto::{ErrorCode, Sender, Status, Subject};

use crate::Router;
use crate::router::{Conn, SubscribeError};

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
}

/// A request whose answer goes back to `requester` under its own `rid`
/// (a reply, or the daemon's `Timeout` / `ResponderGone`).
#[derive(Debug, Clone)]
pub struct Unanswered<H> {
    /// The requesting connection.
    pub requester: H,
    /// The requester's id for the request.
    pub rid: u64,
}

#[derive(Debug)]
struct Call {
    requester: u64,
    rid: u64,
    responder: u64,
}

#[derive(Debug, Default)]
struct Service {
    /// (connection, sid, capability the responder requires of callers).
    responders: Vec<(u64, u64, Option<String>)>,
    next: usize,
}

/// Services and calls in flight.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    services: HashMap<Subject, Service>,
    table: ahash::AHashMap<u64, Call>,
    /// Deadlines, lazily pruned: an entry whose call is gone is skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
}

impl<H: Clone> Router<H> {
    /// Registers `conn`'s `sid` as a responder of `service`; with
    /// `require_capability`, only packages granted it may call.
    ///
    /// # Errors
    /// `InvalidSubject` for a wildcard name; as [`Router::subscribe`] otherwise.
    pub fn serve(
        &mut self,
        conn: u64,
        sid: u64,
        service: Subject,
        require_capability: Option<String>,
    ) -> Result<(), SubscribeError> {
        if service.has_wildcards() {
            return Err(SubscribeError::new(
                ErrorCode::InvalidSubject,
                format!("service name {service} may not hold wildcards"),
            ));
        }
        self.claim_sid(conn, sid)?;
        let entry = self.calls.services.entry(service.clone()).or_default();
        entry.responders.push((conn, sid, require_capability));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.serves.insert(sid, service);
        }
        Ok(())
    }

    pub(crate) fn remove_responder(&mut self, service: &Subject, conn: u64, sid: u64) {
        if let Some(s) = self.calls.services.get_mut(service) {
            s.responders.retain(|r| (r.0, r.1) != (conn, sid));
            if s.responders.is_empty() {
                self.calls.services.remove(service);
            }
        }
    }

    /// Routes request `rid` from `from` to one allowed responder of
    /// `service`, to be answered by `deadline`.
    ///
    /// # Errors
    /// The status to answer at once: `NoResponders` when nobody serves
    /// `service`, `NotAuthorized` when nobody the rules allow does.
    pub fn request(
        &mut self,
        from: u64,
        rid: u64,
        service: &Subject,
        deadline: Instant,
    ) -> Result<Routed<H>, Status> {
        let Some(asker) = self.conns.get(&from) else {
            return Err(Status::NotAuthorized);
        };
        let Some(svc) = self.calls.services.get_mut(service) else {
            self.stats.no_responders += 1;
            return Err(Status::NoResponders);
        };
        let n = svc.responders.len();
        let conns = &self.conns;
        let policy = &self.policy;
        let pick = (0..n).map(|i| (svc.next + i) % n).find(|&i| {
            let (conn, _, capability) = &svc.responders[i];
            let capable = capability
                .as_deref()
                .is_none_or(|cap| policy.has_capability(&asker.identity, cap));
            capable
                && conns
                    .get(conn)
                    .is_some_and(|r| policy.allows(&asker.identity, &r.identity))
        });
        let Some(i) = pick else {
            self.stats.not_authorized += 1;
            if let Some(r) = svc.responders.first().and_then(|(c, _, _)| conns.get(c)) {
                crate::router::audit_denied(&asker.identity, &r.identity, service);
            }
            return Err(Status::NotAuthorized);
        };
        svc.next = i + 1;
        let (responder, sid, _) = svc.responders[i];
        let from_sender = asker.sender.clone();
        self.calls.next_id += 1;
        let call_id = self.calls.next_id;
        self.calls.table.insert(
            call_id,
            Call {
                requester: from,
                rid,
                responder,
            },
        );
        self.calls.deadlines.push(Reverse((deadline, call_id)));
        if let Some(c) = self.conns.get_mut(&from) {
            c.asking.insert(call_id);
        }
        // `pick` found this responder among the connections just above.
        let Some(r) = self.conns.get_mut(&responder) else {
            return Err(Status::NoResponders);
        };
        r.serving.insert(call_id);
        self.stats.requests += 1;
        Ok(Routed {
            responder: r.handle.clone(),
            call_id,
            sid,
            from: from_sender,
        })
    }

    /// A reply from `from` to call `call_id`: returns where it goes, or
    /// `None` (counted) if the call is over or `from` was not asked.
    pub fn respond(&mut self, from: u64, call_id: u64) -> Option<Unanswered<H>> {
        match self.calls.table.get(&call_id) {
            Some(call) if call.responder == from => {}
            _ => {
                self.stats.late_replies += 1;
                return None;
            }
        }
        let call = self.calls.table.remove(&call_id)?;
        self.finish(call_id, &call)
    }

    /// Ends every call whose deadline is at or before `now`; returns the
    /// requesters to answer `Timeout`.
    pub fn expire(&mut self, now: Instant) -> Vec<Unanswered<H>> {
        let mut out = Vec::new();
        while let Some(Reverse((deadline, call_id))) = self.calls.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.calls.deadlines.pop();
            let Some(call) = self.calls.table.remove(&call_id) else {
                continue; // answered already
            };
            self.stats.timeouts += 1;
            out.extend(self.finish(call_id, &call));
        }
        out
    }

    /// The earliest deadline of a call still in flight.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, call_id))) = self.calls.deadlines.peek().copied() {
            if self.calls.table.contains_key(&call_id) {
                return Some(deadline);
            }
            self.calls.deadlines.pop();
        }
        None
    }

    /// Calls in flight.
    pub fn pending_requests(&self) -> usize {
        self.calls.table.len()
    }

    fn finish(&mut self, call_id: u64, call: &Call) -> Option<Unanswered<H>> {
        if let Some(r) = self.conns.get_mut(&call.responder) {
            r.serving.remove(&call_id);
        }
        let asker = self.conns.get_mut(&call.requester)?;
        asker.asking.remove(&call_id);
        Some(Unanswered {
            requester: asker.handle.clone(),
            rid: call.rid,
        })
    }

    /// Drops the calls of a departed connection: those it asked are
    /// forgotten, those it served are returned for `ResponderGone`.
    pub(crate) fn forget_calls(&mut self, gone: &Conn<H>) -> Vec<Unanswered<H>> {
        for call_id in &gone.asking {
            if let Some(call) = self.calls.table.remove(call_id) {
                if let Some(r) = self.conns.get_mut(&call.responder) {
                    r.serving.remove(call_id);
                }
            }
        }
        let mut out = Vec::new();
        for call_id in &gone.serving {
            if let Some(call) = self.calls.table.remove(call_id) {
                self.stats.responder_gone += 1;
                out.extend(self.finish(*call_id, &call));
            }
        }
        out
    }
}
