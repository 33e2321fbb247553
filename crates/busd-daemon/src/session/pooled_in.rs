//! `Release`s the client sends for the daemon's payload pools (shm with
//! pools): its own pool, and the set pools it shares with other receivers
//! (an offset's high bits name the pool). Those the daemon sends for the
//! client's pool go from its writer (see `writer`), whenever a leased
//! payload is dropped.

use busd_proto::{ErrorCode, split_pool_offset};

use super::link::Link;

impl Link {
    /// Takes back the blocks of this client's pools (the daemon's) that it
    /// names; `false` (the client told) for one not lent out, or a client
    /// without pools: a protocol violation.
    pub(super) fn released(&self, blocks: &[u64]) -> bool {
        let refused = match self.release_all(blocks) {
            Ok(()) => return true,
            Err(refused) => refused,
        };
        tracing::info!(cause = %refused, "closing on a protocol violation");
        self.handle
            .close_after(ErrorCode::ProtocolViolation, &refused);
        false
    }

    fn release_all(&self, blocks: &[u64]) -> Result<(), String> {
        // Runs of one pool's blocks go back together (a client hands back
        // in batches, most often all of one pool).
        let pool_of = |offset: &u64| split_pool_offset(*offset).0;
        for run in blocks.chunk_by(|a, b| pool_of(a) == pool_of(b)) {
            let (id, _) = split_pool_offset(run[0]);
            if id != 0 {
                let offsets: Vec<u64> = run.iter().map(|&o| split_pool_offset(o).1).collect();
                self.shared.set_pools.release(self.id, id, &offsets)?;
                continue;
            }
            let Some((pool, budget)) = &self.handle.pool else {
                return Err("Release on a connection without a payload pool".to_owned());
            };
            let bytes = pool.handed_back(run).map_err(|e| e.to_string())?;
            budget.give_back_lent(bytes);
        }
        Ok(())
    }
}
