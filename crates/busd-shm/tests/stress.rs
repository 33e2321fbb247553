//! Two processes, one ring: a child pushes a million variable-size messages
//! (1..=4096 bytes, content derived from the sequence number) and the parent
//! checks every byte and the order.
//!
//! The child is this test binary again, running `stress_child` with the
//! ring's and eventfds' fds (see `common`).
#![cfg(not(loom))]

use std::os::fd::OwnedFd;
use std::time::Duration;

use busd_shm::{Events, Options, Ring};
use common::{events, inheritable, inherited, spawn_child, wait_success};

mod common;

const FDS_VAR: &str = "BUSD_SHM_STRESS_FDS";
const MESSAGES: u64 = 1_000_000;
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

/// The length of message `seq`: 1..=4096, scattered.
fn len_of(seq: u64) -> usize {
    1 + (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
}

/// Message `seq`: its sequence number, then a pattern that depends on it,
/// cut to `len_of(seq)` bytes.
fn fill(seq: u64, pattern: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    let start = (seq % 251) as usize;
    out.extend_from_slice(&pattern[start..start + 4096]);
    out.truncate(len_of(seq));
}

fn pattern() -> Vec<u8> {
    (0..4096 + 251)
        .map(|i: u32| (i.wrapping_mul(7) ^ (i >> 8)) as u8)
        .collect()
}

#[test]
fn million_messages_between_two_processes() {
    let ring = Ring::create(1 << 20).expect("ring");
    let events = Events::new().expect("eventfds");
    let fds = vec![
        inheritable(ring.fd()),
        inheritable(&events.readable),
        inheritable(&events.writable),
    ];
    let child = spawn_child("stress_child", FDS_VAR, fds);

    let mut consumer = ring.consumer(events, Options::default().max_message(4096));
    let pattern = pattern();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for seq in 0..MESSAGES {
        let len = consumer.pop_wait(&mut got, TIMEOUT).expect("ring intact");
        assert_eq!(
            len,
            Some(len_of(seq)),
            "message {seq}: wrong length or timed out"
        );
        fill(seq, &pattern, &mut want);
        assert!(got == want, "message {seq}: bytes differ");
    }
    assert_eq!(
        consumer.try_pop(&mut got).unwrap(),
        None,
        "nothing after the last message"
    );
    wait_success(child);
}

/// The producer half, run only in the child process.
#[test]
#[ignore = "child process of million_messages_between_two_processes"]
fn stress_child() {
    let Some(fds) = inherited(FDS_VAR) else {
        return;
    };
    let [ring, readable, writable] = <[OwnedFd; 3]>::try_from(fds).expect("three fds");
    let ring = Ring::open(ring).expect("open ring");
    let events = events(readable, writable);
    let mut producer = ring.producer(events, Options::default().max_message(4096));
    let pattern = pattern();
    let mut msg = Vec::new();
    for seq in 0..MESSAGES {
        fill(seq, &pattern, &mut msg);
        producer.push_wait(&msg, TIMEOUT).expect("push");
    }
}
