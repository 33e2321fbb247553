//! [`Producer`] and [`Consumer`]: the ring plus its wake-ups.
//!
//! Each pairs the raw ring half with the ring's [`Events`]: a push wakes a
//! parked consumer, a pop wakes a producer parked on a full ring. Blocking
//! waits spin first, then park (see `wake`); the `prepare_wait` methods are
//! the non-blocking building block for an async runtime.

use std::cell::Cell;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{PushError, RingError};
use crate::region::{MappedRegion, Region};
use crate::ring::{Pop, RawConsumer, RawProducer};
use crate::wake::{Events, Readiness};

/// `Send` but not `Sync`: a handle is used by one thread at a time.
pub(crate) type NotSync = PhantomData<Cell<()>>;

/// Writes messages into a ring. `Send`, but not `Clone` or `Sync`:
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<busd_shm::Producer>();
/// ```
/// ```compile_fail
/// fn cloned<T: Clone>() {}
/// cloned::<busd_shm::Producer>();
/// ```
pub struct Producer {
    pub(crate) raw: RawProducer<MappedRegion>,
    pub(crate) events: Events,
    pub(crate) spin: u32,
    pub(crate) _not_sync: NotSync,
}

/// Reads messages out of a ring. `Send`, but not `Clone` or `Sync`:
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<busd_shm::Consumer>();
/// ```
/// ```compile_fail
/// fn cloned<T: Clone>() {}
/// cloned::<busd_shm::Consumer>();
/// ```
pub struct Consumer {
    pub(crate) raw: RawConsumer<MappedRegion>,
    pub(crate) events: Events,
    pub(crate) spin: u32,
    pub(crate) _not_sync: NotSync,
}

// Both handles must move to the thread (or task) that owns the connection.
const _: () = {
    const fn send<T: Send>() {}
    send::<Producer>();
    send::<Consumer>();
};

/// `now + timeout`, or `None` (wait forever) for no or an unrepresentable one.
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The time left before `deadline`, `Some(ZERO)` once it passed.
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl Producer {
    /// Appends `msg` and wakes the consumer if it is parked.
    ///
    /// A record never wraps: when `msg` does not fit before the end of the
    /// ring, padding is published first and the record goes at offset 0. So
    /// `Full` can be returned while the ring holds only that padding; it
    /// clears once the consumer has skipped it (its next pop).
    ///
    /// # Errors
    /// [`PushError::Full`] (retry later), [`PushError::TooLarge`] (never fits),
    /// [`PushError::Corrupt`] (disconnect the peer), [`PushError::Wake`] (the
    /// message went in but the wake-up failed: the connection is broken).
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), PushError> {
        let before = self.raw.position();
        let pushed = self.raw.try_push(msg);
        // Also after publishing padding alone (then `Full`): the consumer must
        // skip it to free the space this message waits for.
        if self.raw.position() != before && self.raw.consumer_needs_wake() {
            self.events.readable.signal().map_err(PushError::Wake)?;
        }
        pushed
    }

    /// Appends one message made of the first `limit` bytes of `parts` laid
    /// end to end (fewer if they hold fewer, or more than
    /// [`max_message`](Self::max_message)), gathered straight into the ring;
    /// returns the message's length. Wakes the consumer as
    /// [`try_push`](Self::try_push) does; with `limit` 0 (or empty parts)
    /// it pushes an empty message.
    ///
    /// ```
    /// # use busd_shm::{Events, Options, Ring};
    /// # use std::io::IoSlice;
    /// # let ring = Ring::create(4096).unwrap();
    /// # let peer = Ring::open(ring.fd().try_clone_to_owned().unwrap()).unwrap();
    /// # let events = Events::new().unwrap();
    /// # let mut producer = ring.producer(events.try_clone().unwrap(), Options::default());
    /// # let mut consumer = peer.consumer(events, Options::default());
    /// let parts = [IoSlice::new(b"head:"), IoSlice::new(b"body")];
    /// assert_eq!(producer.try_push_vectored(&parts, 7).unwrap(), 7);
    /// let mut out = Vec::new();
    /// consumer.try_pop(&mut out).unwrap();
    /// assert_eq!(out, b"head:bo");
    /// ```
    ///
    /// # Errors
    /// As [`try_push`](Self::try_push), except `TooLarge`: the message is
    /// cut to fit instead.
    pub fn try_push_vectored(
        &mut self,
        parts: &[IoSlice<'_>],
        limit: usize,
    ) -> Result<usize, PushError> {
        let before = self.raw.position();
        let pushed = self.raw.try_push_parts(parts, limit);
        if self.raw.position() != before && self.raw.consumer_needs_wake() {
            self.events.readable.signal().map_err(PushError::Wake)?;
        }
        pushed
    }

    /// Appends `msg`, waiting for space (spin, then park) up to `timeout`
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    /// As [`try_push`](Self::try_push); [`PushError::Full`] means the
    /// timeout passed.
    pub fn push_wait(&mut self, msg: &[u8], timeout: Option<Duration>) -> Result<(), PushError> {
        let deadline = deadline(timeout);
        let mut spins = 0;
        loop {
            match self.try_push(msg) {
                Err(PushError::Full) => {}
                done => return done,
            }
            if spins < self.spin {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if self.prepare_wait(msg.len())? == Readiness::Ready {
                continue;
            }
            let left = remaining(deadline);
            if left == Some(Duration::ZERO) {
                return Err(PushError::Full);
            }
            self.events.writable.wait(left).map_err(PushError::Wake)?;
            self.events.writable.drain().map_err(PushError::Wake)?;
        }
    }

    /// Arms the "producer waiting" flag before parking on
    /// `events().writable`. [`Readiness::Ready`] means a push of `len` bytes
    /// can make progress now: do not park.
    ///
    /// # Errors
    /// [`PushError::Corrupt`] when the consumer's position is invalid.
    pub fn prepare_wait(&mut self, len: usize) -> Result<Readiness, PushError> {
        Ok(if self.raw.arm(len)? {
            Readiness::Ready
        } else {
            Readiness::Armed
        })
    }

    /// The ring's eventfds, e.g. to register `writable` with a reactor.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The largest message [`try_push`](Self::try_push) accepts.
    pub fn max_message(&self) -> usize {
        self.raw.max_message()
    }
}

impl Consumer {
    /// Copies the next message into `out` (replacing its contents) and returns
    /// its length; `None` when the ring is empty. Wakes a producer parked on a
    /// full ring.
    ///
    /// # Errors
    /// [`RingError::Corrupt`]: the producer broke the ring; disconnect it.
    /// [`RingError::Wake`]: signalling the producer failed.
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, RingError> {
        let before = self.raw.position();
        let popped = self.raw.pop(out)?;
        // Also after skipping padding alone: that frees space too.
        if self.raw.position() != before && self.raw.producer_needs_wake() {
            self.events.writable.signal().map_err(RingError::Wake)?;
        }
        Ok(popped)
    }

    /// Copies the next message straight into a buffer of the caller's:
    /// `dst(len)` is asked for one once the next message's length is known
    /// (and validated). Without a buffer (`None`, or one shorter than `len`)
    /// the message stays in the ring: [`Pop::Declined`] says how long it is,
    /// e.g. to [`try_pop`](Self::try_pop) it into a `Vec` instead. Wakes a
    /// producer parked on a full ring.
    ///
    /// ```
    /// # use busd_shm::{Events, Options, Pop, Ring};
    /// # let ring = Ring::create(4096).unwrap();
    /// # let peer = Ring::open(ring.fd().try_clone_to_owned().unwrap()).unwrap();
    /// # let events = Events::new().unwrap();
    /// # let mut producer = ring.producer(events.try_clone().unwrap(), Options::default());
    /// # let mut consumer = peer.consumer(events, Options::default());
    /// producer.try_push(b"hello").unwrap();
    /// let mut small = [0u8; 4];
    /// assert_eq!(consumer.try_pop_with(|_| Some(&mut small)).unwrap(), Pop::Declined(5));
    /// let mut buf = [0u8; 16];
    /// assert_eq!(consumer.try_pop_with(|_| Some(&mut buf)).unwrap(), Pop::Copied(5));
    /// assert_eq!(&buf[..5], b"hello");
    /// assert_eq!(consumer.try_pop_with(|_| Some(&mut buf)).unwrap(), Pop::Empty);
    /// ```
    ///
    /// # Errors
    /// As [`try_pop`](Self::try_pop).
    pub fn try_pop_with<'a>(
        &mut self,
        dst: impl FnOnce(usize) -> Option<&'a mut [u8]>,
    ) -> Result<Pop, RingError> {
        let before = self.raw.position();
        let popped = self.raw.pop_with(dst)?;
        if self.raw.position() != before && self.raw.producer_needs_wake() {
            self.events.writable.signal().map_err(RingError::Wake)?;
        }
        Ok(popped)
    }

    /// Like [`try_pop`](Self::try_pop), but waits for a message (spin, then
    /// park) up to `timeout` (`None`: as long as it takes). `Ok(None)` means
    /// the timeout passed.
    ///
    /// # Errors
    /// As [`try_pop`](Self::try_pop).
    pub fn pop_wait(
        &mut self,
        out: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Option<usize>, RingError> {
        let deadline = deadline(timeout);
        let mut spins = 0;
        loop {
            if let Some(len) = self.try_pop(out)? {
                return Ok(Some(len));
            }
            if spins < self.spin {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if self.prepare_wait() == Readiness::Ready {
                continue;
            }
            let left = remaining(deadline);
            if left == Some(Duration::ZERO) {
                return Ok(None);
            }
            self.events.readable.wait(left).map_err(RingError::Wake)?;
            self.events.readable.drain().map_err(RingError::Wake)?;
        }
    }

    /// Arms the "consumer waiting" flag before parking on `events().readable`.
    /// [`Readiness::Ready`] means data arrived meanwhile: do not park.
    pub fn prepare_wait(&mut self) -> Readiness {
        if self.raw.arm() {
            Readiness::Ready
        } else {
            Readiness::Armed
        }
    }

    /// The ring's eventfds, e.g. to register `readable` with a reactor.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The largest length this consumer believes; a longer one is `Corrupt`.
    pub fn max_message(&self) -> usize {
        self.raw.max_message()
    }

    /// The data region's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.raw.region().capacity()
    }
}
