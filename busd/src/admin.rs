//! `busd ctl`: live state and reload, for admin identities only.
//!
//! An admin is a client whose uid is the daemon's own or listed in
//! `[daemon] admin_uids`, proven by the socket (never claimed). Answers
//! are JSON documents in the `Resp` payload.

use std::sync::Arc;

use busd_policy::Identity;
use busd_proto::{CtlCommand, ErrorCode, Status};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::Config;
use crate::conn::lock;
use crate::server::Shared;

/// Whether `who` may run ctl commands.
pub(crate) fn is_admin(shared: &Shared, who: &Identity) -> bool {
    let Some(uid) = who.uid else {
        return false;
    };
    uid == rustix::process::getuid().as_raw() || lock(&shared.admin_uids).contains(&uid)
}

/// Runs `command` for `who`; the status and JSON payload of the `Resp`.
pub(crate) fn run(shared: &Shared, who: &Identity, command: CtlCommand) -> (Status, Bytes) {
    if !is_admin(shared, who) {
        tracing::warn!(target: "busd::audit", %who, ?command, "ctl refused: not an admin");
        return (Status::NotAuthorized, Bytes::new());
    }
    tracing::info!(target: "busd::audit", %who, ?command, "ctl");
    let (status, doc) = match command {
        CtlCommand::Stats => (Status::Success, stats(shared)),
        CtlCommand::Clients => (Status::Success, clients(shared)),
        CtlCommand::Subs => (Status::Success, subs(shared)),
        CtlCommand::Reload => match reload(shared) {
            Ok(doc) => (Status::Success, doc),
            Err(e) => (Status::Failure, json!({ "error": e })),
        },
        _ => (Status::Failure, json!({ "error": "unknown command" })),
    };
    (status, Bytes::from(doc.to_string()))
}

fn stats(shared: &Shared) -> Value {
    let st = lock(&shared.router);
    let s = st.router.stats();
    json!({
        "connections": st.router.connection_count(),
        "subscriptions": st.router.subscription_count(),
        "pending_requests": st.router.pending_requests(),
        "published": s.published,
        "delivered": s.delivered,
        "denied": s.denied,
        "requests": s.requests,
        "no_responders": s.no_responders,
        "not_authorized": s.not_authorized,
        "timeouts": s.timeouts,
        "responder_gone": s.responder_gone,
        "late_replies": s.late_replies,
    })
}

fn clients(shared: &Shared) -> Value {
    let list = lock(&shared.router).router.clients();
    Value::Array(
        list.into_iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "pfn": c.identity.pfn.as_ref().map(ToString::to_string),
                    "uid": c.identity.uid,
                    "subscriptions": c.subscriptions,
                    "services": c.services,
                    "pending_calls": c.pending_calls,
                })
            })
            .collect(),
    )
}

fn subs(shared: &Shared) -> Value {
    let list = lock(&shared.router).router.registrations();
    Value::Array(
        list.into_iter()
            .map(|r| {
                json!({
                    "client": r.conn,
                    "sid": r.sid,
                    "kind": if r.service { "service" } else { "subscription" },
                    "subject": r.subject.as_str(),
                    "queue": r.queue,
                })
            })
            .collect(),
    )
}

/// Re-reads the configuration and applies its access rules atomically: an
/// invalid file changes nothing. Connections of packages that are gone are
/// closed; every route obeys the new rules from the next delivery on.
///
/// # Errors
/// The reason the file was refused ("file:line: reason").
pub(crate) fn reload(shared: &Shared) -> Result<Value, String> {
    let path = shared.config.path.clone();
    let new = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "busd::audit", cause = %e, "reload refused: the old rules stay");
            return Err(e.to_string());
        }
    };
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    if new.tcp != shared.config.tcp
        || new.unix != shared.config.unix
        || new.limits != shared.config.limits
    {
        tracing::warn!(
            "listeners and limits change only with a restart; the new access rules apply now"
        );
    }
    let packages = new.policy.packages.len();
    let removed = lock(&shared.router)
        .router
        .set_policy(Arc::clone(&new.policy));
    for (_, handle) in &removed {
        handle.close_with(
            ErrorCode::NotAuthorized,
            "your package was removed from the configuration",
        );
    }
    *lock(&shared.admin_uids) = new.admin_uids.clone();
    tracing::info!(target: "busd::audit", packages, disconnected = removed.len(), "configuration reloaded");
    Ok(json!({
        "packages": packages,
        "disconnected": removed.len(),
        "warnings": new.warnings,
    }))
}
