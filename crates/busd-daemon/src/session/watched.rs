//! Telling the monitors about a publish, request or reply, once the
//! session has seen that one runs (see `crate::monitor`): who it reached,
//! who the rules kept out, and when. Never reached while nobody monitors.

use std::sync::Arc;

use busd_core::{Route, Routed, Router};
use busd_policy::Identity;
use busd_proto::{EventKind, Headers, MonitorEvent, Party, Status, Subject};
use bytes::Bytes;

use super::link::Link;
use crate::monitor;
use crate::outbox::ConnHandle;
use crate::payload::Payload;
use crate::shared::Shared;
use crate::sync::lock;

impl Link {
    /// Routes a publish to `subject` into `route` while monitors run:
    /// through the router when one watches `subject` (a reused route
    /// knows no identities), with an event for each that does.
    #[cold]
    pub(super) fn route_watched(
        &mut self,
        subject: &Subject,
        headers: Option<&Headers>,
        payload: &mut Payload,
        route: &mut Route<Arc<ConnHandle>>,
    ) {
        let watchers = self.shared.monitors.watching(subject);
        if watchers.is_empty() {
            if !route.reuse(subject, &self.epoch) {
                lock(&self.shared.router).route(self.id, subject, route);
            }
            return;
        }
        let (to, denied) = {
            let mut denied = Vec::new();
            let mut router = lock(&self.shared.router);
            router.route_watched(self.id, subject, route, &mut denied);
            let to = route.targets().iter().map(|t| party_of(&router, t.conn));
            let denied = denied.iter().map(|(conn, identity)| party(*conn, identity));
            (to.collect(), denied.collect())
        };
        let event = MonitorEvent {
            to,
            denied,
            headers: headers.cloned(),
            ..self.event(EventKind::Publish, subject, payload.len())
        };
        monitor::emit(&watchers, event, || contents_of(payload));
    }

    /// Tells the monitors watching `service` how request `rid`'s routing
    /// went: to which responder, or the daemon's answer at once.
    pub(super) fn watch_request(
        &self,
        service: &Subject,
        routed: Result<&Routed<Arc<ConnHandle>>, Option<Status>>,
        headers: Option<&Headers>,
        payload: &mut Payload,
    ) {
        let from = party(self.id, &self.identity);
        watch_request(&self.shared, from, service, routed, headers, payload);
    }

    /// Tells the monitors that saw call `call_id` asked about its reply,
    /// with `status`, going back to `requester`.
    pub(super) fn watch_reply(
        &self,
        call_id: u64,
        requester: u64,
        (status, headers): (Status, Option<&Headers>),
        payload: &mut Payload,
    ) {
        let Some(service) = self.shared.monitors.call_answered(call_id) else {
            return;
        };
        let watchers = self.shared.monitors.watching(&service);
        if watchers.is_empty() {
            return;
        }
        let caller = party_of(&lock(&self.shared.router), requester);
        let event = MonitorEvent {
            to: vec![caller],
            call: Some(call_id),
            status: Some(status),
            headers: headers.cloned(),
            ..self.event(EventKind::Reply, &service, payload.len())
        };
        monitor::emit(&watchers, event, || contents_of(payload));
    }

    /// An event from this connection, now, of a message of `size` bytes.
    fn event(&self, kind: EventKind, subject: &Subject, size: usize) -> MonitorEvent {
        MonitorEvent {
            time_us: monitor::now_us(),
            kind,
            subject: subject.clone(),
            from: party(self.id, &self.identity),
            to: Vec::new(),
            denied: Vec::new(),
            size: size as u64,
            status: None,
            call: None,
            headers: None,
        }
    }
}

/// Tells the monitors watching `service` how a request from `from` was
/// routed: to which responder, or the daemon's answer at once. For a
/// request as it is read, and for one held for its service to start,
/// routed once it serves.
pub(super) fn watch_request(
    shared: &Shared,
    from: Party,
    service: &Subject,
    routed: Result<&Routed<Arc<ConnHandle>>, Option<Status>>,
    headers: Option<&Headers>,
    payload: &mut Payload,
) {
    let watchers = shared.monitors.watching(service);
    if watchers.is_empty() {
        return;
    }
    let (to, call, status) = match routed {
        Ok(r) => {
            shared.monitors.call_asked(r.call_id, service);
            let responder = party_of(&lock(&shared.router), r.responder.id);
            (vec![responder], Some(r.call_id), None)
        }
        // Refused at a limit: an error to the caller, not a routing.
        Err(None) => return,
        Err(status) => (Vec::new(), None, status),
    };
    let event = MonitorEvent {
        time_us: monitor::now_us(),
        kind: EventKind::Request,
        subject: service.clone(),
        from,
        to,
        denied: Vec::new(),
        size: payload.len() as u64,
        status,
        call,
        headers: headers.cloned(),
    };
    monitor::emit(&watchers, event, || contents_of(payload));
}

/// The payload's bytes for a monitor, the payload itself kept for the
/// receivers (a segment is mapped once for all that need its bytes;
/// empty if it cannot be).
fn contents_of(payload: &mut Payload) -> Bytes {
    payload
        .for_receiver(false, false)
        .map(|(_, bytes)| bytes)
        .unwrap_or_default()
}

/// Connection `conn` as the router knows it (a bare id if it is gone).
pub(super) fn party_of(router: &Router<Arc<ConnHandle>>, conn: u64) -> Party {
    match router.connection(conn) {
        Some((identity, _)) => party(conn, identity),
        None => Party {
            client_id: conn,
            pfn: None,
            uid: None,
        },
    }
}

fn party(conn: u64, identity: &Identity) -> Party {
    Party {
        client_id: conn,
        pfn: identity.pfn.clone(),
        uid: identity.uid,
    }
}
