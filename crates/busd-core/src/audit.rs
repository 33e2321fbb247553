//! The audit log's record of denied deliveries (`busd::audit` target).

use busd_policy::{Decision, Identity};
use busd_proto::Subject;

/// Records that `who` was refused serving `service`: another package
/// owns it, or no package does and only configured services may be served.
pub(crate) fn serve_refused(who: &Identity, service: &Subject, why: &str) {
    tracing::warn!(target: "busd::audit", %who, %service, "serve refused: {why}");
}

/// Records that the rules kept `what` (a subject or a service) from
/// going from `from` to `to`, and why (`Policy::decide`'s words, naming
/// the rule and its line). Never told to the sender: a publisher must not
/// learn who listens.
pub(crate) fn denied(from: &Identity, to: &Identity, what: &Subject, why: &Decision<'_>) {
    tracing::info!(target: "busd::audit", %from, %to, subject = %what, reason = %why, "delivery denied");
}
