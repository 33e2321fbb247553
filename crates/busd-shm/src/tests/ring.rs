//! The ring's behaviour with an honest peer: order, wrap-around, limits.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::{message, pair, pair_with};
use crate::error::{PushError, ShmError};
use crate::header::{HEADER_SIZE, offsets};
use crate::shm::{Options, Ring};

fn tail_of(fd: &std::os::fd::OwnedFd) -> u64 {
    let mut buf = [0u8; 8];
    rustix::io::pread(fd, &mut buf, offsets::TAIL).expect("pread");
    u64::from_ne_bytes(buf)
}

#[test]
fn round_trip_and_empty() {
    let (mut sut, mut consumer, _fd) = pair(4096);
    let mut out = Vec::new();
    assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
    sut.try_push(b"hello").unwrap();
    sut.try_push(b"").unwrap();
    sut.try_push(b"world!").unwrap();
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(5));
    assert_eq!(out, b"hello");
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(0));
    assert!(out.is_empty());
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(6));
    assert_eq!(out, b"world!");
    assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
}

#[test]
fn wraps_with_padding_marker() {
    let (mut sut, mut consumer, fd) = pair(64);
    let mut out = Vec::new();
    // Records of 24 bytes: two fill 48, the third needs the end (16) padded.
    sut.try_push(&message(1, 20)).unwrap();
    sut.try_push(&message(2, 20)).unwrap();
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(20));
    assert_eq!(out, message(1, 20));
    sut.try_push(&message(3, 20)).unwrap();
    assert_eq!(
        tail_of(&fd),
        48 + 16 + 24,
        "padding skipped 16 bytes, record at 0"
    );
    for seq in [2, 3] {
        assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(20));
        assert_eq!(out, message(seq, 20));
    }
    assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
}

#[test]
fn full_then_room_again() {
    let (mut sut, mut consumer, _fd) = pair(64);
    let mut out = Vec::new();
    sut.try_push(&[1; 20]).unwrap();
    sut.try_push(&[2; 20]).unwrap();
    assert!(matches!(sut.try_push(&[3; 20]), Err(PushError::Full)));
    consumer.try_pop(&mut out).unwrap();
    consumer.try_pop(&mut out).unwrap();
    sut.try_push(&[3; 20]).unwrap();
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(20));
    assert_eq!(out, [3; 20]);
}

#[test]
fn whole_ring_message_after_an_offset() {
    // A record as large as the ring, pushed when the tail is not at 0: the
    // padding goes first, the record once the consumer skipped it.
    let (mut sut, mut consumer, _fd) = pair(64);
    let mut out = Vec::new();
    sut.try_push(b"abcd").unwrap();
    consumer.try_pop(&mut out).unwrap();
    let big = message(9, 60);
    assert!(matches!(sut.try_push(&big), Err(PushError::Full)));
    assert_eq!(consumer.try_pop(&mut out).unwrap(), None, "only padding");
    sut.try_push(&big).unwrap();
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(60));
    assert_eq!(out, big);
}

#[test]
fn too_large_is_refused() {
    let (mut sut, _consumer, _fd) = pair(64);
    assert_eq!(sut.max_message(), 60);
    let err = sut.try_push(&[0; 61]).unwrap_err();
    assert!(
        matches!(err, PushError::TooLarge { len: 61, max: 60 }),
        "{err:?}"
    );
    let (mut sut, _consumer, _fd) = pair_with(
        4096,
        Options::default().max_message(100),
        Options::default(),
    );
    assert!(matches!(
        sut.try_push(&[0; 101]),
        Err(PushError::TooLarge { .. })
    ));
    sut.try_push(&[0; 100]).unwrap();
}

#[test]
fn every_size_round_trips_across_many_wraps() {
    let (mut sut, mut consumer, _fd) = pair(256);
    let mut out = Vec::new();
    for round in 0..3u64 {
        for len in 0..=252 {
            let msg = message(round * 1000 + len as u64, len);
            if let Err(PushError::Full) = sut.try_push(&msg) {
                // Only padding before the ring's end is left: skip it.
                assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
                sut.try_push(&msg).unwrap();
            }
            assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(len));
            assert_eq!(out, msg);
        }
    }
}

#[test]
fn bad_capacities_are_refused() {
    for capacity in [0, 8, 100, 3 << 20, crate::MAX_CAPACITY * 2] {
        assert!(
            matches!(Ring::create(capacity), Err(ShmError::BadCapacity(_))),
            "{capacity}"
        );
    }
    let ring = Ring::create(crate::MIN_CAPACITY).unwrap();
    assert_eq!(ring.capacity(), crate::MIN_CAPACITY);
    let len = crate::memfd_len(ring.fd()).unwrap();
    assert_eq!(len, HEADER_SIZE as u64 + crate::MIN_CAPACITY);
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0usize..=124).prop_map(Op::Push),
        2 => Just(Op::Pop),
    ];
    proptest::collection::vec(op, 1..300)
}

proptest! {
    #[test]
    fn matches_a_vecdeque_model(ops in ops()) {
        let (mut sut, mut consumer, _fd) = pair(128);
        let mut model = VecDeque::new();
        let mut out = Vec::new();
        for (seq, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(len) => {
                    let msg = message(seq as u64, len);
                    match sut.try_push(&msg) {
                        Ok(()) => model.push_back(msg),
                        Err(PushError::Full) if model.is_empty() => {
                            // Only padding can be in the way: one pop skips
                            // it, and then the message must fit.
                            prop_assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
                            prop_assert!(sut.try_push(&msg).is_ok());
                            model.push_back(msg);
                        }
                        Err(PushError::Full) => {}
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Pop => {
                    let got = consumer.try_pop(&mut out).unwrap();
                    match model.pop_front() {
                        Some(want) => {
                            prop_assert_eq!(got, Some(want.len()));
                            prop_assert_eq!(&out, &want);
                        }
                        None => prop_assert_eq!(got, None),
                    }
                }
            }
        }
        while let Some(want) = model.pop_front() {
            prop_assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(want.len()));
            prop_assert_eq!(&out, &want);
        }
        prop_assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
    }
}

#[test]
fn vectored_pushes_gather_cut_and_wrap() {
    use std::io::IoSlice;
    let (mut producer, mut consumer, _fd) = pair_with(64, Options::default(), Options::default());
    let mut out = Vec::new();
    // Capped at max_message (capacity - 4), not refused.
    let big = [7u8; 100];
    assert_eq!(
        producer
            .try_push_vectored(&[IoSlice::new(&big)], usize::MAX)
            .unwrap(),
        60
    );
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(60));
    assert_eq!(out, vec![7u8; 60]);
    // Gathered, with an empty part in the middle, cut at `limit`.
    let parts = [
        IoSlice::new(b"abc"),
        IoSlice::new(b""),
        IoSlice::new(b"defgh"),
    ];
    assert_eq!(producer.try_push_vectored(&parts, 6).unwrap(), 6);
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(6));
    assert_eq!(out, b"abcdef");
    // Across many wraps, the bytes and their order survive.
    for i in 0..200u32 {
        let n = 1 + (i as usize * 13) % 30;
        let data: Vec<u8> = (0..n).map(|j| (i as usize + j) as u8).collect();
        let (a, b) = data.split_at(n / 2);
        let pushed = producer
            .try_push_vectored(&[IoSlice::new(a), IoSlice::new(b)], usize::MAX)
            .unwrap();
        assert_eq!(pushed, n);
        assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(n));
        assert_eq!(out, data);
    }
    // Nothing to gather: an empty message.
    assert_eq!(producer.try_push_vectored(&[], 10).unwrap(), 0);
    assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(0));
}

#[test]
fn pop_with_copies_into_the_callers_buffer_or_leaves_the_message() {
    use crate::ring::Pop;
    let (mut producer, mut consumer, _fd) = pair_with(64, Options::default(), Options::default());
    let mut buf = [0u8; 64];
    assert_eq!(
        consumer.try_pop_with(|_| Some(&mut buf)).unwrap(),
        Pop::Empty
    );
    for i in 0..100u8 {
        let n = 1 + (i as usize * 11) % 40;
        let msg: Vec<u8> = (0..n).map(|j| i ^ j as u8).collect();
        if let Err(PushError::Full) = producer.try_push(&msg) {
            // Only padding was published: the consumer skips it, and with it
            // gives its space back, even when it finds nothing after it.
            assert_eq!(consumer.try_pop_with(|_| None).unwrap(), Pop::Empty);
            producer.try_push(&msg).unwrap();
        }
        // Declined (no buffer, then one too short): still there.
        assert_eq!(consumer.try_pop_with(|_| None).unwrap(), Pop::Declined(n));
        let mut short = vec![0u8; n - 1];
        assert_eq!(
            consumer.try_pop_with(|_| Some(&mut short)).unwrap(),
            Pop::Declined(n)
        );
        // Every few rounds through a Vec instead, as the transport does.
        if i % 3 == 0 {
            let mut out = Vec::new();
            assert_eq!(consumer.try_pop(&mut out).unwrap(), Some(n));
            assert_eq!(out, msg);
        } else {
            assert_eq!(
                consumer
                    .try_pop_with(|len| {
                        assert_eq!(len, n);
                        Some(&mut buf)
                    })
                    .unwrap(),
                Pop::Copied(n)
            );
            assert_eq!(&buf[..n], &msg[..]);
        }
    }
    assert_eq!(
        consumer.try_pop_with(|_| Some(&mut buf)).unwrap(),
        Pop::Empty
    );
}
