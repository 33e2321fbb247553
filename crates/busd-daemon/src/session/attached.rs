//! The fds a client attaches to a message, request or reply, admitted
//! before anything is routed: at most `limits.max_fds_per_message` per
//! frame, and no more held for its package (or uid) at once than
//! `limits.max_fds_in_flight`. Admitted fds carry their charge with them
//! (see `budget::FdCharge`), so it is given back when the last receiver's
//! copy is written or dropped; refused ones are closed at once.

use busd_proto::Fds;

use super::link::Link;
use crate::audit;
use crate::budget::FdCharge;

impl Link {
    /// `fds`, charged to this client's owner; or why they were refused (a
    /// `LimitExceeded` message naming the key; audited), the fds closed.
    pub(super) fn admit_fds(&self, fds: Fds) -> Result<Fds, String> {
        let count = fds.len();
        if count == 0 {
            return Ok(fds);
        }
        let limits = &self.shared.config.limits;
        let refused = |key: &'static str, why: String| {
            audit::limit_reached(self.who(), key, &why);
            Err(why)
        };
        if count > limits.max_fds_per_message {
            let why = format!(
                "{count} fds attached, over limits.max_fds_per_message ({}); not sent, the fds closed",
                limits.max_fds_per_message
            );
            return refused("limits.max_fds_per_message", why);
        }
        match FdCharge::take(&self.fd_budget, count) {
            Some(charge) => Ok(fds.with_guard(Box::new(charge))),
            None => {
                let why = format!(
                    "{count} more fds would be over limits.max_fds_in_flight ({}) for {}; not sent, the fds closed",
                    limits.max_fds_in_flight, self.identity
                );
                refused("limits.max_fds_in_flight", why)
            }
        }
    }
}
