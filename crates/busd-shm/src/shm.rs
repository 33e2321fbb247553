//! The public ring handles: a [`Ring`] in a sealed memfd, split into one
//! [`Producer`] or [`Consumer`] per process (or both, in tests).
//!
//! Misuse is impossible in safe code: `Ring::producer` and `Ring::consumer`
//! consume the `Ring`, the handles are neither `Clone` nor `Sync` (every
//! operation takes `&mut self`), and each holds an `Arc` of the mapping, so no
//! handle outlives the memory. A peer in another process is another matter: it
//! is hostile by assumption, and all it can achieve is a [`Corrupt`] error.
//!
//! [`Corrupt`]: crate::Corrupt

use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::error::ShmError;
use crate::handles::{Consumer, Producer};
use crate::header::{HEADER_SIZE, MAX_CAPACITY, RingHeader, check_capacity};
use crate::memfd::{Mapping, RING_SEALS, create_memfd, memfd_len, seal};
use crate::region::{MappedRegion, Region};
use crate::ring::{RawConsumer, RawProducer};
use crate::sync::Ordering;
use crate::wake::{DEFAULT_SPIN, Events};

/// Per-handle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    max_message: usize,
    spin: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_message: usize::MAX,
            spin: DEFAULT_SPIN,
        }
    }
}

impl Options {
    /// The largest message accepted (producer) or believed (consumer); capped
    /// at the ring's capacity − 4. Default: that cap. Both sides must agree:
    /// a consumer reports a longer message as `Corrupt`.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// How many times a blocking wait re-checks the ring before it parks on
    /// the eventfd. 0 parks at once. Default: [`DEFAULT_SPIN`].
    pub fn spin(mut self, spins: u32) -> Self {
        self.spin = spins;
        self
    }
}

/// A ring's shared memory, validated and mapped, not yet given a role.
#[derive(Debug)]
pub struct Ring {
    region: Arc<MappedRegion>,
    fd: OwnedFd,
}

impl Ring {
    /// Creates a ring with a data region of `capacity` bytes (a power of two)
    /// in a new memfd, sealed against resizing. Send [`Ring::fd`] to the peer.
    ///
    /// # Errors
    /// [`ShmError::BadCapacity`], or [`ShmError::Sys`] when a syscall fails.
    pub fn create(capacity: u64) -> Result<Self, ShmError> {
        check_capacity(capacity)?;
        let len = HEADER_SIZE as u64 + capacity;
        let fd = create_memfd("busd-ring", len)?;
        seal(fd.as_fd(), RING_SEALS)?;
        let map = Mapping::map(fd.as_fd(), len, RING_SEALS, true)?;
        // SAFETY:
        // 1. The mapping is fresh, page-aligned, writable and at least
        //    HEADER_SIZE = size_of::<RingHeader>() bytes long.
        // 2. The fd has not left this function, so no one else can access the
        //    memory while the header is written.
        unsafe {
            map.as_ptr()
                .cast::<RingHeader>()
                .write(RingHeader::new(capacity))
        };
        let region = MappedRegion::new(map, capacity)?;
        Ok(Self {
            region: Arc::new(region),
            fd,
        })
    }

    /// Maps a ring received from the peer, checking seals, size, header and
    /// that it is fresh (both positions 0).
    ///
    /// # Errors
    /// [`ShmError::MissingSeals`] for a resizable memfd, [`ShmError::BadSize`]
    /// for one too short for a header, [`ShmError::BadHeader`] for anything
    /// else that is not a fresh ring, [`ShmError::Sys`] when a syscall fails.
    pub fn open(fd: OwnedFd) -> Result<Self, ShmError> {
        let len = memfd_len(fd.as_fd())?;
        if !(HEADER_SIZE as u64..=HEADER_SIZE as u64 + MAX_CAPACITY).contains(&len) {
            return Err(ShmError::BadSize {
                actual: len,
                expected: "a ring header plus at most MAX_CAPACITY",
            });
        }
        let map = Mapping::map(fd.as_fd(), len, RING_SEALS, true)?;
        let region = MappedRegion::open(map)?;
        let header = region.header();
        if header.producer.tail.load(Ordering::Relaxed) != 0
            || header.consumer.head.load(Ordering::Relaxed) != 0
        {
            return Err(ShmError::BadHeader("ring already in use"));
        }
        Ok(Self {
            region: Arc::new(region),
            fd,
        })
    }

    /// The memfd, to pass to the peer (`SCM_RIGHTS` duplicates it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The data region's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.region.capacity()
    }

    /// This process writes the ring. The memfd is closed here (the mapping
    /// keeps the memory): send [`Ring::fd`] before.
    pub fn producer(self, events: Events, options: Options) -> Producer {
        Producer {
            raw: RawProducer::new(self.region, options.max_message),
            events,
            spin: options.spin,
            _not_sync: PhantomData,
        }
    }

    /// This process reads the ring. As for [`Ring::producer`], send the fd
    /// before.
    pub fn consumer(self, events: Events, options: Options) -> Consumer {
        Consumer {
            raw: RawConsumer::new(self.region, options.max_message),
            events,
            spin: options.spin,
            _not_sync: PhantomData,
        }
    }
}
