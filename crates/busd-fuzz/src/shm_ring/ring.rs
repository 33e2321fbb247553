//! A ring run through a script, against a model of what went in while
//! nothing was poked.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use busd_shm::{Events, HEADER_SIZE, Options, Pop, PushError, Ring, RingError};

use super::{FIELDS, HEAD, Step, TAIL};

/// The peer's hand on the memory: writes behind the handles' backs,
/// through its own fd of the memfd.
pub(super) struct Peer(pub(super) File);

impl Peer {
    pub(super) fn poke(&self, offset: u64, bytes: &[u8]) {
        self.0.write_all_at(bytes, offset).expect("pwrite");
    }

    pub(super) fn peek(&self, offset: u64) -> u64 {
        let mut b = [0; 8];
        self.0.read_exact_at(&mut b, offset).expect("pread");
        u64::from_ne_bytes(b)
    }

    /// A field of [`FIELDS`]: positions are 8 bytes, flags 4.
    fn set(&self, at: u64, value: u64) {
        if at == TAIL || at == HEAD {
            self.poke(at, &value.to_ne_bytes());
        } else {
            self.poke(at, &(value as u32).to_ne_bytes());
        }
    }
}

/// A deterministic message: sequence number `seq`, `len` bytes.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| seq.wrapping_mul(31).wrapping_add(i * 7) as u8)
        .collect()
}

/// Runs `steps` on a fresh ring of `capacity` bytes, opened from its fd as
/// a peer would, both sides taking messages of up to `max_message` bytes
/// (0: the ring's cap).
///
/// # Panics
/// On any broken invariant (see the module `shm_ring`).
pub fn run_ring(capacity: u64, max_message: usize, steps: &[Step]) {
    let ring = Ring::create(capacity).expect("ring");
    let shared: OwnedFd = ring.fd().try_clone_to_owned().expect("dup");
    let peer = Peer(File::from(shared.try_clone().expect("dup")));
    let opened = Ring::open(shared).expect("a fresh ring opens");
    let events = Events::new().expect("eventfds");
    // Both sides must agree on the limit: a longer message is `Corrupt`.
    let options = match max_message {
        0 => Options::default(),
        max => Options::default().max_message(max),
    };
    let mut producer = ring.producer(events.try_clone().expect("dup"), options);
    let mut consumer = opened.consumer(events, options);
    assert!(consumer.max_message() < capacity as usize);
    let size = HEADER_SIZE as u64 + capacity;
    let mut model = VecDeque::new();
    let mut hostile = false;
    let mut out = Vec::new();
    for (seq, step) in steps.iter().enumerate() {
        match step {
            Step::Push(len) => {
                let msg = message(seq as u64, usize::from(*len));
                match producer.try_push(&msg) {
                    Ok(()) => model.push_back(msg),
                    Err(PushError::Full) => {}
                    Err(PushError::TooLarge { len, max }) => {
                        assert!(len > max && max == producer.max_message());
                    }
                    Err(PushError::Corrupt(c)) => assert!(hostile, "{c}"),
                    Err(e) => panic!("{e}"),
                }
            }
            Step::Pop => match consumer.try_pop(&mut out) {
                Ok(got) if !hostile => {
                    let want = model.pop_front();
                    assert_eq!(got, want.as_ref().map(Vec::len));
                    if let Some(want) = want {
                        assert_eq!(out, want);
                    }
                }
                Ok(Some(len)) => {
                    assert_eq!(len, out.len());
                    assert!(len <= consumer.max_message());
                }
                Ok(None) => {}
                Err(RingError::Corrupt(c)) => assert!(hostile, "{c}"),
                Err(e) => panic!("{e}"),
            },
            Step::PopInto(n) => {
                let mut buf = vec![0; usize::from(*n)];
                let size = buf.len();
                match consumer.try_pop_with(|_| Some(&mut buf[..])) {
                    Ok(got) if !hostile => match (got, model.front()) {
                        (Pop::Empty, None) => {}
                        (Pop::Declined(len), Some(want)) => {
                            assert!(len == want.len() && len > size);
                        }
                        (Pop::Copied(len), Some(want)) => {
                            assert_eq!(&buf[..len], &want[..]);
                            model.pop_front();
                        }
                        (got, want) => panic!("{got:?} for {want:?}"),
                    },
                    Ok(Pop::Copied(len)) => assert!(len <= size.min(consumer.max_message())),
                    Ok(Pop::Declined(len)) => assert!(len > size),
                    Ok(Pop::Empty) => {}
                    Err(RingError::Corrupt(c)) => assert!(hostile, "{c}"),
                    Err(e) => panic!("{e}"),
                }
            }
            Step::Poke(at, bytes) => {
                let at = u64::from(*at) % size;
                // Within the memfd: a write past its end would fail (it is
                // sealed against growing).
                let n = bytes.len().min((size - at) as usize);
                peer.poke(at, &bytes[..n]);
                hostile = true;
            }
            Step::Set(i, value) => {
                peer.set(FIELDS[usize::from(*i)], *value);
                hostile = true;
            }
            Step::Nudge(i, records) => {
                let at = FIELDS[usize::from(*i)];
                let moved = peer.peek(at).wrapping_add_signed(i64::from(*records) * 8);
                peer.set(at, moved);
                hostile = true;
            }
            Step::Arm(len) => {
                let _ = consumer.prepare_wait();
                match producer.prepare_wait(usize::from(*len)) {
                    Ok(_) => {}
                    Err(PushError::Corrupt(c)) => assert!(hostile, "{c}"),
                    Err(e) => panic!("{e}"),
                }
            }
            Step::Length(at, len) => {
                let at = at.map_or_else(|| peer.peek(HEAD), |i| u64::from(i) * 8);
                let at = HEADER_SIZE as u64 + at % capacity;
                let len = len.to_ne_bytes();
                peer.poke(at, &len[..len.len().min((size - at) as usize)]);
                hostile = true;
            }
        }
    }
    if hostile {
        return;
    }
    while let Some(want) = model.pop_front() {
        let got = consumer.try_pop(&mut out).expect("an honest ring");
        assert_eq!(got, Some(want.len()));
        assert_eq!(out, want);
    }
    assert_eq!(consumer.try_pop(&mut out).expect("an honest ring"), None);
}
