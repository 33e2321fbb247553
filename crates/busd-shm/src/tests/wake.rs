//! Spin-then-park waiting and the eventfd wake-ups, across threads.

use std::thread;
use std::time::{Duration, Instant};

use super::{message, pair_with};
use crate::error::PushError;
use crate::shm::Options;
use crate::wake::Readiness;

const LONG: Option<Duration> = Some(Duration::from_secs(30));

#[test]
fn pop_wait_times_out_on_an_empty_ring() {
    let (_producer, mut sut, _fd) = pair_with(64, Options::default(), Options::default().spin(10));
    let start = Instant::now();
    assert_eq!(
        sut.pop_wait(&mut Vec::new(), Some(Duration::from_millis(50)))
            .unwrap(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn armed_consumer_is_signalled_once() {
    let (mut producer, mut sut, _fd) = pair_with(64, Options::default(), Options::default());
    assert_eq!(sut.prepare_wait(), Readiness::Armed);
    producer.try_push(b"a").unwrap();
    producer.try_push(b"b").unwrap();
    assert!(
        sut.events().readable.drain().unwrap(),
        "the first push signals"
    );
    assert!(
        !sut.events().readable.drain().unwrap(),
        "the flag was cleared: no second signal"
    );
    // Data already there: arming reports Ready and leaves the flag clear.
    assert_eq!(sut.prepare_wait(), Readiness::Ready);
    producer.try_push(b"c").unwrap();
    assert!(!sut.events().readable.drain().unwrap());
}

#[test]
fn parked_consumer_wakes_for_each_message() {
    // spin(0): park at once, so every message goes through the eventfd path.
    let (mut producer, mut sut, _fd) =
        pair_with(4096, Options::default(), Options::default().spin(0));
    let child = thread::spawn(move || {
        for seq in 0..2_000u64 {
            if seq % 100 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            producer
                .push_wait(&message(seq, (seq % 300) as usize), LONG)
                .unwrap();
        }
    });
    let mut out = Vec::new();
    for seq in 0..2_000u64 {
        let len = sut
            .pop_wait(&mut out, LONG)
            .unwrap()
            .expect("message before the timeout");
        assert_eq!(len, (seq % 300) as usize);
        assert_eq!(out, message(seq, len));
    }
    child.join().unwrap();
}

#[test]
fn producer_parks_on_a_full_ring_until_space_frees() {
    let (mut sut, mut consumer, _fd) =
        pair_with(256, Options::default().spin(0), Options::default());
    let child = thread::spawn(move || {
        let mut out = Vec::new();
        for seq in 0..1_000u64 {
            if seq % 50 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            let len = consumer.pop_wait(&mut out, LONG).unwrap().expect("message");
            assert_eq!(out, message(seq, len));
        }
    });
    for seq in 0..1_000u64 {
        sut.push_wait(&message(seq, (seq % 200) as usize), LONG)
            .unwrap();
    }
    child.join().unwrap();
}

#[test]
fn push_wait_times_out_when_nobody_reads() {
    let (mut sut, _consumer, _fd) = pair_with(64, Options::default().spin(10), Options::default());
    sut.try_push(&[0; 60]).unwrap();
    let err = sut
        .push_wait(&[0; 8], Some(Duration::from_millis(20)))
        .unwrap_err();
    assert!(matches!(err, PushError::Full));
}
