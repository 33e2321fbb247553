//! Starting and ending a connection's monitors (`busd monitor`): admins
//! only, and audited either way.

use std::sync::Arc;

use busd_proto::{ErrorCode, Ref, Subject};

use super::link::Link;
use crate::admin;
use crate::monitor::{self, Watch};

impl Link {
    /// Starts monitor `sid` on `filter` for an admin; refuses anyone else
    /// with `NotAuthorized`.
    pub(super) fn start_monitor(&self, sid: u64, filter: Subject, contents: bool) {
        let who = self.who();
        if !admin::is_admin(&self.shared, &self.identity) {
            tracing::warn!(
                target: "busd::audit", %who, uid = who.uid, pid = who.pid, sid,
                subject = %filter, "monitor refused: not an admin"
            );
            let msg = "busd monitor is for admins only: the daemon's own uid or one in [daemon] admin_uids";
            (self.handle).send_error(ErrorCode::NotAuthorized, msg.into(), Some(Ref::Sid(sid)));
            return;
        }
        let limits = &self.shared.config.limits;
        let bounds = (
            limits.max_pending_msgs as usize,
            usize::try_from(limits.max_pending_bytes).unwrap_or(usize::MAX),
        );
        let watch = Arc::new(Watch::new((self.id, sid), filter.clone(), contents, bounds));
        if !self.shared.monitors.start(Arc::clone(&watch)) {
            let msg = format!("id {sid} is already in use on this connection");
            (self.handle).send_error(ErrorCode::ProtocolViolation, msg, Some(Ref::Sid(sid)));
            return;
        }
        tracing::info!(
            target: "busd::audit", %who, uid = who.uid, pid = who.pid, sid,
            subject = %filter, contents, "monitor started"
        );
        let forwarder = monitor::forward(watch, Arc::clone(&self.handle));
        self.shared.tracker.spawn(forwarder);
    }

    /// Ends monitor `sid` of this connection; whether it was one.
    pub(super) fn end_monitor(&self, sid: u64) -> bool {
        let ended = self.shared.monitors.end(self.id, |s| s == sid);
        self.audit_ended(&ended);
        !ended.is_empty()
    }

    /// Ends every monitor of this connection (it is closing).
    pub(super) fn end_monitors(&self) {
        let ended = self.shared.monitors.end(self.id, |_| true);
        self.audit_ended(&ended);
    }

    fn audit_ended(&self, ended: &[Arc<Watch>]) {
        let who = self.who();
        for w in ended {
            let totals = w.totals();
            tracing::info!(
                target: "busd::audit", %who, uid = who.uid, pid = who.pid, sid = w.sid,
                subject = %w.filter, events = totals.events, dropped = totals.dropped,
                "monitor ended"
            );
        }
    }
}
