//! The shm transport beyond the conformance suite: peers that die or leave,
//! hostile set-ups refused without harm to the listener, plain and silent
//! clients on the same socket, and a corrupted ring reported as an error.

use std::io::{ErrorKind, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busd_shm::{Events, HEADER_SIZE, RING_SEALS, Ring, SealFlags, create_memfd, seal};
use busd_transport::{Connection, Endpoint, Listener, MAX_SHM_RING, UnixListener, connect};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Set in the child process of [`a_killed_client_is_seen_at_once`].
const CHILD_ENV: &str = "BUSD_SHM_TEST_CHILD_SOCKET";
/// "Promptly", generously for a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

/// A unix listener accepting in a task, handing connections out in order.
struct Server {
    conns: mpsc::UnboundedReceiver<Connection>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busd.sock");
        let mut listener = UnixListener::bind(&path).await.unwrap();
        let (tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                if tx.send(conn).is_err() {
                    break;
                }
            }
        });
        Self {
            conns,
            path,
            _dir: dir,
        }
    }

    fn shm(&self) -> Endpoint {
        Endpoint::Shm(self.path.clone())
    }

    async fn next(&mut self) -> Connection {
        timeout(PROMPT, self.conns.recv())
            .await
            .expect("a connection in time")
            .expect("listener alive")
    }

    /// An shm client and its daemon side, with one message through each way.
    async fn shm_pair(&mut self) -> (Connection, Connection) {
        let mut client = connect(&self.shm()).await.unwrap();
        client.writer.write_all(b"ping").await.unwrap();
        let mut server = self.next().await;
        assert_eq!(server.peer.addr, "shm");
        let mut buf = [0; 4];
        server.reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.writer.write_all(b"pong").await.unwrap();
        client.reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        (server, client)
    }
}

/// Reads until end of stream, which must come within [`PROMPT`].
async fn expect_eof(conn: &mut Connection) {
    let mut rest = Vec::new();
    let started = Instant::now();
    timeout(PROMPT, conn.reader.read_to_end(&mut rest))
        .await
        .expect("end of stream in time")
        .expect("a clean end of stream");
    assert!(rest.is_empty(), "{rest:?}");
    eprintln!("end of stream after {:?}", started.elapsed());
}

// ---------------------------------------------------------------- peers leaving

/// Not a test of its own: the child process of
/// [`a_killed_client_is_seen_at_once`] (a no-op when run normally).
#[test]
fn shm_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = connect(&Endpoint::Shm(PathBuf::from(path))).await.unwrap();
        conn.writer.write_all(b"alive").await.unwrap();
        std::future::pending::<()>().await;
    });
}

#[tokio::test]
async fn a_killed_client_is_seen_at_once() {
    let mut server = Server::start().await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shm_child_process", "--nocapture"])
        .env(CHILD_ENV, &server.path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut conn = server.next().await;
    let mut buf = [0; 5];
    conn.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"alive");
    assert_eq!(conn.peer.pid, Some(child.id()));
    // A reader parked on the empty ring, then SIGKILL.
    let reader = tokio::spawn(async move {
        expect_eof(&mut conn).await;
        conn
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut conn = reader.await.unwrap();
    // Writing to the dead peer: accepted while the ring has room (as a socket
    // buffer would), then a broken pipe instead of waiting forever.
    let chunk = vec![7u8; 64 << 10];
    let err = timeout(PROMPT, async {
        loop {
            if let Err(err) = conn.writer.write_all(&chunk).await {
                return err;
            }
        }
    })
    .await
    .expect("the writer gives up in time");
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
}

#[tokio::test]
async fn a_dropped_client_is_seen_at_once() {
    let mut server = Server::start().await;
    let (mut conn, client) = server.shm_pair().await;
    drop(client);
    expect_eof(&mut conn).await;
}

#[tokio::test]
async fn data_sent_before_leaving_is_still_read() {
    let mut server = Server::start().await;
    let (mut conn, mut client) = server.shm_pair().await;
    let sent: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let write = async {
        client.writer.write_all(&sent).await.unwrap();
        // No shutdown: the connection is dropped with data still in the ring.
        drop(client);
    };
    let mut got = Vec::new();
    let read = conn.reader.read_to_end(&mut got);
    let (_, read) = tokio::join!(write, read);
    read.unwrap();
    assert_eq!(got, sent);
}

#[tokio::test]
async fn the_daemon_side_leaving_ends_the_client_stream() {
    let mut server = Server::start().await;
    let (conn, mut client) = server.shm_pair().await;
    drop(conn);
    expect_eof(&mut client).await;
}

// ------------------------------------------------------ one socket, many clients

#[tokio::test]
async fn plain_unix_and_shm_clients_share_the_socket() {
    let mut server = Server::start().await;
    let mut plain = connect(&Endpoint::Unix(server.path.clone())).await.unwrap();
    plain.writer.write_all(b"plain").await.unwrap();
    let mut plain_side = server.next().await;
    assert_eq!(plain_side.peer.addr, "unix");
    let (mut shm_side, mut shm) = server.shm_pair().await;
    let mut buf = [0; 5];
    plain_side.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"plain");
    plain_side.writer.write_all(b"back!").await.unwrap();
    plain.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"back!");
    shm.writer.write_all(b"still").await.unwrap();
    shm_side.reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still");
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_the_others() {
    let mut server = Server::start().await;
    let _silent = UnixStream::connect(&server.path).await.unwrap();
    let started = Instant::now();
    let (_conn, _client) = server.shm_pair().await;
    let mut plain = connect(&Endpoint::Unix(server.path.clone())).await.unwrap();
    plain.writer.write_all(b"hello").await.unwrap();
    let plain_side = server.next().await;
    assert_eq!(plain_side.peer.addr, "unix");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    // The silent one comes out last, as a plain connection (its handshake
    // timeout is the daemon's business).
    let silent_side = server.next().await;
    assert_eq!(silent_side.peer.addr, "unix");
}

// ------------------------------------------------------------- hostile set-ups

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
fn blank_memfd(len: u64, seals: SealFlags) -> OwnedFd {
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
        ("seven fds", preface(cap), [&g[..], &[g[0]]].concat()),
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

#[tokio::test]
async fn a_corrupted_ring_is_an_error_not_a_panic() {
    let mut server = Server::start().await;
    let cap = 4096;
    let parts = Parts::new(cap);
    let mut stream = raw_client(&server.path, &preface(cap), &parts.fds()).await;
    assert_eq!(answer(&mut stream).await, Some(0x06));
    let mut conn = server.next().await;
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

// ------------------------------------------------------------------ integrity

#[tokio::test]
async fn a_small_ring_carries_every_byte_in_order() {
    let mut server = Server::start().await;
    // A 4 KiB ring: writes wrap, pad and wait for room all the time.
    let mut client = busd_transport::connect_shm(&server.path, busd_transport::MIN_SHM_RING)
        .await
        .unwrap();
    client.writer.write_all(b"ping").await.unwrap();
    let mut conn = server.next().await;
    let mut buf = [0; 4];
    conn.reader.read_exact(&mut buf).await.unwrap();
    let sent: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        let mut rest = &sent[..];
        let mut i = 0usize;
        while !rest.is_empty() {
            // Sizes from 1 byte to past the ring's quarter, alternating plain
            // and vectored writes.
            let n = (1 + (i * 7919) % 3000).min(rest.len());
            let (a, b) = rest[..n].split_at(n / 3);
            let wrote = if i % 2 == 0 {
                client.writer.write(&rest[..n]).await.unwrap()
            } else {
                client
                    .writer
                    .write_vectored(&[IoSlice::new(a), IoSlice::new(&[]), IoSlice::new(b)])
                    .await
                    .unwrap()
            };
            assert!(wrote > 0);
            rest = &rest[wrote..];
            i += 1;
        }
        client.writer.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::new();
    // Small reads too: messages are served across several of them.
    let mut small = [0u8; 777];
    loop {
        let n = conn.reader.read(&mut small).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&small[..n]);
    }
    let _client = writer.await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "bytes differ");
}

/// How many mappings of sealed payload memfds this process holds.
fn payload_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:busd-payload"))
        .count()
}

#[tokio::test]
async fn an_unmapping_decoder_checks_segments_and_maps_only_on_demand() {
    use busd_proto::{Body, Op, Subject, encode_head_with};
    use busd_transport::{Mapping, frame_codec, map_segment, seal_payload};
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    let mut server = Server::start().await;
    let (daemon, client) = server.shm_pair().await;
    let (_, client_fds) = frame_codec(client.fds, 1 << 20, Mapping::Mapped);
    let client_fds = client_fds.expect("an shm connection passes fds");
    let (codec, _) = frame_codec(daemon.fds, 1 << 20, Mapping::Unmapped);
    let mut frames = FramedRead::new(daemon.reader, codec);
    let mut writer = client.writer;
    let op = Op::Pub {
        subject: Subject::from_static("big.data"),
        headers: None,
    };
    let mut head = bytes::BytesMut::new();
    encode_head_with(&op, Body::Segment(300_000), &mut head).unwrap();
    // Both segments announced as 300,000 bytes: the fd, then the frame.
    let mut send = async |fd: BorrowedFd<'_>| {
        client_fds.send(fd).await.unwrap();
        writer.write_all(&head).await.unwrap();
        timeout(PROMPT, frames.next()).await.unwrap().unwrap()
    };

    let payload: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
    let segment = seal_payload(&payload).unwrap();
    let frame = send(segment.as_fd()).await.unwrap();
    assert_eq!(frame.op, op);
    assert!(frame.payload.is_empty(), "not mapped by the decoder");
    let received = frame.segment.expect("the segment");
    assert_eq!(received.len(), 300_000);
    assert_eq!(payload_mappings(), 0, "nothing mapped yet");
    let bytes = map_segment(&received).unwrap();
    assert_eq!(&bytes[..], &payload[..]);
    assert_eq!(payload_mappings(), 1);
    drop(bytes);
    assert_eq!(payload_mappings(), 0, "unmapped with its last view");

    // Checked all the same: an unsealed memfd is refused.
    let unsealed = blank_memfd(300_000, SealFlags::empty());
    let err = send(unsealed.as_fd()).await.unwrap_err();
    assert!(err.to_string().contains("segment refused"), "{err}");
}
