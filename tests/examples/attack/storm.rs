//! The shm wake-up storm: connections set up by hand (the preface and its
//! six fds, as `busd-transport` sends them), so that the attacker keeps the
//! eventfd the daemon waits on for each connection's client-to-daemon
//! ring, and signals it in a tight loop with nothing in the ring.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use busd_shm::{Events, Ring};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// Ring size asked for: the smallest a daemon takes is enough.
const CAPACITY: u64 = 64 * 1024;

/// One connection's set-up: its rings and their events.
struct Conn {
    stream: UnixStream,
    /// Client-to-daemon, daemon-to-client.
    rings: [OwnedFd; 2],
    /// The daemon waits on `readable` for the client-to-daemon ring.
    c2d: Events,
    d2c: Events,
}

/// Opens `conns` shm connections to the unix socket of `url` and signals
/// their daemon-side eventfds until `hold` has passed.
pub(super) async fn run(url: &str, conns: usize, hold: Duration) {
    let path = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("shm://"))
        .expect("a unix:// or shm:// url");
    let mut held = Vec::new();
    for _ in 0..conns {
        held.push(connect(path).await);
    }
    eprintln!("attack: {} connections open; storming", held.len());
    let signals = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + hold;
        let mut signals = 0u64;
        while Instant::now() < until {
            for c in &held {
                c.c2d.readable.signal().expect("signal");
            }
            signals += held.len() as u64;
        }
        signals
    })
    .await
    .expect("storm");
    eprintln!(
        "attack: {signals} wake-ups in {hold:?} ({:.0}/s)",
        signals as f64 / hold.as_secs_f64()
    );
}

async fn connect(path: &str) -> Conn {
    let ring = || {
        let ring = Ring::create(CAPACITY).expect("ring");
        ring.fd().try_clone_to_owned().expect("ring fd")
    };
    let mut conn = Conn {
        stream: UnixStream::connect(path).await.expect("connect"),
        rings: [ring(), ring()],
        c2d: Events::new().expect("events"),
        d2c: Events::new().expect("events"),
    };
    let fds: [BorrowedFd<'_>; 6] = [
        conn.rings[0].as_fd(),
        conn.c2d.readable.as_fd(),
        conn.c2d.writable.as_fd(),
        conn.rings[1].as_fd(),
        conn.d2c.readable.as_fd(),
        conn.d2c.writable.as_fd(),
    ];
    let mut preface = u32::MAX.to_be_bytes().to_vec();
    preface.extend_from_slice(b"SHM1");
    preface.extend_from_slice(&CAPACITY.to_be_bytes());
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(6))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    rustix::net::sendmsg(
        &conn.stream,
        &[IoSlice::new(&preface)],
        &mut control,
        SendFlags::empty(),
    )
    .expect("preface");
    // The daemon's one-byte answer: the rings are taken.
    let mut answer = [0u8; 1];
    conn.stream.read_exact(&mut answer).await.expect("answer");
    conn
}
