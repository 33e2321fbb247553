//! `Release`s the client sends for the daemon's payload pool (shm with
//! pools). Those the daemon sends for the client's pool go from its
//! writer (see `writer`), whenever a leased payload is dropped.

use busd_proto::ErrorCode;

use super::link::Link;

impl Link {
    /// Takes back the blocks of this client's pool (the daemon's) that it
    /// names; `false` (the client told) for one not lent out, or a client
    /// without a pool: a protocol violation.
    pub(super) fn released(&self, blocks: &[u64]) -> bool {
        let refused = match &self.handle.pool {
            Some((pool, budget)) => match pool.handed_back(blocks) {
                Ok(bytes) => {
                    budget.give_back_lent(bytes);
                    return true;
                }
                Err(e) => e.to_string(),
            },
            None => "Release on a connection without a payload pool".to_owned(),
        };
        tracing::info!(cause = %refused, "closing on a protocol violation");
        self.handle
            .close_after(ErrorCode::ProtocolViolation, &refused);
        false
    }
}
