//! Loom models of the ring's orderings: run with
//! `RUSTFLAGS="--cfg loom" cargo test -p busd-shm --release --lib loom`.
//!
//! They drive the production `RawProducer`/`RawConsumer` over a tiny heap
//! region whose bytes are loom cells, so loom reports any read of record bytes
//! that is not ordered after their write (a missing Release/Acquire), and any
//! overwrite of bytes the consumer may still be reading.

use std::mem::MaybeUninit;
use std::sync::Arc;

use loom::thread;

use crate::error::PushError;
use crate::header::RingHeader;
use crate::region::{Region, in_bounds};
use crate::ring::{RawConsumer, RawProducer};
use crate::sync::UnsafeCell;

/// A ring on the heap: loom atomics in the header, one loom cell per byte.
struct LoomRegion {
    header: RingHeader,
    data: Box<[UnsafeCell<u8>]>,
}

// SAFETY:
// 1. The header is atomics only.
// 2. The data cells are accessed only through `Region::write`/`read`, whose
//    concurrent use loom itself checks: an unsynchronised access to a cell
//    fails the model instead of being undefined behaviour.
unsafe impl Sync for LoomRegion {}

impl LoomRegion {
    fn new(capacity: u64) -> Arc<Self> {
        let data = (0..capacity).map(|_| UnsafeCell::new(0)).collect();
        Arc::new(Self {
            header: RingHeader::new(capacity),
            data,
        })
    }
}

impl Region for LoomRegion {
    fn header(&self) -> &RingHeader {
        &self.header
    }

    fn capacity(&self) -> u64 {
        self.data.len() as u64
    }

    fn write(&self, off: u64, src: &[u8]) {
        let off = in_bounds(off, src.len(), self.capacity());
        for (cell, byte) in self.data[off..off + src.len()].iter().zip(src) {
            cell.with_mut(|ptr| {
                // SAFETY:
                // 1. `ptr` points to the cell's byte, valid for a write.
                // 2. Loom checks that no other thread accesses it concurrently.
                unsafe { ptr.write(*byte) }
            });
        }
    }

    fn read(&self, off: u64, dst: &mut [MaybeUninit<u8>]) {
        let off = in_bounds(off, dst.len(), self.capacity());
        for (cell, out) in self.data[off..off + dst.len()].iter().zip(dst) {
            out.write(cell.with(|ptr| {
                // SAFETY:
                // 1. `ptr` points to the cell's initialised byte.
                // 2. Loom checks that no other thread writes it concurrently.
                unsafe { ptr.read() }
            }));
        }
    }
}

fn msg(seq: u8, len: usize) -> Vec<u8> {
    (0..len as u8)
        .map(|i| seq.wrapping_mul(16).wrapping_add(i))
        .collect()
}

/// The producer pushes three messages through a 16-byte ring (so it fills,
/// wraps and pads) while the consumer pops; every message arrives whole and
/// in order, and no byte is read before it was written or overwritten
/// before it was read.
#[test]
fn loom_push_pop_ordering() {
    loom::model(|| {
        let region = LoomRegion::new(16);
        let mut producer = RawProducer::new(region.clone(), usize::MAX);
        let mut consumer = RawConsumer::new(region, usize::MAX);
        let sizes = [4usize, 3, 6]; // records of 8, 8, 16: the third wraps
        let handle = thread::spawn(move || {
            for (seq, &len) in sizes.iter().enumerate() {
                loop {
                    match producer.try_push(&msg(seq as u8, len)) {
                        Ok(()) => break,
                        Err(PushError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        let mut out = Vec::new();
        for (seq, &len) in sizes.iter().enumerate() {
            loop {
                match consumer.pop(&mut out).expect("honest producer") {
                    Some(n) => {
                        assert_eq!(n, len);
                        assert_eq!(out, msg(seq as u8, len));
                        break;
                    }
                    None => thread::yield_now(),
                }
            }
        }
        handle.join().unwrap();
    });
}

/// Dekker, consumer side: a consumer that arms and finds the ring empty is
/// always signalled by the push that follows; a wake-up is never lost.
#[test]
fn loom_consumer_wakeup_is_never_lost() {
    loom::model(|| {
        let region = LoomRegion::new(16);
        let mut producer = RawProducer::new(region.clone(), usize::MAX);
        let mut consumer = RawConsumer::new(region, usize::MAX);
        let handle = thread::spawn(move || {
            producer.try_push(b"hi").unwrap();
            producer.consumer_needs_wake()
        });
        let ready = consumer.arm();
        let signalled = handle.join().unwrap();
        assert!(ready || signalled, "consumer parked and nobody woke it");
        let mut out = Vec::new();
        assert_eq!(consumer.pop(&mut out).unwrap(), Some(2));
    });
}

/// Dekker, producer side: a producer that arms on a full ring is always
/// signalled by the pop that frees space.
#[test]
fn loom_producer_wakeup_is_never_lost() {
    loom::model(|| {
        let region = LoomRegion::new(16);
        let mut producer = RawProducer::new(region.clone(), usize::MAX);
        let mut consumer = RawConsumer::new(region, usize::MAX);
        producer.try_push(&[1; 12]).unwrap(); // a 16-byte record: full
        assert!(matches!(producer.try_push(b"x"), Err(PushError::Full)));
        let handle = thread::spawn(move || {
            let mut out = Vec::new();
            assert_eq!(consumer.pop(&mut out).unwrap(), Some(12));
            consumer.producer_needs_wake()
        });
        let ready = producer.arm(1).unwrap();
        let signalled = handle.join().unwrap();
        assert!(ready || signalled, "producer parked and nobody woke it");
        producer.try_push(b"x").unwrap();
    });
}

/// Padding published on its own (the record then does not fit) must wake a
/// parked consumer too: only its skipping the padding frees the space the
/// record waits for. Mirrors `Producer::try_push`, which checks for a wake-up
/// whenever its position moved, whatever the push returned.
#[test]
fn loom_padding_alone_wakes_the_consumer() {
    loom::model(|| {
        let region = LoomRegion::new(16);
        let mut producer = RawProducer::new(region.clone(), usize::MAX);
        let mut consumer = RawConsumer::new(region, usize::MAX);
        let mut out = Vec::new();
        producer.try_push(b"ab").unwrap(); // tail 8
        assert_eq!(consumer.pop(&mut out).unwrap(), Some(2));
        let handle = thread::spawn(move || {
            // A 16-byte record at offset 8: padding goes out, the record
            // does not fit until the consumer skips it.
            let before = producer.position();
            assert!(matches!(producer.try_push(&[3; 12]), Err(PushError::Full)));
            producer.position() != before && producer.consumer_needs_wake()
        });
        let ready = consumer.arm();
        let signalled = handle.join().unwrap();
        assert!(
            ready || signalled,
            "consumer parked on padding nobody announced"
        );
        assert_eq!(consumer.pop(&mut out).unwrap(), None, "padding only");
    });
}

/// Pushes `bytes` through `producer`, yielding while the ring is full.
fn push(producer: &mut RawProducer<LoomRegion>, bytes: &[u8]) {
    loop {
        match producer.try_push(bytes) {
            Ok(()) => return,
            Err(PushError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A payload pool's protocol: the writer lends a block (the production
/// buddy allocator), writes a payload into it, and sends its offset
/// through one ring; the reader reads the block in place and hands the
/// offset back through another; the writer reuses a block only once it
/// came back. With one block and two payloads the block is reused, and
/// loom checks that no byte of a block is read before the payload was
/// written, or written again while the reader may still read it: the
/// rings' orderings are all the pool needs.
#[test]
fn loom_a_pool_block_is_reused_only_after_it_came_back() {
    loom::model(|| {
        let pool = LoomRegion::new(4); // its data cells are the pool: one 4-byte block
        let offers = LoomRegion::new(16);
        let returns = LoomRegion::new(16);
        let mut offer = RawProducer::new(offers.clone(), usize::MAX);
        let mut take = RawConsumer::new(offers, usize::MAX);
        let mut give_back = RawProducer::new(returns.clone(), usize::MAX);
        let mut taken_back = RawConsumer::new(returns, usize::MAX);
        let writer_pool = pool.clone();
        let writer = thread::spawn(move || {
            let mut blocks = crate::buddy::Buddy::new(2, 2);
            let mut back = Vec::new();
            for seq in 0..2u8 {
                let offset = loop {
                    while taken_back.pop(&mut back).expect("honest reader").is_some() {
                        blocks.free(u64::from(back[0])).expect("a block lent");
                    }
                    match blocks.alloc(4) {
                        Some((offset, _)) => break offset,
                        None => thread::yield_now(),
                    }
                };
                writer_pool.write(offset, &msg(seq, 4));
                push(&mut offer, &[offset as u8]);
            }
        });
        let mut offered = Vec::new();
        for seq in 0..2u8 {
            while take.pop(&mut offered).expect("honest writer").is_none() {
                thread::yield_now();
            }
            let offset = u64::from(offered[0]);
            let mut payload = [MaybeUninit::new(0); 4];
            pool.read(offset, &mut payload);
            let payload = payload.map(|b| {
                // SAFETY: `read` initialised every byte.
                unsafe { b.assume_init() }
            });
            assert_eq!(payload.to_vec(), msg(seq, 4), "payload {seq}");
            push(&mut give_back, &[offset as u8]);
        }
        writer.join().unwrap();
    });
}
