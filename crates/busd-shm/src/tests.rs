//! Unit and fault tests of the ring, memfds and wake-ups (not under loom).

mod faults;
mod ring;
mod wake;

use std::os::fd::{AsFd, OwnedFd};

use crate::handles::{Consumer, Producer};
use crate::shm::{Options, Ring};
use crate::wake::Events;

/// A producer and a consumer on two mappings of one ring memfd, as two
/// processes would have them, plus a spare fd of the memfd for tests that
/// play the hostile peer.
pub(super) fn pair_with(
    capacity: u64,
    producer: Options,
    consumer: Options,
) -> (Producer, Consumer, OwnedFd) {
    let ring = Ring::create(capacity).expect("create ring");
    let spare = ring.fd().try_clone_to_owned().expect("dup");
    let peer = Ring::open(spare.try_clone().expect("dup")).expect("open ring");
    let events = Events::new().expect("eventfds");
    let peer_events = events.try_clone().expect("dup eventfds");
    (
        ring.producer(events, producer),
        peer.consumer(peer_events, consumer),
        spare,
    )
}

pub(super) fn pair(capacity: u64) -> (Producer, Consumer, OwnedFd) {
    pair_with(capacity, Options::default(), Options::default())
}

/// Writes `bytes` at `offset` of the memfd, behind the handles' backs.
pub(super) fn poke(fd: &OwnedFd, offset: u64, bytes: &[u8]) {
    let n = rustix::io::pwrite(fd.as_fd(), bytes, offset).expect("pwrite");
    assert_eq!(n, bytes.len());
}

/// A deterministic message of `len` bytes for sequence number `seq`.
pub(super) fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
        .collect()
}
