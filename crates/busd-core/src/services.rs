//! Services: registering responders, routing each request to one allowed
//! responder (round robin), its one answer back, and deadlines.
//!
//! Late, second and stray replies are dropped and counted.

use std::time::Instant;

use busd_policy::{Identity, ServiceRule, ServicesMode};
use std::collections::HashMap;

use busd_proto::{Status, Subject};

use crate::audit;
use crate::calls::{Responder, Routed, Unanswered};
use crate::error::{RequestError, RouterError};
use crate::router::Router;
use crate::stats::ServiceCounts;

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
        // The configured capability wins over the one the server asks for.
        let capability = self.check_owner(conn, &service)?.or(require_capability);
        self.claim_sid(conn, sid)?;
        let responder = Responder {
            conn,
            sid,
            capability,
        };
        self.calls.add_responder(service.clone(), responder);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.serves.insert(sid, service);
        }
        Ok(())
    }

    /// Registers `conn`'s `sid` as a relay for every service name matching
    /// `pattern` (wildcards allowed) that nobody serves by name and no
    /// package configures: a bridge answering for the services of another
    /// bus. The access rules decide each call as for any responder.
    ///
    /// # Errors
    /// As [`Router::subscribe`].
    pub fn serve_relay(
        &mut self,
        conn: u64,
        sid: u64,
        pattern: Subject,
    ) -> Result<(), RouterError> {
        if !self.conns.contains_key(&conn) {
            return Err(RouterError::UnknownConnection);
        }
        self.claim_sid(conn, sid)?;
        let responder = Responder {
            conn,
            sid,
            capability: None,
        };
        self.calls.add_responder(pattern.clone(), responder);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.serves.insert(sid, pattern);
        }
        Ok(())
    }

    /// The configured service a request from `from` must wait for, when it
    /// is one the daemon starts on demand (`exec`) and nobody serves it
    /// now: `None` to route the request as usual, `Some(Ok(rule))` to
    /// start the service and hold the request, `Some(Err)` when `from`
    /// may not call it (counted and audited as a routed request would be),
    /// so that no caller can start what it could not call.
    pub fn activation(
        &mut self,
        from: u64,
        service: &Subject,
    ) -> Option<Result<ServiceRule, RequestError>> {
        if self.policy.services.is_empty() {
            return None;
        }
        let rule = self.policy.service(service).filter(|r| r.exec.is_some())?;
        if self.calls.is_served(service) {
            return None;
        }
        let asker = &self.conns.get(&from)?.identity;
        let owner = Identity::package(rule.owner.clone(), None);
        let capability = rule.require_capability.as_deref();
        let decision = self
            .policy
            .decide_request(asker, &owner, service, capability);
        if decision.allowed {
            return Some(Ok(rule.clone()));
        }
        self.stats.not_authorized += 1;
        audit::denied(asker, &owner, service, &decision);
        self.count_service(service, |c| c.not_authorized += 1);
        Some(Err(RequestError::NotAuthorized))
    }

    /// Whether `conn` may serve `service`: only its owner may serve a
    /// configured name, and with `services = "configured-only"` nobody
    /// serves another. The configured capability callers need, if any.
    fn check_owner(&self, conn: u64, service: &Subject) -> Result<Option<String>, RouterError> {
        let who = &self
            .conns
            .get(&conn)
            .ok_or(RouterError::UnknownConnection)?
            .identity;
        match self.policy.service(service) {
            Some(rule) if who.pfn.as_ref() == Some(&rule.owner) => {
                Ok(rule.require_capability.clone())
            }
            Some(rule) => {
                audit::serve_refused(who, service, &format!("owned by {}", rule.owner));
                Err(RouterError::ServiceOwned {
                    service: service.clone(),
                })
            }
            None if self.policy.services_mode == ServicesMode::ConfiguredOnly => {
                audit::serve_refused(
                    who,
                    service,
                    "not configured (services = \"configured-only\")",
                );
                Err(RouterError::ServiceNotConfigured(service.clone()))
            }
            None => Ok(None),
        }
    }

    /// Routes request `rid` from `from`, read at `received`, to one
    /// allowed responder of `service`, to be answered by `deadline`.
    ///
    /// # Errors
    /// What to answer at once (counted): `NoResponders` when nobody serves
    /// `service`, `NotAuthorized` when nobody the rules allow does, and
    /// `TooManyRequests` when `from` has `max_pending_requests` in flight.
    pub fn request(
        &mut self,
        from: u64,
        rid: u64,
        service: &Subject,
        (received, deadline): (Instant, Instant),
    ) -> Result<Routed<H>, RequestError> {
        let Some(asker) = self.conns.get(&from) else {
            return Err(RequestError::NotAuthorized);
        };
        let held = asker.asking.len();
        if held >= self.ledger.limits().max_pending_requests {
            self.stats.requests_over_limit += 1;
            let identity = Identity::clone(&asker.identity);
            self.count_service(service, |c| c.over_limit += 1);
            return Err(RequestError::TooManyRequests { identity, held });
        }
        if self.policy.services_mode == ServicesMode::ConfiguredOnly
            && self.policy.service(service).is_none()
        {
            self.stats.unknown_services += 1;
            return Err(RequestError::UnknownService(service.clone()));
        }
        // A configured name is its owner's alone: no relay answers for it.
        let relayed = self.policy.service(service).is_none();
        let Some(svc) = self.calls.route_to(service, relayed) else {
            self.stats.no_responders += 1;
            self.count_service(service, |c| c.no_responders += 1);
            return Err(RequestError::NoResponders);
        };
        let n = svc.responders.len();
        let (conns, policy) = (&self.conns, &self.policy);
        let pick = (0..n).map(|i| (svc.next + i) % n).find(|&i| {
            let r = &svc.responders[i];
            conns.get(&r.conn).is_some_and(|c| {
                let capability = r.capability.as_deref();
                policy
                    .decide_request(&asker.identity, &c.identity, service, capability)
                    .allowed
            })
        });
        let Some(i) = pick else {
            self.stats.not_authorized += 1;
            if let Some(first) = svc.responders.first() {
                if let Some(r) = conns.get(&first.conn) {
                    let capability = first.capability.as_deref();
                    let why =
                        policy.decide_request(&asker.identity, &r.identity, service, capability);
                    audit::denied(&asker.identity, &r.identity, service, &why);
                }
            }
            self.count_service(service, |c| c.not_authorized += 1);
            return Err(RequestError::NotAuthorized);
        };
        svc.next = i + 1;
        let (responder, sid) = (svc.responders[i].conn, svc.responders[i].sid);
        let from_sender = asker.sender.clone();
        let (call_id, wake_timer) = self.calls.open(
            (from, rid),
            (responder, service.clone()),
            (received, deadline),
        );
        if let Some(c) = self.conns.get_mut(&from) {
            c.asking.insert(call_id);
        }
        // `pick` found this responder among the connections just above.
        let Some(r) = self.conns.get_mut(&responder) else {
            return Err(RequestError::NoResponders);
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
    pub fn respond(&mut self, from: u64, call_id: u64, status: Status) -> Option<Unanswered<H>> {
        let Some(call) = self.calls.answer(call_id, from) else {
            self.stats.late_replies += 1;
            return None;
        };
        self.stats.replies += 1;
        self.count_service(&call.service, |c| {
            if status == Status::Success {
                c.success += 1;
            } else {
                c.failure += 1;
            }
        });
        self.finish(call_id, &call)
    }

    /// Ends call `call_id`, which could not be handed to its responder:
    /// the daemon answers its requester itself (an `Error` naming the
    /// request), so no reply or timeout may follow. Counted a failure.
    pub fn undeliverable(&mut self, call_id: u64) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.count_service(&call.service, |c| c.failure += 1);
        let _ = self.finish(call_id, &call);
    }

    /// How the requests for each configured service ended, since start.
    pub fn service_counts(&self) -> &HashMap<Subject, ServiceCounts> {
        &self.per_service
    }

    /// Counts an end of a request for `service`, if it is configured.
    pub(crate) fn count_service(
        &mut self,
        service: &Subject,
        count: impl FnOnce(&mut ServiceCounts),
    ) {
        if self.policy.service(service).is_some() {
            count(self.per_service.entry(service.clone()).or_default());
        }
    }

    /// Ends every call whose deadline is at or before `now`; returns the
    /// requesters to answer `Timeout`.
    pub fn expire(&mut self, now: Instant) -> Vec<Unanswered<H>> {
        let mut out = Vec::new();
        while let Some((call_id, call)) = self.calls.pop_expired(now) {
            self.stats.timeouts += 1;
            self.count_service(&call.service, |c| c.timeouts += 1);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use busd_policy::{Identity, Policy, UnpackagedMode};
    use busd_proto::{Status, Subject};

    use crate::ledger::RouterLimits;
    use crate::router::Router;

    #[test]
    fn an_undeliverable_call_is_answered_by_nothing_else() {
        let policy = Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid));
        let mut sut: Router<u64> = Router::new(policy, RouterLimits::default());
        sut.connect(1, Identity::unpackaged(Some(1000)), 1).unwrap();
        sut.connect(2, Identity::unpackaged(Some(1000)), 2).unwrap();
        let service = Subject::from_static("svc");
        sut.serve(2, 1, service.clone(), None).unwrap();
        let start = Instant::now();
        let due = start + Duration::from_secs(1);
        let routed = sut.request(1, 7, &service, (start, due)).unwrap();
        sut.undeliverable(routed.call_id);
        assert_eq!(sut.pending_requests(), 0);
        assert!(
            sut.respond(2, routed.call_id, Status::Success).is_none(),
            "no reply"
        );
        assert!(sut.expire(due).is_empty(), "no timeout");
        assert_eq!(sut.stats().timeouts, 0);
    }

    #[test]
    fn answered_requests_leave_nothing_behind_whatever_their_timeout() {
        let policy = Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid));
        let mut sut: Router<u64> = Router::new(policy, RouterLimits::default());
        sut.connect(1, Identity::unpackaged(Some(1000)), 1).unwrap();
        sut.connect(2, Identity::unpackaged(Some(1000)), 2).unwrap();
        let service = Subject::from_static("svc");
        sut.serve(2, 1, service.clone(), None).unwrap();
        let start = Instant::now();
        for rid in 0..200_000 {
            let due = start + Duration::from_secs(3600);
            let routed = sut.request(1, rid, &service, (start, due)).unwrap();
            let back = sut
                .respond(2, routed.call_id, Status::Success)
                .expect("answered");
            assert_eq!(back.rid, rid);
        }
        assert_eq!(sut.pending_requests(), 0);
        assert_eq!(
            sut.calls.deadline_count(),
            0,
            "no deadline outlives its call"
        );
        assert!(
            sut.conns
                .values()
                .all(|c| c.asking.is_empty() && c.serving.is_empty())
        );
        assert_eq!(
            sut.next_deadline(),
            None,
            "nothing for the timer to wake for"
        );
        assert!(sut.expire(start + Duration::from_secs(7200)).is_empty());
        assert_eq!(sut.stats().timeouts, 0);
    }

    #[test]
    fn calls_dropped_with_either_connection_leave_no_deadline() {
        let policy = Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid));
        let mut sut: Router<u64> = Router::new(policy, RouterLimits::default());
        let service = Subject::from_static("svc");
        let now = Instant::now();
        let due = now + Duration::from_secs(3600);
        for gone in [1, 2] {
            sut.connect(1, Identity::unpackaged(Some(1000)), 1).unwrap();
            sut.connect(2, Identity::unpackaged(Some(1000)), 2).unwrap();
            sut.serve(2, 1, service.clone(), None).unwrap();
            for rid in 0..10 {
                sut.request(1, rid, &service, (now, due)).unwrap();
            }
            assert_eq!(sut.calls.deadline_count(), 10);
            sut.disconnect(gone);
            assert_eq!(sut.pending_requests(), 0, "conn {gone} gone");
            assert_eq!(sut.calls.deadline_count(), 0, "conn {gone} gone");
            assert_eq!(sut.next_deadline(), None);
            sut.disconnect(3 - gone);
        }
    }
}
