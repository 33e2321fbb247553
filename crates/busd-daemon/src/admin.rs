//! `busd ctl`: live state and reload, for admin identities only.
//!
//! An admin is a client whose uid is the daemon's own or listed in
//! `[daemon] admin_uids`, proven by the socket (never claimed). Each
//! command's answer is a typed document, encoded as JSON into the `Resp`
//! payload only here, at the protocol's edge.

use std::collections::BTreeMap;
use std::sync::Arc;

use busd_policy::Identity;
use busd_proto::{CtlCommand, Overflow, Status};
use bytes::Bytes;
use serde::Serialize;

use crate::activation::ActivationDoc;
use crate::reload::reload;
use crate::shared::Shared;
use crate::sync::lock;
use crate::traffic::TrafficDoc;

/// Whether `who` may run ctl commands.
pub(crate) fn is_admin(shared: &Shared, who: &Identity) -> bool {
    let Some(uid) = who.uid else {
        return false;
    };
    uid == rustix::process::getuid().as_raw() || lock(&shared.admin_uids).contains(&uid)
}

/// Runs `command` for `who`; the status and JSON payload of the `Resp`.
pub(crate) fn run(shared: &Arc<Shared>, who: &Identity, command: CtlCommand) -> (Status, Bytes) {
    if !is_admin(shared, who) {
        tracing::warn!(target: "busd::audit", %who, ?command, "ctl refused: not an admin");
        return (Status::NotAuthorized, Bytes::new());
    }
    // A change is audited; a look (a container's healthcheck runs one
    // every few seconds) only at debug.
    if matches!(
        command,
        CtlCommand::Reload | CtlCommand::Grant(_) | CtlCommand::Revoke(_)
    ) {
        tracing::info!(target: "busd::audit", %who, ?command, "ctl");
    } else {
        tracing::debug!(target: "busd::audit", %who, ?command, "ctl");
    }
    match command {
        CtlCommand::Stats => answer(&stats(shared)),
        CtlCommand::Clients => answer(&clients(shared)),
        CtlCommand::Subs => answer(&subs(shared)),
        CtlCommand::Services => answer(&services(shared)),
        CtlCommand::Reload => match reload(shared) {
            Ok(report) => answer(&report),
            Err(e) => failure(&e.to_string()),
        },
        CtlCommand::ReloadDryRun(file) => {
            let file = file.as_deref().map(std::path::Path::new);
            match crate::dry_run::dry_run(shared, file, who.uid) {
                Ok(report) => answer(&report),
                Err(e) => failure(&e.to_string()),
            }
        }
        CtlCommand::Grant(req) => match crate::grants::grant(shared, &req, who) {
            Ok(doc) => answer(&doc),
            Err(e) => failure(&e),
        },
        CtlCommand::Grants => answer(&crate::grants::list(shared)),
        CtlCommand::Bridges => answer(&crate::bridge::views(shared)),
        CtlCommand::Revoke(id) => match crate::grants::revoke(shared, id, who) {
            Ok(()) => answer(&serde_json::json!({ "revoked": id })),
            Err(e) => failure(&e),
        },
        CtlCommand::Explain(q) => match crate::ctl_explain::explain(shared, &q) {
            Ok(doc) => answer(&doc),
            Err(e) => failure(&e),
        },
        _ => failure("unknown command"),
    }
}

/// `Success` with `doc` as JSON.
fn answer(doc: &impl Serialize) -> (Status, Bytes) {
    match serde_json::to_vec(doc) {
        Ok(json) => (Status::Success, Bytes::from(json)),
        Err(e) => failure(&format!("cannot encode the answer: {e}")),
    }
}

/// `Failure` with `{"error": why}`.
fn failure(why: &str) -> (Status, Bytes) {
    #[derive(Serialize)]
    struct Failed<'a> {
        error: &'a str,
    }
    let json = serde_json::to_vec(&Failed { error: why }).unwrap_or_default();
    (Status::Failure, Bytes::from(json))
}

/// `busd ctl stats`.
#[derive(Debug, Serialize)]
struct StatsDoc {
    connections: usize,
    subscriptions: usize,
    pending_requests: usize,
    #[serde(flatten)]
    counters: CountersDoc,
    #[serde(flatten)]
    deliveries: DeliveriesDoc,
}

/// The router's counters, as named on the wire.
#[derive(Debug, Serialize)]
struct CountersDoc {
    published: u64,
    delivered: u64,
    denied: u64,
    requests: u64,
    replies: u64,
    no_responders: u64,
    unknown_services: u64,
    not_authorized: u64,
    requests_over_limit: u64,
    timeouts: u64,
    responder_gone: u64,
    requester_gone: u64,
    late_replies: u64,
}

/// Where the deliveries went (`crate::Deliveries`), as named on the wire.
#[derive(Debug, Serialize)]
struct DeliveriesDoc {
    written: u64,
    dropped: u64,
    discarded: u64,
    failed: u64,
    queued: u64,
}

fn stats(shared: &Shared) -> StatsDoc {
    // Not one instant with the router's counters: they balance exactly
    // only while the daemon is idle (see `tally`).
    let d = shared.deliveries();
    let st = lock(&shared.router);
    let s = st.stats();
    StatsDoc {
        connections: st.connection_count(),
        subscriptions: st.subscription_count(),
        pending_requests: st.pending_requests(),
        counters: CountersDoc {
            published: s.published,
            delivered: s.delivered,
            denied: s.denied,
            requests: s.requests,
            replies: s.replies,
            no_responders: s.no_responders,
            unknown_services: s.unknown_services,
            not_authorized: s.not_authorized,
            requests_over_limit: s.requests_over_limit,
            timeouts: s.timeouts,
            responder_gone: s.responder_gone,
            requester_gone: s.requester_gone,
            late_replies: s.late_replies,
        },
        deliveries: DeliveriesDoc {
            written: d.written,
            dropped: d.dropped,
            discarded: d.discarded,
            failed: d.failed,
            queued: d.queued,
        },
    }
}

/// One line of `busd ctl clients`.
#[derive(Debug, Serialize)]
struct ClientDoc {
    id: u64,
    pfn: Option<String>,
    uid: Option<u32>,
    /// `tcp`, `unix` or `shm`.
    transport: &'static str,
    /// The peer's address, over tcp.
    addr: Option<String>,
    pid: Option<u32>,
    exe: Option<String>,
    /// When it was welcomed, RFC 3339 (UTC).
    since: String,
    subscriptions: usize,
    services: usize,
    pending_calls: usize,
    /// What it sent and was sent.
    #[serde(flatten)]
    traffic: TrafficDoc,
    /// Messages waiting in its outbound queue.
    queued: u64,
}

fn clients(shared: &Shared) -> Vec<ClientDoc> {
    shared
        .connections()
        .into_iter()
        .map(|(c, handle)| {
            let origin = &handle.origin;
            ClientDoc {
                id: c.id,
                pfn: c.identity.pfn.as_ref().map(ToString::to_string),
                uid: c.identity.uid,
                transport: origin.transport,
                addr: origin.addr.clone(),
                pid: origin.pid,
                exe: origin.exe.as_ref().map(|p| p.display().to_string()),
                since: humantime_serde::re::humantime::format_rfc3339_seconds(origin.since)
                    .to_string(),
                subscriptions: c.subscriptions,
                services: c.services,
                pending_calls: c.pending_calls,
                traffic: handle.traffic(),
                queued: handle.queued(),
            }
        })
        .collect()
}

/// One line of `busd ctl subs`: a subscription, a service or a monitor.
#[derive(Debug, Serialize)]
struct RegistrationDoc {
    client: u64,
    sid: u64,
    kind: &'static str,
    subject: String,
    queue: Option<String>,
    /// `disconnect`, `drop-oldest` or `block`; absent for a service.
    #[serde(skip_serializing_if = "Option::is_none")]
    overflow: Option<&'static str>,
}

fn subs(shared: &Shared) -> Vec<RegistrationDoc> {
    let list = lock(&shared.router).registrations();
    let monitors = shared.monitors.list().into_iter();
    let monitors = monitors.map(|(client, sid, subject)| RegistrationDoc {
        client,
        sid,
        kind: "monitor",
        subject: subject.as_str().to_owned(),
        queue: None,
        overflow: None,
    });
    list.into_iter()
        .map(|r| RegistrationDoc {
            client: r.conn,
            sid: r.sid,
            kind: if r.service { "service" } else { "subscription" },
            subject: r.subject.as_str().to_owned(),
            queue: r.queue,
            overflow: r.overflow.map(|o| match o {
                Overflow::Disconnect => "disconnect",
                Overflow::DropOldest => "drop-oldest",
                Overflow::Block => "block",
            }),
        })
        .chain(monitors)
        .collect()
}

/// One line of `busd ctl services`.
#[derive(Debug, Serialize)]
struct ServiceDoc {
    name: String,
    /// The package that owns it, if it is configured.
    owner: Option<String>,
    /// Whether busd starts it on demand.
    on_demand: bool,
    /// Connections serving it now.
    responders: usize,
    /// How its requests ended, for a configured service.
    requests: Option<RequestsDoc>,
    /// What its activation did, if busd ever started it.
    #[serde(flatten)]
    activation: Option<ActivationDoc>,
}

/// How a configured service's requests ended, by status.
#[derive(Debug, Serialize)]
struct RequestsDoc {
    success: u64,
    failure: u64,
    no_responders: u64,
    not_authorized: u64,
    timeout: u64,
    responder_gone: u64,
    requester_gone: u64,
    limit_exceeded: u64,
}

impl From<busd_core::ServiceCounts> for RequestsDoc {
    fn from(c: busd_core::ServiceCounts) -> Self {
        Self {
            success: c.success,
            failure: c.failure,
            no_responders: c.no_responders,
            not_authorized: c.not_authorized,
            timeout: c.timeouts,
            responder_gone: c.responder_gone,
            requester_gone: c.requester_gone,
            limit_exceeded: c.over_limit,
        }
    }
}

fn services(shared: &Shared) -> Vec<ServiceDoc> {
    let (policy, registrations, counts) = {
        let router = lock(&shared.router);
        let counts = router.service_counts().clone();
        (Arc::clone(router.policy()), router.registrations(), counts)
    };
    let mut responders: BTreeMap<String, usize> = BTreeMap::new();
    for r in registrations.iter().filter(|r| r.service) {
        *responders.entry(r.subject.as_str().to_owned()).or_default() += 1;
    }
    for name in policy.services.keys() {
        responders.entry(name.as_str().to_owned()).or_default();
    }
    let mut activations = shared.activations.snapshot();
    responders
        .into_iter()
        .map(|(name, count)| {
            let subject = busd_proto::Subject::parse(name.as_str()).ok();
            let rule = subject.as_ref().and_then(|s| policy.service(s));
            ServiceDoc {
                owner: rule.map(|r| r.owner.to_string()),
                on_demand: rule.is_some_and(|r| r.exec.is_some()),
                responders: count,
                requests: subject
                    .as_ref()
                    .and_then(|s| counts.get(s).copied())
                    .map(RequestsDoc::from),
                activation: subject.and_then(|s| activations.remove(&s)),
                name,
            }
        })
        .collect()
}
