//! The payload pools of an shm connection (see `busd_shm::PoolWriter`):
//! one each way, set up with the rings, so that large payloads travel as
//! an offset into memory both sides mapped once.
//!
//! - [`PoolOut`] is this side's own pool: a payload is written into a
//!   block lent from it and sent as a `Body::Pooled` frame; the block comes
//!   back when the peer's `Release` names it ([`PoolOut::handed_back`]).
//! - `PoolIn` is the peer's pool, mapped read-only: a pooled frame's
//!   payload is read from it in place, or copied from it by a [`Lease`];
//!   either way, once the last holder drops it, its offset waits in
//!   [`Releases`] for this side's writer to send back in a `Release`.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use busd_proto::{Body, CodecError, Lease, LeaseSource};
use busd_shm::{PoolError, PoolReader, PoolSlot, PoolView, PoolWriter};
use bytes::Bytes;
use tokio::sync::Notify;

/// This side's pool, shared by whoever sends on the connection.
#[derive(Debug)]
pub struct PoolOut {
    writer: Mutex<PoolWriter>,
    /// Wakes writers waiting for blocks when some come back.
    returned: Notify,
}

impl PoolOut {
    pub(crate) fn new(writer: PoolWriter) -> Self {
        Self {
            writer: Mutex::new(writer),
            returned: Notify::new(),
        }
    }

    /// A new pool of `size` bytes (see `busd_shm::PoolWriter::create`),
    /// and its memfd to pass to the readers: for a pool not made with a
    /// connection (the daemon's set pools).
    ///
    /// # Errors
    /// `InvalidInput` for a size that is not a power of two from 64 KiB to
    /// 1 GiB; the error of `memfd_create` or `mmap`.
    pub fn create(name: &str, size: u64) -> std::io::Result<(Self, OwnedFd)> {
        let (writer, fd) = PoolWriter::create(name, size).map_err(crate::error::shm_error)?;
        Ok((Self::new(writer), fd))
    }

    /// As [`lend`](Self::lend), waiting up to `patience` for blocks to come
    /// back when none is free: the peer hands blocks back as it is done
    /// with them, so a writer that waits goes at the reader's pace instead
    /// of sending the payload a slower way. `None` when the payload is
    /// larger than the pool, or none came back in time (a peer that holds
    /// its blocks, or a connection gone).
    pub async fn lend_waiting(
        &self,
        payload: &[u8],
        patience: std::time::Duration,
    ) -> Option<Body> {
        let mut slot = self.slot_waiting(payload.len(), patience).await?;
        slot.as_mut_slice().copy_from_slice(payload);
        Some(body_of(&slot))
    }

    /// As [`slot`](Self::slot), waiting as [`lend_waiting`](Self::lend_waiting) does.
    pub async fn slot_waiting(
        &self,
        len: usize,
        patience: std::time::Duration,
    ) -> Option<PoolSlot> {
        self.slot_waiting_until(len, tokio::time::Instant::now() + patience)
            .await
    }

    /// As [`slot_waiting`](Self::slot_waiting), waiting until `deadline`.
    pub async fn slot_waiting_until(
        &self,
        len: usize,
        deadline: tokio::time::Instant,
    ) -> Option<PoolSlot> {
        if len as u64 > self.size() {
            return None;
        }
        loop {
            // Registered before looking, so a block handed back meanwhile
            // wakes it.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(slot) = self.slot(len) {
                return Some(slot);
            }
            tokio::time::timeout_at(deadline, returned).await.ok()?;
        }
    }

    /// Copies `payload` into a block lent from the pool; the body to send
    /// it with, or `None` when no block that large is free now (send it
    /// another way).
    pub fn lend(&self, payload: &[u8]) -> Option<Body> {
        let mut slot = self.slot(payload.len())?;
        slot.as_mut_slice().copy_from_slice(payload);
        Some(body_of(&slot))
    }

    /// A block for a payload of `len` bytes, to write in place; send it
    /// with [`body_of`] (or give it back with [`cancel`](Self::cancel)).
    pub fn slot(&self, len: usize) -> Option<PoolSlot> {
        self.lock().alloc(len)
    }

    /// Takes back a block that was never sent.
    pub fn cancel(&self, slot: PoolSlot) {
        self.lock().cancel(slot);
    }

    /// Takes back the blocks the peer's `Release` names; the bytes they
    /// held of the pool.
    ///
    /// # Errors
    /// [`PoolError::NotLent`] for a block not lent out: the peer broke the
    /// protocol (the blocks before it were taken back).
    pub fn handed_back(&self, blocks: &[u64]) -> Result<u64, PoolError> {
        let taken = {
            let mut writer = self.lock();
            blocks
                .iter()
                .try_fold(0, |sum, &offset| Ok(sum + writer.release(offset)?))
        };
        self.returned.notify_waiters();
        taken
    }

    /// Bytes lent out now.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use()
    }

    /// The pool's size: the largest payload it can hold.
    pub fn size(&self) -> u64 {
        self.lock().size()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolWriter> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The body that sends the payload written in `slot`.
pub fn body_of(slot: &PoolSlot) -> Body {
    Body::Pooled {
        offset: slot.offset(),
        len: slot.len() as u64,
    }
}

/// Blocks of the peer's pool this side is done with, waiting to be named
/// in a `Release`. The connection's writer looks at each turn
/// ([`take`](Self::take) costs one atomic load while none waits) and is
/// woken by the waker it set ([`set_waker`](Self::set_waker)) when the
/// first one arrives: no extra wait of its own, which small messages
/// would pay for on every turn.
#[derive(Default)]
pub struct Releases {
    offsets: Mutex<Vec<u64>>,
    /// Whether `offsets` holds any; set and cleared under its lock.
    pending: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Wakes a connection's writer.
type Waker = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releases")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Releases {
    /// The offsets waiting, taken (empty when none).
    pub fn take(&self) -> Vec<u64> {
        if !self.pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut offsets = self.lock();
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *offsets)
    }

    /// Calls `wake` whenever an offset arrives to find none waiting: the
    /// writer then [`take`](Self::take)s them.
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(wake));
    }

    fn push(&self, offset: u64) {
        let was_empty = {
            let mut offsets = self.lock();
            offsets.push(offset);
            !self.pending.swap(true, Ordering::AcqRel)
        };
        if was_empty {
            if let Some(wake) = &*self.waker.lock().unwrap_or_else(PoisonError::into_inner) {
                wake();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.offsets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The peer's pool, mapped read-only: its own, or a set pool the daemon
/// shares with it (see `set_pools`).
#[derive(Debug)]
pub(crate) struct PoolIn {
    reader: PoolReader,
    releases: Arc<Releases>,
    /// Added to each offset handed back: the pool's id in the high bits
    /// (0 for the peer's own pool).
    tag: u64,
}

impl PoolIn {
    pub(crate) fn new(reader: PoolReader, releases: Arc<Releases>) -> Self {
        Self::tagged(reader, releases, 0)
    }

    /// Set pool `id`, whose blocks are handed back with its id.
    pub(crate) fn tagged(reader: PoolReader, releases: Arc<Releases>, id: u32) -> Self {
        Self {
            reader,
            releases,
            tag: u64::from(id) << busd_proto::POOL_ID_SHIFT,
        }
    }

    /// The payload at `offset`: read in place (`mapped`), or as a lease to
    /// copy from; its block goes back with the last holder.
    ///
    /// # Errors
    /// [`CodecError::Malformed`] when the range is not inside the pool.
    pub(crate) fn take(
        self: &Arc<Self>,
        offset: u64,
        len: u64,
        mapped: bool,
    ) -> Result<(Bytes, Option<Lease>), CodecError> {
        let view = self
            .reader
            .view(offset, len)
            .map_err(|e| CodecError::Malformed(format!("pooled frame refused: {e}")))?;
        if mapped {
            let held = Held {
                view,
                pool: Arc::clone(self),
                offset,
            };
            return Ok((Bytes::from_owner(held), None));
        }
        drop(view);
        let source: Arc<dyn LeaseSource> = Arc::clone(self) as Arc<dyn LeaseSource>;
        Ok((Bytes::new(), Some(Lease::new(offset, len, source))))
    }
}

impl LeaseSource for PoolIn {
    fn copy_to(&self, offset: u64, dst: &mut [u8]) {
        // The range was checked when the lease was made (`take`).
        let copied = self.reader.copy_to(offset, dst);
        debug_assert!(copied.is_ok(), "a lease outside its pool");
    }

    fn release(&self, offset: u64) {
        self.releases.push(self.tag | offset);
    }
}

/// A payload read in place, which hands its block back when dropped.
struct Held {
    view: PoolView,
    pool: Arc<PoolIn>,
    offset: u64,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        self.view.as_slice()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pool.releases.push(self.pool.tag | self.offset);
    }
}
