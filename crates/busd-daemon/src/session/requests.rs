//! Requests and replies: a request routed to one responder (or answered
//! at once), a reply passed back to whoever asked.

use std::time::Instant;

use std::sync::Arc;

use busd_core::{RequestError, Routed};
use busd_proto::{ErrorCode, Fds, Headers, Op, Ref, Status, Subject};
use bytes::Bytes;

use super::activate;
use super::link::Link;
use super::watched::{party_of, watch_request};
use crate::activation::Held;
use crate::audit;
use crate::outbox::ConnHandle;
use crate::payload::Payload;
use crate::shared::Shared;
use crate::sync::lock;

impl Link {
    /// Routes request `rid`, read at `received`, to a responder of
    /// `service`, due by `deadline`; `NoResponders` or `NotAuthorized` are
    /// answered at once, and a request past `max_pending_requests` with
    /// `LimitExceeded`, as is one with more fds than the limits allow. A
    /// request for a service the daemon starts on demand, which nobody
    /// serves now, waits for it (see `activation`).
    pub(super) fn request(
        &mut self,
        rid: u64,
        service: Subject,
        times: (Instant, Instant),
        headers: Option<Headers>,
        (mut payload, fds): (Payload, Fds),
    ) {
        let fds = match self.admit_fds(fds) {
            Ok(fds) => fds,
            Err(why) => {
                (self.handle).send_error(ErrorCode::LimitExceeded, why, Some(Ref::Rid(rid)));
                return;
            }
        };
        let routed = {
            let mut router = lock(&self.shared.router);
            match router.activation(self.id, &service) {
                Some(Ok(rule)) => {
                    drop(router);
                    let held = Held {
                        from: self.id,
                        handle: Arc::clone(&self.handle),
                        rid,
                        service,
                        times,
                        headers,
                        payload,
                        fds,
                    };
                    activate::hold(&self.shared, &rule, held);
                    return;
                }
                Some(Err(refused)) => Err(refused),
                None => router.request(self.id, rid, &service, times),
            }
        };
        if self.shared.monitors.active() {
            let outcome = routed.as_ref().map_err(RequestError::status);
            self.watch_request(&service, outcome, headers.as_ref(), &mut payload);
        }
        if let Err(e @ RequestError::TooManyRequests { .. }) = &routed {
            audit::limit_reached(self.who(), "limits.max_pending_requests", e);
        }
        deliver(
            &self.shared,
            &self.handle,
            (rid, service),
            headers,
            (payload, fds),
            routed,
        );
    }

    /// Passes a responder's answer to call `call_id` back; a late, second
    /// or stray one is dropped (the router counts it). One with more fds
    /// than the limits allow is not: both sides are told `LimitExceeded`.
    pub(super) fn respond(
        &mut self,
        call_id: u64,
        status: Status,
        headers: Option<Headers>,
        (mut payload, fds): (Payload, Fds),
    ) {
        let back = lock(&self.shared.router).respond(self.id, call_id, status);
        let Some(u) = back else {
            tracing::debug!(call_id, "late, repeated or stray reply dropped");
            return;
        };
        let fds = match self.admit_fds(fds) {
            Ok(fds) => fds,
            Err(why) => {
                let to_requester = format!("the reply {why}");
                let rid = Some(Ref::Rid(u.rid));
                (u.requester).send_error(ErrorCode::LimitExceeded, to_requester, rid);
                (self.handle).send_error(ErrorCode::LimitExceeded, why, Some(Ref::Rid(call_id)));
                return;
            }
        };
        self.shared.metrics.replied(status, u.received);
        if self.shared.monitors.active() {
            let answer = (status, headers.as_ref());
            self.watch_reply(call_id, u.requester.id, answer, &mut payload);
        }
        let resp = Op::Resp {
            rid: u.rid,
            status,
            headers,
        };
        if let Err(e) = u.requester.send_payload(&resp, payload, fds) {
            let msg = format!("the daemon could not map this reply's segment: {e}");
            u.requester
                .send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(u.rid)));
        }
    }
}

/// Routes the requests that waited for `service` to start, now that it
/// serves.
pub(super) fn route_held(shared: &Shared, service: &Subject) {
    for mut held in shared.activations.served(service) {
        let (routed, from) = {
            let mut router = lock(&shared.router);
            let routed = router.request(held.from, held.rid, &held.service, held.times);
            (
                routed,
                shared
                    .monitors
                    .active()
                    .then(|| party_of(&router, held.from)),
            )
        };
        if let Some(from) = from {
            let outcome = routed.as_ref().map_err(RequestError::status);
            let headers = held.headers.as_ref();
            watch_request(
                shared,
                from,
                &held.service,
                outcome,
                headers,
                &mut held.payload,
            );
        }
        let request = (held.rid, held.service);
        deliver(
            shared,
            &held.handle,
            request,
            held.headers,
            (held.payload, held.fds),
            routed,
        );
    }
}

/// Sends a routed request to its responder, or the daemon's answer to
/// the requester (`handle`).
fn deliver(
    shared: &Shared,
    handle: &ConnHandle,
    (rid, service): (u64, Subject),
    headers: Option<Headers>,
    (payload, fds): (Payload, Fds),
    routed: Result<Routed<Arc<ConnHandle>>, RequestError>,
) {
    match routed {
        Ok(r) => {
            if r.wake_timer {
                shared.timer.notify_one();
            }
            let call = Op::Call {
                rid: r.call_id,
                sid: r.sid,
                service,
                from: r.from,
                headers,
            };
            if let Err(e) = r.responder.send_payload(&call, payload, fds) {
                // Answered here, once: the call goes, so that neither the
                // responder's reply nor its deadline answers it again.
                lock(&shared.router).undeliverable(r.call_id);
                let msg = format!("the daemon could not map this request's segment: {e}");
                handle.send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(rid)));
            }
        }
        Err(e) => match e.status() {
            Some(status) => {
                let resp = Op::Resp {
                    rid,
                    status,
                    headers: None,
                };
                let why = match e {
                    RequestError::NotAuthorized => refusal(shared, handle.id, &service),
                    _ => Bytes::new(),
                };
                handle.send(&resp, why);
            }
            None => handle.send_error(e.code(), e.to_string(), Some(Ref::Rid(rid))),
        },
    }
}

/// Why the caller on connection `conn` may not call `service`, in words
/// that tell it nothing it could not know (the payload of its
/// `NotAuthorized` answer): that the service requires a capability its
/// package lacks, or that the rules do not let it reach the service's
/// responders. Never another package's rules, nor who serves: those are
/// for an admin's `busd ctl explain`.
fn refusal(shared: &Shared, conn: u64, service: &Subject) -> Bytes {
    let router = lock(&shared.router);
    let Some((asker, _)) = router.connection(conn) else {
        return Bytes::new();
    };
    let why = match router.capability_lacking(asker, service) {
        Some(cap) => format!(
            "service {service} requires capability {cap}, which {} does not hold",
            asker.party()
        ),
        None => format!(
            "the access rules do not let {} reach the responders of {service}",
            asker.party()
        ),
    };
    Bytes::from(why)
}
