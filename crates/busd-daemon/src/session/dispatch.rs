//! Carrying out what one frame asks, as `busd_core::Session` reads it
//! (publishes, the hot path, go from the read loop to `fanout` directly).

use busd_core::{ProtocolError, RouterError, Step};
use busd_proto::{ErrorCode, Frame, Op, Ref};
use bytes::Bytes;
use tokio::time::Instant;

use super::link::Link;
use super::requests;
use crate::admin;
use crate::audit;
use crate::payload::Payload;
use crate::sync::lock;

impl Link {
    /// Handles one frame; `false` when the connection must close (the
    /// client has been told why).
    pub(super) fn on_frame(&mut self, frame: Frame) -> bool {
        let Frame {
            op,
            payload,
            segment,
            fds,
            lease,
        } = frame;
        if let Some(hook) = &self.shared.hooks.on_op {
            hook(self.id, &op);
        }
        if let Op::Release { blocks } = &op {
            return self.released(blocks);
        }
        let payload = Payload::new(payload, segment, lease);
        // Only a request reads the clock, for its deadline.
        let step = match self.protocol.on_op(op, || Instant::now().into_std()) {
            Ok(step) => step,
            Err(e) => return self.refused(&e),
        };
        match step {
            Step::Subscribe {
                sid,
                subject,
                queue,
                overflow,
            } => {
                let r = lock(&self.shared.router).subscribe(self.id, sid, subject, queue, overflow);
                if let Err(e) = r {
                    self.registration_refused(sid, &e);
                }
            }
            Step::Serve {
                sid,
                service,
                require_capability,
            } => {
                let mut router = lock(&self.shared.router);
                let r = if self.bridge && service.has_wildcards() {
                    router.serve_relay(self.id, sid, service.clone())
                } else {
                    router.serve(self.id, sid, service.clone(), require_capability)
                };
                drop(router);
                match r {
                    // Requests may wait for it, if the daemon started it.
                    Ok(()) => requests::route_held(&self.shared, &service),
                    Err(e) => self.registration_refused(sid, &e),
                }
            }
            Step::Unsubscribe { sid } => self.unsubscribe(sid),
            Step::Monitor {
                sid,
                subject,
                contents,
            } => self.start_monitor(sid, subject, contents),
            Step::Request {
                rid,
                service,
                received,
                deadline,
                headers,
            } => {
                let headers = self.vouched(headers);
                self.request(rid, service, (received, deadline), headers, (payload, fds));
            }
            Step::Respond {
                call_id,
                status,
                headers,
            } => {
                let status = match self.bridge {
                    true => crate::bridge::relayed_status(status, headers.as_ref()),
                    false => status,
                };
                let headers = self.vouched(headers);
                self.respond(call_id, status, headers, (payload, fds));
            }
            Step::Ctl { rid, command } => {
                let (status, payload) = admin::run(&self.shared, &self.identity, command);
                let resp = Op::Resp {
                    rid,
                    status,
                    headers: None,
                };
                self.handle.send(&resp, payload);
            }
            Step::Pong => self.handle.send(&Op::Pong, Bytes::new()),
            // The read loop takes publishes to `fanout` itself; nothing to
            // do for the rest, and the handshake's steps do not come here.
            _ => {}
        }
        true
    }

    /// Removes the monitor, subscription or service `sid`.
    fn unsubscribe(&self, sid: u64) {
        if !self.end_monitor(sid) {
            lock(&self.shared.router).unsubscribe(self.id, sid);
        }
    }

    /// Tells the client why the router refused its registration `sid`
    /// (audited when a limit did).
    fn registration_refused(&self, sid: u64, e: &RouterError) {
        if e.code() == ErrorCode::LimitExceeded {
            audit::limit_reached(self.who(), "limits.max_subscriptions", e);
        }
        (self.handle).send_error(e.code(), e.to_string(), Some(Ref::Sid(sid)));
    }

    /// Tells the client why its frame was refused; `false` when the
    /// connection must close for it.
    pub(super) fn refused(&self, e: &ProtocolError) -> bool {
        if e.is_fatal() {
            tracing::info!(code = %e.code(), cause = %e, "closing on a protocol violation");
            // Stop reading; what is owed to the peer goes first.
            self.handle.close_after(e.code(), &e.to_string());
            return false;
        }
        self.handle.send_error(e.code(), e.to_string(), e.refers());
        true
    }
}
