//! The audit log's record of denied deliveries (`busd::audit` target).

use busd_policy::Identity;
use busd_proto::Subject;

/// Records that the rules kept `what` (a subject or a service) from
/// going from `from` to `to`. Never told to the sender: a publisher must
/// not learn who listens.
pub(crate) fn denied(from: &Identity, to: &Identity, what: &Subject) {
    tracing::info!(target: "busd::audit", %from, %to, subject = %what, "delivery denied");
}
