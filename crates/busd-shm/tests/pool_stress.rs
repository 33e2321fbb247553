//! Two processes, one payload pool: the parent writes a million payloads
//! of scattered sizes (1 B..=16 KiB, content derived from the sequence
//! number) into blocks of a 1 MiB pool, and sends each block's place
//! through one ring; the child reads every payload in place, checks every
//! byte, and hands each block back through another ring, after which the
//! parent reuses it. Every block is reused thousands of times, in every
//! size the buddy allocator splits and merges.
//!
//! The child is this test binary again (see `common`).
#![cfg(not(loom))]

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use busd_shm::{Events, Options, PoolReader, PoolWriter, Ring};
use common::{events, inheritable, inherited, spawn_child, wait_success};

mod common;

const FDS_VAR: &str = "BUSD_SHM_POOL_STRESS_FDS";
const MESSAGES: u64 = 1_000_000;
const MAX_LEN: usize = 16 * 1024;
const POOL: u64 = 1 << 20;
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

/// The length of payload `seq`: 1..=16 KiB, scattered.
fn len_of(seq: u64) -> usize {
    1 + (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 50) as usize
}

/// Payload `seq`: a pattern that depends on it, `len_of(seq)` bytes.
fn payload(seq: u64, pattern: &[u8]) -> &[u8] {
    let start = (seq % 251) as usize;
    &pattern[start..start + len_of(seq)]
}

fn pattern() -> Vec<u8> {
    (0..MAX_LEN + 251)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 8) ^ (i >> 13)) as u8)
        .collect()
}

/// An offer: the payload's sequence number, its block's offset, its length.
fn offer(seq: u64, offset: u64, len: usize) -> [u8; 24] {
    let mut bytes = [0; 24];
    bytes[..8].copy_from_slice(&seq.to_le_bytes());
    bytes[8..16].copy_from_slice(&offset.to_le_bytes());
    bytes[16..].copy_from_slice(&(len as u64).to_le_bytes());
    bytes
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[test]
fn a_million_payloads_through_one_pool_between_two_processes() {
    let (mut pool, pool_fd) = PoolWriter::create("busd-stress-pool", POOL).expect("pool");
    let offers = Ring::create(64 * 1024).expect("ring");
    let offer_events = Events::new().expect("eventfds");
    // Room for every block's return at once (a block comes back once per
    // lending), so the child never waits on a parent waiting on it.
    let returns = Ring::create(64 * 1024).expect("ring");
    let return_events = Events::new().expect("eventfds");
    let fds = vec![
        inheritable(&pool_fd),
        inheritable(offers.fd()),
        inheritable(&offer_events.readable),
        inheritable(&offer_events.writable),
        inheritable(returns.fd()),
        inheritable(&return_events.readable),
        inheritable(&return_events.writable),
    ];
    let child = spawn_child("pool_stress_child", FDS_VAR, fds);

    let mut offering = offers.producer(offer_events, Options::default().max_message(24));
    let mut taking_back = returns.consumer(return_events, Options::default().max_message(8));
    let pattern = pattern();
    let mut back = Vec::new();
    // A ring is opened only while fresh: nothing is offered before the
    // child says it has opened both.
    let ready = taking_back
        .pop_wait(&mut back, TIMEOUT)
        .expect("ring intact");
    assert_eq!(ready, Some(5), "the child is ready");
    let give_back = |pool: &mut PoolWriter, back: &[u8]| {
        pool.release(word(back, 0)).expect("a block lent out");
    };
    for seq in 0..MESSAGES {
        let bytes = payload(seq, &pattern);
        while taking_back
            .try_pop(&mut back)
            .expect("ring intact")
            .is_some()
        {
            give_back(&mut pool, &back);
        }
        let mut slot = loop {
            if let Some(slot) = pool.alloc(bytes.len()) {
                break slot;
            }
            let got = taking_back
                .pop_wait(&mut back, TIMEOUT)
                .expect("ring intact");
            assert!(got.is_some(), "payload {seq}: no block came back");
            give_back(&mut pool, &back);
        };
        slot.as_mut_slice().copy_from_slice(bytes);
        let sent = offer(seq, slot.offset(), slot.len());
        offering.push_wait(&sent, TIMEOUT).expect("push");
    }
    while pool.in_use() > 0 {
        let got = taking_back
            .pop_wait(&mut back, TIMEOUT)
            .expect("ring intact");
        assert!(got.is_some(), "{} bytes never came back", pool.in_use());
        give_back(&mut pool, &back);
    }
    wait_success(child);
}

/// The reader half, run only in the child process.
#[test]
#[ignore = "child process of a_million_payloads_through_one_pool_between_two_processes"]
fn pool_stress_child() {
    let Some(fds) = inherited(FDS_VAR) else {
        return;
    };
    let [pool, offers, offer_r, offer_w, returns, return_r, return_w] =
        <[OwnedFd; 7]>::try_from(fds).expect("seven fds");
    let pool = PoolReader::open(pool.as_fd()).expect("open pool");
    let offers = Ring::open(offers).expect("open ring");
    let mut taking = offers.consumer(events(offer_r, offer_w), Options::default().max_message(24));
    let returns = Ring::open(returns).expect("open ring");
    let mut giving_back = returns.producer(
        events(return_r, return_w),
        Options::default().max_message(8),
    );
    giving_back.push_wait(b"ready", TIMEOUT).expect("push");
    let pattern = pattern();
    let mut offered = Vec::new();
    for seq in 0..MESSAGES {
        let got = taking.pop_wait(&mut offered, TIMEOUT).expect("ring intact");
        assert_eq!(got, Some(24), "offer {seq}: wrong length or timed out");
        assert_eq!(word(&offered, 0), seq, "offers in order");
        let (offset, len) = (word(&offered, 8), word(&offered, 16));
        let view = pool.view(offset, len).expect("a block of the pool");
        assert!(
            view.as_slice() == payload(seq, &pattern),
            "payload {seq}: bytes differ"
        );
        drop(view);
        giving_back
            .push_wait(&offset.to_le_bytes(), TIMEOUT)
            .expect("push");
    }
}
