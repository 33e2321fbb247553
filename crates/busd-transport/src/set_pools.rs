//! The daemon's set pools, as a client maps them: pools the daemon shares
//! among all the receivers of one receiver set, so that a payload fanned
//! out to them is copied once (see the daemon's `set_pools`).
//!
//! A set pool's blocks are named on the wire by offsets whose high 32 bits
//! are the pool's id (`busd_proto::split_pool_offset`). The daemon passes
//! a pool's memfd beside the stream, as one `P` byte with the fd attached,
//! right before the first frame that names it: a decoder meeting an id it
//! has not mapped takes that fd then, as it takes a segment's. `PoolGone`
//! says the daemon writes no more into a pool; the client forgets it, and
//! unmaps it once the last payload read from it is dropped (each holds the
//! mapping). Should the daemon name it again later, it passes it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::pools::PoolIn;

/// The set pools a connection has mapped, by id; shared by its decoder,
/// which maps them, and its owner, which forgets them on `PoolGone`.
#[derive(Debug, Default)]
pub struct SetPoolsIn {
    pools: Mutex<HashMap<u32, Arc<PoolIn>>>,
    /// Whether set pools are taken at all: only once both ends agreed
    /// (`Hello::set_pools`); until then a frame naming one is malformed.
    accepting: AtomicBool,
}

impl SetPoolsIn {
    /// From now on the decoder maps the set pools the daemon passes; call
    /// it once the client has asked for them, before the daemon may send
    /// any.
    pub fn accept(&self) {
        self.accepting.store(true, Ordering::Release);
    }

    /// Forgets set pool `id` (the daemon's `PoolGone`): payloads read from
    /// it stay readable until dropped.
    pub fn gone(&self, id: u32) {
        self.lock().remove(&id);
    }

    /// How many set pools are mapped now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, id: u32) -> Option<Arc<PoolIn>> {
        self.lock().get(&id).cloned()
    }

    pub(crate) fn insert(&self, id: u32, pool: Arc<PoolIn>) {
        self.lock().insert(id, pool);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<PoolIn>>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
