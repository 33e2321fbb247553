//! The `#[repr(C)]` header at the start of every ring memfd.
//!
//! ```text
//! offset   0  Meta          magic "BUSDRING", capacity, version, header size
//! offset  64  ProducerLine  tail (written by the producer), consumer_waiting
//! offset 128  ConsumerLine  head (written by the consumer), producer_waiting
//! offset 192  data          `capacity` bytes, a power of two
//! ```
//!
//! Each side writes only its own cache line in the hot path, so a push and a
//! pop never contend on one line. The "waiting" flag a side *reads* after every
//! operation sits on the line that side already writes: the producer checks
//! `consumer_waiting` right after storing `tail`.
//!
//! Every field is an atomic, so the peer may scribble on any of them without a
//! data race on our side; their *values* are still hostile and are validated
//! (meta once at open, positions on every use).

use crate::error::ShmError;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "BUSDRING" read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"BUSDRING");
/// Bumped on any change of layout or protocol.
pub(crate) const VERSION: u32 = 1;
/// Bytes before the data region; the data region starts cache-line aligned.
pub const HEADER_SIZE: usize = 192;
/// Smallest data region a ring may have, in bytes.
pub const MIN_CAPACITY: u64 = 16;
/// Largest data region a ring may have, in bytes (so a length always fits a
/// `u32` below the padding marker).
pub const MAX_CAPACITY: u64 = 1 << 30;

/// The length prefix written in place of a message to say "skip to offset 0".
pub(crate) const PAD_MARKER: u32 = u32::MAX;
/// Bytes of the length prefix.
pub(crate) const PREFIX: u64 = 4;
/// Every record starts 8-aligned, so a prefix never straddles the ring's end.
pub(crate) const RECORD_ALIGN: u64 = 8;

/// Static description of the ring, written once by the creator.
#[repr(C, align(64))]
pub(crate) struct Meta {
    pub(crate) magic: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) header_size: AtomicU32,
}

/// The producer's cache line.
#[repr(C, align(64))]
pub(crate) struct ProducerLine {
    /// Bytes ever written: a monotonic position, masked with `capacity - 1` on
    /// use. Only the producer stores it (Release, after the bytes).
    pub(crate) tail: AtomicU64,
    /// 1 while the consumer is (about to be) parked on its eventfd. Set by the
    /// consumer, swapped back to 0 by the producer that wakes it.
    pub(crate) consumer_waiting: AtomicU32,
}

/// The consumer's cache line.
#[repr(C, align(64))]
pub(crate) struct ConsumerLine {
    /// Bytes ever consumed; only the consumer stores it (Release, after the
    /// bytes were copied out, so the producer may then overwrite them).
    pub(crate) head: AtomicU64,
    /// 1 while the producer is parked waiting for space.
    pub(crate) producer_waiting: AtomicU32,
}

/// The whole header, exactly [`HEADER_SIZE`] bytes.
#[repr(C)]
pub(crate) struct RingHeader {
    pub(crate) meta: Meta,
    pub(crate) producer: ProducerLine,
    pub(crate) consumer: ConsumerLine,
}

// The layout is a wire format between two processes: pin it down.
#[cfg(not(all(loom, test)))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RingHeader>() == HEADER_SIZE);
    assert!(align_of::<RingHeader>() == 64);
    assert!(offset_of!(RingHeader, meta) == 0);
    assert!(offset_of!(RingHeader, producer) == 64);
    assert!(offset_of!(RingHeader, consumer) == 128);
    assert!(offset_of!(Meta, magic) == 0);
    assert!(offset_of!(Meta, capacity) == 8);
    assert!(offset_of!(Meta, version) == 16);
    assert!(offset_of!(Meta, header_size) == 20);
    assert!(offset_of!(ProducerLine, tail) == 0);
    assert!(offset_of!(ProducerLine, consumer_waiting) == 8);
    assert!(offset_of!(ConsumerLine, head) == 0);
    assert!(offset_of!(ConsumerLine, producer_waiting) == 8);
    assert!(MAX_CAPACITY < PAD_MARKER as u64);
    assert!(MIN_CAPACITY >= 2 * RECORD_ALIGN);
};

/// Byte offsets of the position fields, for tests that play a hostile peer.
#[cfg(all(test, not(loom)))]
pub(crate) mod offsets {
    use super::{ConsumerLine, ProducerLine, RingHeader};
    use core::mem::offset_of;

    pub(crate) const TAIL: u64 =
        (offset_of!(RingHeader, producer) + offset_of!(ProducerLine, tail)) as u64;
    pub(crate) const HEAD: u64 =
        (offset_of!(RingHeader, consumer) + offset_of!(ConsumerLine, head)) as u64;
}

impl RingHeader {
    /// A fresh header for a data region of `capacity` bytes, both positions 0.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            meta: Meta {
                magic: AtomicU64::new(MAGIC),
                capacity: AtomicU64::new(capacity),
                version: AtomicU32::new(VERSION),
                header_size: AtomicU32::new(HEADER_SIZE as u32),
            },
            producer: ProducerLine {
                tail: AtomicU64::new(0),
                consumer_waiting: AtomicU32::new(0),
            },
            consumer: ConsumerLine {
                head: AtomicU64::new(0),
                producer_waiting: AtomicU32::new(0),
            },
        }
    }

    /// Reads the meta fields once and checks them against the mapping's
    /// length; returns the capacity to use from then on (the header's copy is
    /// never trusted again).
    pub(crate) fn validate(&self, mapped_len: u64) -> Result<u64, ShmError> {
        // Relaxed: the creator wrote these before sending the fd, and the
        // sendmsg/recvmsg pair orders that; a peer that rewrites them later
        // only changes values we no longer read.
        if self.meta.magic.load(Ordering::Relaxed) != MAGIC {
            return Err(ShmError::BadHeader("bad magic"));
        }
        if self.meta.version.load(Ordering::Relaxed) != VERSION {
            return Err(ShmError::BadHeader("unsupported version"));
        }
        if self.meta.header_size.load(Ordering::Relaxed) as usize != HEADER_SIZE {
            return Err(ShmError::BadHeader("unexpected header size"));
        }
        let capacity = self.meta.capacity.load(Ordering::Relaxed);
        check_capacity(capacity).map_err(|_| ShmError::BadHeader("bad capacity"))?;
        if Some(mapped_len) != capacity.checked_add(HEADER_SIZE as u64) {
            return Err(ShmError::BadHeader(
                "capacity does not match the memfd size",
            ));
        }
        Ok(capacity)
    }
}

/// Checks that `capacity` is a power of two within the supported range.
///
/// # Errors
/// [`ShmError::BadCapacity`] otherwise.
pub(crate) fn check_capacity(capacity: u64) -> Result<(), ShmError> {
    if capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(ShmError::BadCapacity(capacity))
    }
}

/// Bytes a message of `len` bytes occupies: prefix plus payload, padded to 8.
/// Callers bound `len` by the capacity first, so this cannot overflow.
pub(crate) const fn record_len(len: u64) -> u64 {
    (PREFIX + len).next_multiple_of(RECORD_ALIGN)
}
