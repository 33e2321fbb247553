//! A request for a service the daemon starts on demand, which nobody
//! serves: held in `activation`'s books while the service starts, its
//! process (`activation::child`) served as a session of its own, and the
//! timers that end a start that does not serve and a request whose
//! deadline comes first.

use std::sync::Arc;
use std::time::Duration;

use busd_policy::ServiceRule;
use busd_proto::{ErrorCode, Subject};

use crate::activation::{Admitted, Held, child};
use crate::shared::Shared;

/// Holds `held` for `rule`'s service, starting it if no start is under way.
pub(super) fn hold(shared: &Arc<Shared>, rule: &ServiceRule, held: Held) {
    let (key, deadline) = (held.key(), held.times.1);
    let max_bytes = usize::try_from(shared.config.limits.max_pending_bytes).unwrap_or(usize::MAX);
    match shared.activations.hold(rule, held, max_bytes) {
        Admitted::Waiting => {}
        Admitted::Start { generation } => start(shared, rule, generation),
        Admitted::Refused { held, code, why } => {
            for h in held {
                h.fail(code, &why);
            }
            return;
        }
    }
    let (shared, service) = (Arc::clone(shared), rule.name.clone());
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        if let Some(h) = shared.activations.expire(&service, key) {
            h.time_out();
        }
    });
}

/// Starts `generation` of `rule`'s service; its held requests fail with
/// `AppUnavailable` if it cannot start, `AppServiceUnavailable` if it does
/// not serve within `limits.activation_timeout`.
fn start(shared: &Arc<Shared>, rule: &ServiceRule, generation: u64) {
    let service = &rule.name;
    match child::spawn(shared, rule, generation) {
        Ok((pid, connection)) => {
            shared.activations.started(service, generation, pid);
            let session = super::run(Arc::clone(shared), connection);
            shared.tracker.spawn(session);
            let timeout = shared.config.limits.activation_timeout;
            let (shared, service) = (Arc::clone(shared), service.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                not_served(&shared, &service, generation, timeout);
            });
        }
        Err(e) => {
            tracing::warn!(%service, cause = %e, "cannot start the service");
            let why = format!("service {service} could not be started: {e}");
            for h in shared.activations.start_failed(service, generation) {
                h.fail(ErrorCode::AppUnavailable, &why);
            }
        }
    }
}

/// Start `generation` of `service` has had `timeout`: if it is still the
/// start under way, it is stopped and its requests answered.
fn not_served(shared: &Shared, service: &Subject, generation: u64, timeout: Duration) {
    let Some((held, pid)) = shared.activations.not_served(service, generation) else {
        return;
    };
    tracing::warn!(%service, pid, "started, but did not serve within {timeout:?}: stopping it");
    child::terminate(pid);
    let why = format!("service {service} was started but did not serve within {timeout:?}");
    for h in held {
        h.fail(ErrorCode::AppServiceUnavailable, &why);
    }
}
