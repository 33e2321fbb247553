//! Services: registering responders, routing each request to one allowed
//! responder (round robin), its one answer back, and deadlines.
//!
//! Late, second and stray replies are dropped and counted.

use std::time::Instant;

use busd_proto::{Status, Subject};

use crate::audit;
use crate::calls::{Responder, Routed, Unanswered};
use crate::error::RouterError;
use crate::router::Router;

impl<H: Clone> Router<H> {
    /// Registers `conn`'s `sid` as a responder of `service`; with
    /// `require_capability`, only packages granted it may call.
    ///
    /// # Errors
    /// [`RouterError::WildcardService`] for a wildcard name; as
    /// [`Router::subscribe`] otherwise.
    pub fn serve(
        &mut self,
        conn: u64,
        sid: u64,
        service: Subject,
        require_capability: Option<String>,
    ) -> Result<(), RouterError> {
        if service.has_wildcards() {
            return Err(RouterError::WildcardService(service));
        }
        self.claim_sid(conn, sid)?;
        let responder = Responder {
            conn,
            sid,
            capability: require_capability,
        };
        self.calls.add_responder(service.clone(), responder);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.serves.insert(sid, service);
        }
        Ok(())
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
        let Some(svc) = self.calls.service_mut(service) else {
            self.stats.no_responders += 1;
            return Err(Status::NoResponders);
        };
        let n = svc.responders.len();
        let (conns, policy) = (&self.conns, &self.policy);
        let pick = (0..n).map(|i| (svc.next + i) % n).find(|&i| {
            let r = &svc.responders[i];
            let capable = r
                .capability
                .as_deref()
                .is_none_or(|cap| policy.has_capability(&asker.identity, cap));
            capable
                && conns
                    .get(&r.conn)
                    .is_some_and(|c| policy.allows(&asker.identity, &c.identity))
        });
        let Some(i) = pick else {
            self.stats.not_authorized += 1;
            if let Some(r) = svc.responders.first().and_then(|r| conns.get(&r.conn)) {
                audit::denied(&asker.identity, &r.identity, service);
            }
            return Err(Status::NotAuthorized);
        };
        svc.next = i + 1;
        let (responder, sid) = (svc.responders[i].conn, svc.responders[i].sid);
        let from_sender = asker.sender.clone();
        let (call_id, wake_timer) = self.calls.open(from, rid, responder, deadline);
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
            wake_timer,
        })
    }

    /// A reply from `from` to call `call_id`: returns where it goes, or
    /// `None` (counted) if the call is over or `from` was not asked.
    pub fn respond(&mut self, from: u64, call_id: u64) -> Option<Unanswered<H>> {
        let Some(call) = self.calls.answer(call_id, from) else {
            self.stats.late_replies += 1;
            return None;
        };
        self.stats.replies += 1;
        self.finish(call_id, &call)
    }

    /// Ends every call whose deadline is at or before `now`; returns the
    /// requesters to answer `Timeout`.
    pub fn expire(&mut self, now: Instant) -> Vec<Unanswered<H>> {
        let mut out = Vec::new();
        while let Some((call_id, call)) = self.calls.pop_expired(now) {
            self.stats.timeouts += 1;
            out.extend(self.finish(call_id, &call));
        }
        out
    }

    /// The earliest deadline of a call still in flight, which the caller's
    /// timer is taken to sleep towards from now on: a later request with
    /// an earlier deadline says so ([`Routed::wake_timer`]).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.calls.arm()
    }

    /// Calls in flight.
    pub fn pending_requests(&self) -> usize {
        self.calls.len()
    }
}
