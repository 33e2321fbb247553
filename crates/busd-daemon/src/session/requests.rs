//! Requests and replies: a request routed to one responder (or answered
//! at once), a reply passed back to whoever asked.

use std::time::Instant;

use busd_core::RequestError;
use busd_proto::{ErrorCode, Headers, Op, Ref, Status, Subject};
use bytes::Bytes;

use super::link::Link;
use crate::audit;
use crate::payload::Payload;
use crate::sync::lock;

impl Link {
    /// Routes request `rid`, read at `received`, to a responder of
    /// `service`, due by `deadline`;
    /// `NoResponders` or `NotAuthorized` are answered at once, and a
    /// request past `max_pending_requests` with `LimitExceeded`.
    pub(super) fn request(
        &mut self,
        rid: u64,
        service: Subject,
        (received, deadline): (Instant, Instant),
        headers: Option<Headers>,
        mut payload: Payload,
    ) {
        let routed =
            lock(&self.shared.router).request(self.id, rid, &service, (received, deadline));
        if self.shared.monitors.active() {
            let outcome = routed.as_ref().map_err(RequestError::status);
            self.watch_request(&service, outcome, headers.as_ref(), &mut payload);
        }
        match routed {
            Ok(r) => {
                if r.wake_timer {
                    self.shared.timer.notify_one();
                }
                let call = Op::Call {
                    rid: r.call_id,
                    sid: r.sid,
                    service,
                    from: r.from,
                    headers,
                };
                if let Err(e) = r.responder.send_payload(&call, payload) {
                    let msg = format!("the daemon could not map this request's segment: {e}");
                    self.handle
                        .send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(rid)));
                }
            }
            Err(e) => match e.status() {
                Some(status) => {
                    let resp = Op::Resp {
                        rid,
                        status,
                        headers: None,
                    };
                    self.handle.send(&resp, Bytes::new());
                }
                None => {
                    audit::limit_reached(self.who(), "limits.max_pending_requests", &e);
                    (self.handle).send_error(e.code(), e.to_string(), Some(Ref::Rid(rid)));
                }
            },
        }
    }

    /// Passes a responder's answer to call `call_id` back; a late, second
    /// or stray one is dropped (the router counts it).
    pub(super) fn respond(
        &mut self,
        call_id: u64,
        status: Status,
        headers: Option<Headers>,
        mut payload: Payload,
    ) {
        let back = lock(&self.shared.router).respond(self.id, call_id);
        let Some(u) = back else {
            tracing::debug!(call_id, "late, repeated or stray reply dropped");
            return;
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
        if let Err(e) = u.requester.send_payload(&resp, payload) {
            let msg = format!("the daemon could not map this reply's segment: {e}");
            u.requester
                .send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(u.rid)));
        }
    }
}
