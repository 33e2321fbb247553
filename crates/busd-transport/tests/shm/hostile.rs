//! Hostile peers: prefaces and fds that a well-behaved client never sends,
//! each refused while the listener keeps accepting, and a ring corrupted
//! after set-up, reported as an error rather than a panic.

use super::*;
use rustix::event::{PollFd, PollFlags, Timespec};

/// A preface asking for rings of `capacity` bytes.
fn preface(capacity: u64) -> Vec<u8> {
    let mut out = u32::MAX.to_be_bytes().to_vec();
    out.extend_from_slice(b"SHM1");
    out.extend_from_slice(&capacity.to_be_bytes());
    out
}

/// Connects and sends `bytes` with `fds` attached, by hand.
async fn raw_client(path: &Path, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> UnixStream {
    let stream = UnixStream::connect(path).await.unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    let sent = rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
    stream
}

/// What the daemon answered: `Some(byte)`, or `None` when it closed.
async fn answer(stream: &mut UnixStream) -> Option<u8> {
    let mut byte = [0; 1];
    let n = timeout(PROMPT, stream.read(&mut byte))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    (n == 1).then_some(byte[0])
}

/// Fds for a well-formed set-up: two rings of `capacity` and their events.
struct Parts {
    c2d: OwnedFd,
    c2d_events: Events,
    d2c: OwnedFd,
    d2c_events: Events,
}

impl Parts {
    fn new(capacity: u64) -> Self {
        let ring_fd = |capacity| {
            let ring = Ring::create(capacity).unwrap();
            // The mapping goes with `ring`; the memfd stays valid.
            ring.fd().try_clone_to_owned().unwrap()
        };
        Self {
            c2d: ring_fd(capacity),
            c2d_events: Events::new().unwrap(),
            d2c: ring_fd(capacity),
            d2c_events: Events::new().unwrap(),
        }
    }

    fn fds(&self) -> [BorrowedFd<'_>; 6] {
        [
            self.c2d.as_fd(),
            self.c2d_events.readable.as_fd(),
            self.c2d_events.writable.as_fd(),
            self.d2c.as_fd(),
            self.d2c_events.readable.as_fd(),
            self.d2c_events.writable.as_fd(),
        ]
    }
}

/// A memfd the size of a ring of `capacity`, with `seals`, whose header is
/// all zeroes.
pub(super) fn blank_memfd(len: u64, seals: SealFlags) -> OwnedFd {
    let fd = create_memfd("hostile", len).unwrap();
    if !seals.is_empty() {
        seal(fd.as_fd(), seals).unwrap();
    }
    fd
}

#[tokio::test]
async fn hostile_setups_are_refused_and_the_listener_keeps_accepting() {
    let mut server = Server::start().await;
    let cap = 4096;
    let good = Parts::new(cap);
    let full = HEADER_SIZE as u64 + cap;
    let unsealed = blank_memfd(full, SealFlags::empty());
    let short = blank_memfd(HEADER_SIZE as u64 + 1024, RING_SEALS);
    let headerless = blank_memfd(full, RING_SEALS);
    let (not_eventfd, _other_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let big = Parts::new(MAX_SHM_RING * 2);

    let g = good.fds();
    let mut cases: Vec<(&str, Vec<u8>, Vec<BorrowedFd<'_>>)> = vec![
        (
            "unsealed memfd",
            preface(cap),
            vec![unsealed.as_fd(), g[1], g[2], g[3], g[4], g[5]],
        ),
        (
            "short memfd",
            preface(cap),
            vec![g[0], g[1], g[2], short.as_fd(), g[4], g[5]],
        ),
        (
            "no ring header",
            preface(cap),
            vec![headerless.as_fd(), g[1], g[2], g[3], g[4], g[5]],
        ),
        (
            "a socket for an eventfd",
            preface(cap),
            vec![g[0], not_eventfd.as_fd(), g[2], g[3], g[4], g[5]],
        ),
        ("five fds", preface(cap), g[..5].to_vec()),
        ("seven fds", preface(cap), with_pool(&g, g[0])),
        (
            "one memfd for both rings",
            preface(cap),
            vec![g[0], g[1], g[2], g[0], g[4], g[5]],
        ),
        (
            "size disagrees with the rings",
            preface(cap * 2),
            g.to_vec(),
        ),
        ("not a power of two", preface(cap + 8), g.to_vec()),
        (
            "over the limit",
            preface(MAX_SHM_RING * 2),
            big.fds().to_vec(),
        ),
        (
            "unknown version",
            [&preface(cap)[..4], b"SHM9", &preface(cap)[8..]].concat(),
            g.to_vec(),
        ),
    ];
    for (why, bytes, fds) in cases.drain(..) {
        let mut stream = raw_client(&server.path, &bytes, &fds).await;
        assert_eq!(answer(&mut stream).await, None, "{why}: not refused");
        // The listener still serves, and has handed nothing out.
        let (_conn, _client) = server.shm_pair().await;
    }
    // A preface cut short, then silence: dropped after the set-up timeout,
    // the others served meanwhile.
    let stream = UnixStream::connect(&server.path).await.unwrap();
    let mut half = stream;
    half.write_all(&preface(cap)[..10]).await.unwrap();
    let (_conn, _client) = server.shm_pair().await;
    // And the good parts, by hand, are acknowledged.
    let mut stream = raw_client(&server.path, &preface(cap), &g).await;
    assert_eq!(answer(&mut stream).await, Some(0x06));
    assert_eq!(server.next().await.peer.addr, "shm");
}

/// A well-formed set-up of 4 KiB rings sent by hand, so that the test
/// holds the rings and eventfds a hostile client would: its parts, its
/// socket and the daemon side's connection.
async fn hand_made(server: &mut Server) -> (Parts, UnixStream, Connection) {
    let cap = 4096;
    let parts = Parts::new(cap);
    let mut stream = raw_client(&server.path, &preface(cap), &parts.fds()).await;
    assert_eq!(answer(&mut stream).await, Some(0x06));
    let conn = server.next().await;
    (parts, stream, conn)
}

#[tokio::test]
async fn a_corrupted_ring_is_an_error_not_a_panic() {
    let mut server = Server::start().await;
    let (parts, _stream, mut conn) = hand_made(&mut server).await;
    // A tail far past the head (the producer line is at offset 64), then a
    // wake-up for the daemon's reader.
    let tail = 1u64 << 40;
    rustix::io::pwrite(&parts.c2d, &tail.to_ne_bytes(), 64).unwrap();
    parts.c2d_events.readable.signal().unwrap();
    let err = timeout(PROMPT, conn.reader.read(&mut [0; 16]))
        .await
        .expect("an answer in time")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("corrupted"), "{err}");
}

#[tokio::test]
async fn a_wake_up_storm_on_an_empty_ring_is_taken_at_a_bounded_rate() {
    let mut server = Server::start().await;
    let (parts, stream, mut conn) = hand_made(&mut server).await;
    // The daemon side parks on the empty ring, as a session's read would.
    let reading = tokio::spawn(async move { conn.reader.read(&mut [0; 16]).await });
    // The storm: a signal each time the reader has taken the last one, for
    // a second. A reader that took them all would take tens of thousands.
    let eventfd = parts.c2d_events.readable.try_clone().unwrap();
    let taken = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + Duration::from_secs(1);
        let mut taken = 0u32;
        while Instant::now() < until {
            let mut poll = [PollFd::new(&eventfd, PollFlags::IN)];
            let zero = Timespec::default();
            if rustix::event::poll(&mut poll, Some(&zero)).unwrap() == 0 {
                taken += 1;
                eventfd.signal().unwrap();
            } else {
                std::thread::yield_now();
            }
        }
        taken
    })
    .await
    .unwrap();
    eprintln!("the reader took {taken} empty wake-ups in 1 s");
    // One per 100 ms window beyond 1000 saved up: about 2000 in a second.
    assert!(taken < 4000, "{taken} empty wake-ups taken in 1 s");
    // It still serves the connection: the peer's hang-up ends it cleanly.
    assert!(!reading.is_finished());
    drop(stream);
    let n = timeout(PROMPT, reading)
        .await
        .expect("end in time")
        .unwrap();
    assert_eq!(n.unwrap(), 0);
}

/// An SHM2 preface: rings of `capacity` bytes, and a pool of `pool` bytes.
fn preface_with_pool(capacity: u64, pool: u64) -> Vec<u8> {
    let mut out = u32::MAX.to_be_bytes().to_vec();
    out.extend_from_slice(b"SHM2");
    out.extend_from_slice(&capacity.to_be_bytes());
    out.extend_from_slice(&pool.to_be_bytes());
    out
}

#[tokio::test]
async fn hostile_pools_are_refused_and_the_listener_keeps_accepting() {
    let mut server = Server::start().await;
    let cap = 4096;
    let mib = 1 << 20;
    let good = Parts::new(cap);
    let (_writer, pool) = busd_shm::PoolWriter::create("busd-test-pool", mib).unwrap();
    let unsealed = blank_memfd(mib, SealFlags::empty());
    let resizable = blank_memfd(mib, SealFlags::FUTURE_WRITE);
    let odd = blank_memfd(mib + 4096, SealFlags::SHRINK | SealFlags::GROW);
    let (socket, _other_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let g = good.fds();
    let cases: Vec<(&str, Vec<u8>, Vec<BorrowedFd<'_>>)> = vec![
        (
            "a pool not sealed against resizing",
            preface_with_pool(cap, mib),
            with_pool(&g, unsealed.as_fd()),
        ),
        (
            "a pool sealed against writing only",
            preface_with_pool(cap, mib),
            with_pool(&g, resizable.as_fd()),
        ),
        (
            "a pool whose size is not a power of two",
            preface_with_pool(cap, mib + 4096),
            with_pool(&g, odd.as_fd()),
        ),
        (
            "a pool the preface says is larger",
            preface_with_pool(cap, mib / 2),
            with_pool(&g, pool.as_fd()),
        ),
        (
            "a socket for a pool",
            preface_with_pool(cap, mib),
            with_pool(&g, socket.as_fd()),
        ),
        (
            "a ring for a pool",
            preface_with_pool(cap, mib),
            with_pool(&g, g[0]),
        ),
        (
            "a pool announced, none sent",
            preface_with_pool(cap, mib),
            g.to_vec(),
        ),
        (
            "a pool sent, none announced",
            preface_with_pool(cap, 0),
            with_pool(&g, pool.as_fd()),
        ),
    ];
    for (why, bytes, fds) in cases {
        let mut stream = raw_client(&server.path, &bytes, &fds).await;
        assert_eq!(answer(&mut stream).await, None, "{why}: not refused");
        // The listener still serves, and has handed nothing out.
        let (_conn, _client) = server.shm_pair().await;
    }
    // And a good pool, by hand, is taken.
    let mut stream = raw_client(
        &server.path,
        &preface_with_pool(cap, mib),
        &with_pool(&g, pool.as_fd()),
    )
    .await;
    assert_eq!(answer(&mut stream).await, Some(0x06));
    assert_eq!(server.next().await.peer.addr, "shm");
}

/// The six fds of a set-up, then `pool`'s.
fn with_pool<'a>(g: &[BorrowedFd<'a>], pool: BorrowedFd<'a>) -> Vec<BorrowedFd<'a>> {
    [g, &[pool]].concat()
}
