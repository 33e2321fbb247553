//! A hostile peer: garbage positions and lengths written into the shared
//! memory, short and unsealed memfds. Every case is an error, never a panic
//! or an out-of-bounds access.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::SealFlags;

use super::{pair, pair_with, poke};
use crate::error::{PushError, RingError, ShmError};
use crate::header::{HEADER_SIZE, offsets};
use crate::memfd::{RING_SEALS, SEGMENT_SEALS, create_memfd, seal};
use crate::segment::Segment;
use crate::shm::{Options, Ring};
use crate::wake::EventFd;

fn assert_corrupt(result: Result<Option<usize>, RingError>, why: &str) {
    match result {
        Err(RingError::Corrupt(c)) => assert!(c.reason().contains(why), "{c}: expected {why:?}"),
        other => panic!("expected Corrupt({why}), got {other:?}"),
    }
}

#[test]
fn garbage_tail_is_corrupt() {
    let (_producer, mut sut, fd) = pair(64);
    let mut out = Vec::new();
    for tail in [64 + 8, u64::MAX - 7, 3] {
        poke(&fd, offsets::TAIL, &tail.to_ne_bytes());
        assert_corrupt(sut.try_pop(&mut out), "tail outside the ring");
    }
    // Behind the consumer's own head.
    let (mut producer, mut sut, fd) = pair(64);
    producer.try_push(&[1; 12]).unwrap();
    sut.try_pop(&mut out).unwrap();
    poke(&fd, offsets::TAIL, &0u64.to_ne_bytes());
    assert_corrupt(sut.try_pop(&mut out), "tail outside the ring");
}

#[test]
fn garbage_head_is_corrupt_for_the_producer() {
    let (mut sut, _consumer, fd) = pair(64);
    sut.try_push(&[1; 4]).unwrap(); // tail = 8
    for head in [16, u64::MAX] {
        poke(&fd, offsets::HEAD, &head.to_ne_bytes());
        assert!(
            matches!(sut.try_push(b"x"), Err(PushError::Corrupt(_))),
            "head {head}"
        );
    }
    let (mut sut, mut consumer, fd) = pair(64);
    let mut out = Vec::new();
    for _ in 0..20 {
        sut.try_push(&[2; 4]).unwrap();
        consumer.try_pop(&mut out).unwrap();
    }
    poke(&fd, offsets::HEAD, &0u64.to_ne_bytes()); // tail - head > capacity
    assert!(matches!(sut.try_push(b"x"), Err(PushError::Corrupt(_))));
}

#[test]
fn out_of_range_lengths_are_corrupt() {
    let data = HEADER_SIZE as u64;
    let mut out = Vec::new();
    // Over the ring's limit, over the configured limit, past the written
    // region, and a padding marker where none may be.
    let cases: [(u32, u64, &str); 5] = [
        (64, 8, "over the limit"),
        (u32::MAX - 1, 8, "over the limit"),
        (40, 8, "over the limit"), // consumer's max_message is 32
        (20, 8, "past the written region"),
        (u32::MAX, 8, "padding"),
    ];
    for (len, tail, why) in cases {
        let (_producer, mut sut, fd) =
            pair_with(64, Options::default(), Options::default().max_message(32));
        poke(&fd, data, &len.to_ne_bytes());
        poke(&fd, offsets::TAIL, &tail.to_ne_bytes());
        assert_corrupt(sut.try_pop(&mut out), why);
    }
    // Padding claimed to run past the written region.
    let (mut producer, mut sut, fd) = pair(64);
    producer.try_push(&[7; 4]).unwrap();
    sut.try_pop(&mut out).unwrap();
    poke(&fd, data + 8, &u32::MAX.to_ne_bytes());
    poke(&fd, offsets::TAIL, &16u64.to_ne_bytes());
    assert_corrupt(sut.try_pop(&mut out), "padding");
}

#[test]
fn unpublished_bytes_are_never_read() {
    // A producer killed mid-write leaves bytes past the tail: invisible.
    let (mut producer, mut sut, fd) = pair(64);
    producer.try_push(b"whole").unwrap();
    poke(&fd, HEADER_SIZE as u64 + 16, &[0xff; 24]);
    let mut out = Vec::new();
    assert_eq!(sut.try_pop(&mut out).unwrap(), Some(5));
    assert_eq!(out, b"whole");
    assert_eq!(sut.try_pop(&mut out).unwrap(), None);
}

fn sealed_memfd(len: u64, seals: SealFlags) -> OwnedFd {
    let fd = create_memfd("test", len).unwrap();
    if !seals.is_empty() {
        seal(fd.as_fd(), seals).unwrap();
    }
    fd
}

#[test]
fn bad_ring_memfds_are_refused_at_open() {
    let full = HEADER_SIZE as u64 + 64;
    let unsealed = sealed_memfd(full, SealFlags::empty());
    assert!(matches!(
        Ring::open(unsealed),
        Err(ShmError::MissingSeals { .. })
    ));
    let short = sealed_memfd(100, RING_SEALS);
    assert!(matches!(Ring::open(short), Err(ShmError::BadSize { .. })));
    let zeroes = sealed_memfd(full, RING_SEALS);
    assert!(matches!(
        Ring::open(zeroes),
        Err(ShmError::BadHeader("bad magic"))
    ));

    // A genuine header that claims more than the memfd holds.
    let big = Ring::create(4096).unwrap();
    let mut header = [0u8; HEADER_SIZE];
    rustix::io::pread(big.fd(), &mut header, 0).unwrap();
    let liar = create_memfd("liar", full).unwrap();
    poke(&liar, 0, &header);
    seal(liar.as_fd(), RING_SEALS).unwrap();
    assert!(matches!(Ring::open(liar), Err(ShmError::BadHeader(_))));

    // A ring that is already in use.
    let (mut producer, _consumer, fd) = pair(64);
    producer.try_push(b"x").unwrap();
    assert!(matches!(
        Ring::open(fd),
        Err(ShmError::BadHeader("ring already in use"))
    ));
}

#[test]
fn ring_memfd_cannot_be_truncated() {
    let ring = Ring::create(64).unwrap();
    assert!(rustix::fs::ftruncate(ring.fd(), 0).is_err());
    assert!(rustix::fs::ftruncate(ring.fd(), 1 << 20).is_err());
}

#[test]
fn unsealed_payloads_are_refused() {
    let payload = b"zero copies";
    let plain = create_memfd("plain", payload.len() as u64).unwrap();
    poke(&plain, 0, payload);
    assert!(matches!(
        crate::check_seals(plain.as_fd(), SEGMENT_SEALS),
        Err(ShmError::MissingSeals { .. })
    ));
    assert!(matches!(
        Segment::open(plain.as_fd()),
        Err(ShmError::MissingSeals { .. })
    ));
    // Sealed against resizing but still writable: refused too.
    seal(plain.as_fd(), RING_SEALS).unwrap();
    assert!(matches!(
        Segment::open(plain.as_fd()),
        Err(ShmError::MissingSeals { .. })
    ));
    // Not a memfd at all.
    let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(matches!(
        Segment::open(socket.as_fd()),
        Err(ShmError::Sys { .. })
    ));

    let fd = Segment::create("payload", payload).unwrap();
    crate::check_seals(fd.as_fd(), SEGMENT_SEALS).unwrap();
    assert!(
        rustix::io::pwrite(&fd, b"Z", 0).is_err(),
        "sealed against writes"
    );
    let sut = Segment::open(fd.as_fd()).unwrap();
    assert_eq!(sut.as_bytes(), payload);
    assert!(matches!(
        Segment::create("empty", b""),
        Err(ShmError::BadSize { .. })
    ));
}

#[test]
fn segments_written_in_place_are_sealed_like_copied_ones() {
    let mut sut = crate::SegmentMut::new("in-place", 10_000).unwrap();
    assert_eq!(sut.len(), 10_000);
    for (i, b) in sut.as_mut_slice().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    // Its size is fixed while it is written; its bytes are not yet.
    let fd = sut.seal().unwrap();
    crate::check_seals(fd.as_fd(), SEGMENT_SEALS).unwrap();
    assert!(
        rustix::io::pwrite(&fd, b"Z", 0).is_err(),
        "sealed against writes"
    );
    assert!(
        rustix::fs::ftruncate(&fd, 1).is_err(),
        "sealed against shrinking"
    );
    let read = Segment::open(fd.as_fd()).unwrap();
    assert!(
        read.as_bytes()
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8)
    );
    assert!(matches!(
        crate::SegmentMut::new("empty", 0),
        Err(ShmError::BadSize { .. })
    ));
}

#[test]
fn only_eventfds_are_adopted() {
    let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(matches!(
        EventFd::from_fd(socket.into()),
        Err(ShmError::NotAnEventFd)
    ));
    let fd: OwnedFd = EventFd::new().unwrap().into();
    let sut = EventFd::from_fd(fd).unwrap();
    sut.signal().unwrap();
    assert!(sut.drain().unwrap());
    assert!(!sut.drain().unwrap());
}
