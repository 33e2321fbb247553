//! The single-producer/single-consumer byte ring, written once against
//! [`Region`] so the loom models check the very code production runs.
//!
//! Positions (`head`, `tail`) are byte counts that only grow; `pos & mask` is
//! the offset in the data region. A record is a native-endian `u32` length,
//! the bytes, and padding to 8. A record never wraps: when it would not fit
//! before the end, the producer writes [`PAD_MARKER`] as the length and
//! continues at offset 0. Both sides keep their own position in private
//! memory and only *store* it to the header; the peer's position is loaded and
//! validated on every use, so garbage in the header yields [`Corrupt`], never
//! an out-of-bounds access.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::error::{Corrupt, PushError};
use crate::header::{PAD_MARKER, PREFIX, RECORD_ALIGN, record_len};
use crate::region::Region;
use crate::sync::{Ordering, fence};

/// What [`Consumer::try_pop_with`](crate::Consumer::try_pop_with) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// The ring is empty.
    Empty,
    /// A message of this many bytes was copied into the buffer given.
    Copied(usize),
    /// The next message has this many bytes and no buffer was given for it
    /// (or one too short): it is still in the ring.
    Declined(usize),
}

/// The writing half. Not `Clone`: one per ring.
pub(crate) struct RawProducer<R: Region> {
    region: Arc<R>,
    /// Our private copy of the tail: the header's copy is write-only for us.
    tail: u64,
    max_message: u64,
}

/// The reading half. Not `Clone`: one per ring.
pub(crate) struct RawConsumer<R: Region> {
    region: Arc<R>,
    /// Our private copy of the head.
    head: u64,
    max_message: u64,
}

/// The largest message a ring of `capacity` bytes can hold, capped by the
/// configured `max_message`.
fn effective_max(capacity: u64, max_message: usize) -> u64 {
    (max_message as u64).min(capacity - PREFIX)
}

/// Loads and validates the consumer's head against our tail.
fn checked_used(region: &impl Region, tail: u64) -> Result<u64, Corrupt> {
    // SYNC POINT: pairs with the consumer's Release store of head in
    // `RawConsumer::pop`: the bytes it released were fully copied out before
    // we overwrite them.
    let head = region.header().consumer.head.load(Ordering::Acquire);
    match tail.checked_sub(head) {
        Some(used) if used <= region.capacity() => Ok(used),
        _ => Err(Corrupt::new("head outside the written region")),
    }
}

impl<R: Region> RawProducer<R> {
    /// Takes over the writing side of a fresh region (both positions 0).
    pub(crate) fn new(region: Arc<R>, max_message: usize) -> Self {
        let max_message = effective_max(region.capacity(), max_message);
        Self {
            region,
            tail: 0,
            max_message,
        }
    }

    /// Our write position (bytes ever published, padding included).
    pub(crate) fn position(&self) -> u64 {
        self.tail
    }

    /// The largest message `try_push` accepts.
    pub(crate) fn max_message(&self) -> usize {
        self.max_message as usize
    }

    /// Appends one message. Does not wake the consumer: see
    /// [`consumer_needs_wake`](Self::consumer_needs_wake).
    pub(crate) fn try_push(&mut self, msg: &[u8]) -> Result<(), PushError> {
        if msg.len() as u64 > self.max_message {
            return Err(PushError::TooLarge {
                len: msg.len(),
                max: self.max_message(),
            });
        }
        self.try_push_parts(&[IoSlice::new(msg)], msg.len())
            .map(|_| ())
    }

    /// Appends one message made of the first `limit` bytes (at most) of
    /// `parts` laid end to end, capped at `max_message`; returns its length.
    /// Does not wake the consumer.
    pub(crate) fn try_push_parts(
        &mut self,
        parts: &[IoSlice<'_>],
        limit: usize,
    ) -> Result<usize, PushError> {
        let total = parts.iter().map(|part| part.len()).sum::<usize>();
        let len = (total.min(limit) as u64).min(self.max_message);
        let capacity = self.region.capacity();
        let record = record_len(len);
        let mut free = capacity - checked_used(&*self.region, self.tail)?;
        let off = self.tail & (capacity - 1);
        let to_end = capacity - off;
        if record > to_end {
            // Publish the padding on its own as soon as it fits, so a record
            // that needs the whole ring can still go once the ring drains.
            if to_end > free {
                return Err(PushError::Full);
            }
            self.region.write(off, &PAD_MARKER.to_ne_bytes());
            self.publish(self.tail + to_end);
            free -= to_end;
        }
        if record > free {
            return Err(PushError::Full);
        }
        let off = self.tail & (capacity - 1);
        self.region.write(off, &(len as u32).to_ne_bytes());
        let (mut at, mut left) = (off + PREFIX, len as usize);
        for part in parts {
            let n = part.len().min(left);
            self.region.write(at, &part[..n]);
            at += n as u64;
            left -= n;
        }
        self.publish(self.tail + record);
        Ok(len as usize)
    }

    fn publish(&mut self, tail: u64) {
        self.tail = tail;
        // SYNC POINT: pairs with the consumer's Acquire load of tail in
        // `RawConsumer::pop`: the record bytes written above are visible to
        // it before the new tail is.
        self.region
            .header()
            .producer
            .tail
            .store(tail, Ordering::Release);
    }

    /// Whether a push of `len` bytes could now make progress (write its record,
    /// or at least the padding before it).
    pub(crate) fn can_progress(&self, len: usize) -> Result<bool, Corrupt> {
        let capacity = self.region.capacity();
        let free = capacity - checked_used(&*self.region, self.tail)?;
        let record = record_len((len as u64).min(self.max_message));
        let to_end = capacity - (self.tail & (capacity - 1));
        Ok(if record > to_end {
            to_end <= free
        } else {
            record <= free
        })
    }

    /// After a push: whether the consumer is parked and must be signalled.
    /// Clears its flag, so one wake-up is sent per park.
    pub(crate) fn consumer_needs_wake(&self) -> bool {
        // SYNC POINT (Dekker, producer side): the SeqCst fence orders our store
        // of tail before the load of `consumer_waiting`; the consumer orders
        // its store of the flag before its load of tail with its own SeqCst
        // fence (`RawConsumer::arm`). In the fences' total order one comes
        // first, so either we see the flag or the consumer sees our tail: a
        // wake-up is never lost.
        fence(Ordering::SeqCst);
        let waiting = &self.region.header().producer.consumer_waiting;
        waiting.load(Ordering::Relaxed) != 0 && waiting.swap(0, Ordering::Relaxed) != 0
    }

    /// Announces that the producer is about to park waiting for space for a
    /// `len`-byte message; returns `true` when it must not park after all.
    pub(crate) fn arm(&self, len: usize) -> Result<bool, Corrupt> {
        let waiting = &self.region.header().consumer.producer_waiting;
        waiting.store(1, Ordering::Relaxed);
        // SYNC POINT (Dekker, producer as waiter): pairs with the fence in
        // `RawConsumer::producer_needs_wake`, as described there.
        fence(Ordering::SeqCst);
        let ready = self.can_progress(len)?;
        if ready {
            waiting.store(0, Ordering::Relaxed);
        }
        Ok(ready)
    }
}

impl<R: Region> RawConsumer<R> {
    /// Takes over the reading side of a fresh region (both positions 0).
    pub(crate) fn new(region: Arc<R>, max_message: usize) -> Self {
        let max_message = effective_max(region.capacity(), max_message);
        Self {
            region,
            head: 0,
            max_message,
        }
    }

    /// The largest length this consumer accepts.
    pub(crate) fn max_message(&self) -> usize {
        self.max_message as usize
    }

    /// Our read position (bytes ever consumed, padding included).
    pub(crate) fn position(&self) -> u64 {
        self.head
    }

    /// The ring's memory.
    pub(crate) fn region(&self) -> &R {
        &self.region
    }

    /// Loads and validates the producer's tail.
    fn checked_tail(&self) -> Result<u64, Corrupt> {
        // SYNC POINT: pairs with the producer's Release store of tail in
        // `RawProducer::publish`: every byte up to `tail` is written.
        let tail = self.region.header().producer.tail.load(Ordering::Acquire);
        match tail.checked_sub(self.head) {
            Some(avail) if avail <= self.region.capacity() && tail % RECORD_ALIGN == 0 => Ok(tail),
            _ => Err(Corrupt::new("tail outside the ring")),
        }
    }

    /// Finds the next message: skips padding (giving its space back) and
    /// validates the record. Returns the data offset of its bytes and its
    /// length, or `None` when the ring is empty. The message stays in the
    /// ring until [`consume`](Self::consume).
    fn next_message(&mut self) -> Result<Option<(u64, u64)>, Corrupt> {
        let tail = self.checked_tail()?;
        let capacity = self.region.capacity();
        let start = self.head;
        loop {
            let avail = tail - self.head;
            if avail == 0 {
                if self.head != start {
                    self.release(); // padding consumed: give its space back
                }
                return Ok(None);
            }
            let off = self.head & (capacity - 1);
            let mut prefix = [MaybeUninit::uninit(); PREFIX as usize];
            self.region.read(off, &mut prefix);
            let len = u32::from_ne_bytes(prefix.map(|b| {
                // SAFETY:
                // 1. `Region::read` initialises every byte of `dst`.
                unsafe { b.assume_init() }
            }));
            if len == PAD_MARKER {
                let to_end = capacity - off;
                // A pad at offset 0 would skip the whole ring: never written.
                if off == 0 || to_end > avail {
                    return Err(Corrupt::new("padding outside the written region"));
                }
                self.head += to_end;
                continue;
            }
            let len = u64::from(len);
            if len > self.max_message {
                return Err(Corrupt::new("message length over the limit"));
            }
            let record = record_len(len);
            if record > avail || record > capacity - off {
                return Err(Corrupt::new("message past the written region"));
            }
            if self.head != start {
                // The padding's space goes back now, even if the caller
                // leaves the message in place; the record lies past it.
                self.release();
            }
            return Ok(Some((off + PREFIX, len)));
        }
    }

    /// Frees the record of the `len`-byte message `next_message` found, once
    /// its bytes are copied out.
    fn consume(&mut self, len: u64) {
        self.head += record_len(len);
        self.release();
    }

    /// Copies the next message into `out` (replacing its contents) and returns
    /// its length, or `None` when the ring is empty.
    pub(crate) fn pop(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, Corrupt> {
        let Some((at, len)) = self.next_message()? else {
            return Ok(None);
        };
        out.clear();
        out.reserve(len as usize);
        self.region
            .read(at, &mut out.spare_capacity_mut()[..len as usize]);
        // SAFETY:
        // 1. `reserve` made room for `len` bytes.
        // 2. `Region::read` initialised exactly the first `len` of them.
        unsafe { out.set_len(len as usize) };
        self.consume(len);
        Ok(Some(len as usize))
    }

    /// Copies the next message into the buffer `dst(len)` returns; when it
    /// returns none (or one shorter than `len`), the message stays in the ring.
    pub(crate) fn pop_with<'a>(
        &mut self,
        dst: impl FnOnce(usize) -> Option<&'a mut [u8]>,
    ) -> Result<Pop, Corrupt> {
        let Some((at, len)) = self.next_message()? else {
            return Ok(Pop::Empty);
        };
        let Some(dst) = dst(len as usize).and_then(|dst| dst.get_mut(..len as usize)) else {
            return Ok(Pop::Declined(len as usize));
        };
        let dst: *mut [u8] = dst;
        // SAFETY:
        // 1. `MaybeUninit<u8>` has the size, alignment and validity of `u8`
        //    and more: the cast slice covers exactly the memory of `dst`,
        //    which it borrows uniquely for this call.
        // 2. The only writes through it are `Region::read`'s, which store
        //    initialised bytes, so `dst` stays initialised `u8`s.
        let dst = unsafe { &mut *(dst as *mut [MaybeUninit<u8>]) };
        self.region.read(at, dst);
        self.consume(len);
        Ok(Pop::Copied(len as usize))
    }

    fn release(&self) {
        // SYNC POINT: pairs with the producer's Acquire load of head in
        // `checked_used`: our copy-out above happens before it reuses the bytes.
        self.region
            .header()
            .consumer
            .head
            .store(self.head, Ordering::Release);
    }

    /// Announces that the consumer is about to park; returns `true` when data
    /// arrived meanwhile and it must not park after all.
    pub(crate) fn arm(&self) -> bool {
        let waiting = &self.region.header().producer.consumer_waiting;
        waiting.store(1, Ordering::Relaxed);
        // SYNC POINT (Dekker, consumer side): pairs with the fence in
        // `RawProducer::consumer_needs_wake`, as described there.
        fence(Ordering::SeqCst);
        let ready = self.has_data();
        if ready {
            waiting.store(0, Ordering::Relaxed);
        }
        ready
    }

    /// Whether the tail has moved past our head (the next `pop` has work,
    /// possibly only to report corruption).
    pub(crate) fn has_data(&self) -> bool {
        // Relaxed: a hint only; `pop` loads tail again with Acquire.
        self.region.header().producer.tail.load(Ordering::Relaxed) != self.head
    }

    /// After a pop: whether the producer is parked waiting for space and must
    /// be signalled. The same Dekker pattern as `consumer_needs_wake`, with
    /// head in place of tail and `RawProducer::arm` as the other side.
    pub(crate) fn producer_needs_wake(&self) -> bool {
        // SYNC POINT (Dekker, consumer as notifier): see `consumer_needs_wake`.
        fence(Ordering::SeqCst);
        let waiting = &self.region.header().consumer.producer_waiting;
        waiting.load(Ordering::Relaxed) != 0 && waiting.swap(0, Ordering::Relaxed) != 0
    }
}
