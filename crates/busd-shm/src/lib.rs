//! Shared memory for busd: memfd mappings, a single-producer/single-consumer
//! byte ring, sealed payload segments, and eventfd wake-ups. The only busd
//! crate with `unsafe`; it does no async I/O (no tokio): the transport wraps
//! it.
//!
//! # Layout
//!
//! A ring is one memfd, created by one side and passed to the other
//! (`SCM_RIGHTS`), sealed so neither side can resize it:
//!
//! ```text
//! 0    header (192 bytes, #[repr(C)]): magic "BUSDRING", capacity, version,
//!      header size | tail + consumer_waiting | head + producer_waiting
//!      (one 64-byte cache line each)
//! 192  data: `capacity` bytes (a power of two)
//! ```
//!
//! Positions only grow and are masked on use. A message is a `u32` length,
//! the bytes, and padding to 8; one that would wrap is preceded by a padding
//! marker and starts again at offset 0. The producer publishes with a Release
//! store of `tail`, the consumer frees with a Release store of `head`.
//!
//! # Wake-ups
//!
//! A waiting side spins briefly, then sets its "waiting" flag, fences, checks
//! again and parks on an eventfd; the other side fences after each operation
//! and signals the eventfd only when the flag is set (Dekker's
//! store/fence/load). An idle connection costs no CPU. The eventfds are
//! non-blocking and exposed as fds, so an async runtime can await them.
//!
//! # Threat model
//!
//! The peer is another process and may be hostile: it can write anything into
//! the shared memory at any time, and it holds the same memfd. So:
//! - a received memfd is mapped only after its seals (`SHRINK`, `GROW`) and
//!   size are checked: it cannot be truncated under us (no `SIGBUS`);
//! - the header's sizes are read once at open and validated; the peer's
//!   position is validated on every use (`head ≤ tail ≤ head + capacity`);
//!   each length is bounded by `max_message`, the capacity and the written
//!   region before a byte is read; our own position is never read back;
//! - message bytes are copied out before the caller sees them;
//! - every violation is a [`Corrupt`] error (the caller disconnects the peer),
//!   never a panic and never an out-of-bounds access;
//! - payload segments are accepted only with `F_SEAL_WRITE`, so their bytes
//!   can change no more once mapped.
//!
//! # Example
//!
//! ```
//! use busd_shm::{Events, Options, Ring};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = Ring::create(4096)?;
//! // The peer would receive a dup of `ring.fd()` and the events over SCM_RIGHTS.
//! let peer_ring = Ring::open(ring.fd().try_clone_to_owned()?)?;
//! let events = Events::new()?;
//! let mut producer = ring.producer(events.try_clone()?, Options::default());
//! let mut consumer = peer_ring.consumer(events, Options::default());
//!
//! producer.try_push(b"hello")?;
//! let mut buf = Vec::new();
//! assert_eq!(consumer.try_pop(&mut buf)?, Some(5));
//! assert_eq!(buf, b"hello");
//! # Ok(())
//! # }
//! ```

// In loom model builds the mmap-backed types are compiled out, leaving parts
// unused.
#![cfg_attr(all(loom, test), allow(dead_code, unused_imports))]

mod buddy;
mod error;
mod header;
mod inherited;
mod memfd;
mod region;
mod ring;
mod segment;
mod sync;
mod wake;

#[cfg(not(all(loom, test)))]
mod handles;
#[cfg(not(all(loom, test)))]
mod pool;
#[cfg(not(all(loom, test)))]
mod shm;

#[cfg(all(test, loom))]
mod loom_models;
#[cfg(all(test, not(loom)))]
mod tests;

pub use error::{Corrupt, PushError, RingError, ShmError};
pub use header::{HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY};
pub use inherited::take_inherited_fd;
pub use memfd::{RING_SEALS, SEGMENT_SEALS, check_seals, create_memfd, memfd_len, seal};
pub use ring::Pop;
pub use rustix::fs::SealFlags;
pub use segment::{Segment, SegmentMut};
pub use wake::{DEFAULT_SPIN, EventFd, Events, Readiness};

#[cfg(not(all(loom, test)))]
pub use handles::{Consumer, Producer};
#[cfg(not(all(loom, test)))]
pub use pool::{
    MAX_POOL, MIN_POOL, MIN_POOL_BLOCK, POOL_SEALS, PoolError, PoolReader, PoolSlot, PoolView,
    PoolWriter,
};
#[cfg(not(all(loom, test)))]
pub use shm::{Options, Ring};
