//! Behaviour every transport must share, written once and run against each
//! listener (tcp, unix, and shm over the unix listener, with payload pools
//! and without): bytes flow both ways through independent halves, vectored
//! writes arrive intact, end of stream is seen, the peer is identified, and
//! large payloads arrive whole (over shm with pools, through the pool).
//!
//! Each transport is a [`Fixture`] and one `conformance!` line at the end,
//! which makes a module of every test for it (`tcp::echo_both_ways`, …).

use std::io::IoSlice;
use std::time::Duration;

use busd_proto::{Body, Op, Subject, encode_head_with};
use busd_transport::{
    Connection, Endpoint, FrameReader, Listener, Mapping, PeerInfo, TcpListener, UnixListener,
    connect, frame_codec,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What every client says first, as busd clients do (their `Hello`): the
/// unix listener hands a connection out once its first bytes arrived.
const GREETING: &[u8] = b"hi";

/// A bound listener of one transport (port 0 or a fresh temp path), and what
/// its clients connect to and learn.
trait Fixture: Sized {
    /// The daemon side.
    type Listener: Listener;

    /// Binds a listener no other test shares.
    async fn bind() -> Self;

    fn listener(&mut self) -> &mut Self::Listener;

    /// Where this transport's clients connect.
    fn endpoint(&self) -> Endpoint;

    /// Asserts what each side of a connection knows of the other: each
    /// transport learns different things, so each says what it must.
    fn check_peers(&self, server: &PeerInfo, client: &PeerInfo);
}

/// Loopback TCP on port 0.
struct TcpFixture {
    listener: TcpListener,
}

impl Fixture for TcpFixture {
    type Listener = TcpListener;

    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self { listener }
    }

    fn listener(&mut self) -> &mut TcpListener {
        &mut self.listener
    }

    fn endpoint(&self) -> Endpoint {
        self.listener.endpoint()
    }

    /// The daemon knows the client's uid; the client does not look the
    /// daemon's up.
    fn check_peers(&self, server: &PeerInfo, client: &PeerInfo) {
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(server.uid, Some(uid), "{server:?}");
        assert_eq!(client.uid, None, "{client:?}");
        assert_eq!(server.pid, None);
        assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
        assert_eq!(
            client.addr,
            self.endpoint().to_string().trim_start_matches("tcp://")
        );
    }
}

/// A unix listener in a temp dir, removed after the listener.
struct UnixFixture {
    listener: UnixListener,
    _dir: tempfile::TempDir,
}

impl Fixture for UnixFixture {
    type Listener = UnixListener;

    async fn bind() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(&dir.path().join("busd.sock"))
            .await
            .unwrap();
        Self {
            listener,
            _dir: dir,
        }
    }

    fn listener(&mut self) -> &mut UnixListener {
        &mut self.listener
    }

    fn endpoint(&self) -> Endpoint {
        self.listener.endpoint()
    }

    fn check_peers(&self, server: &PeerInfo, client: &PeerInfo) {
        check_socket_peers(server, client, "unix");
    }
}

/// shm clients (`shm://`) of a unix listener.
struct ShmFixture(UnixFixture);

impl Fixture for ShmFixture {
    type Listener = UnixListener;

    async fn bind() -> Self {
        Self(UnixFixture::bind().await)
    }

    fn listener(&mut self) -> &mut UnixListener {
        self.0.listener()
    }

    fn endpoint(&self) -> Endpoint {
        match self.0.endpoint() {
            Endpoint::Unix(path) => Endpoint::Shm(path),
            other => panic!("a unix listener at {other}"),
        }
    }

    fn check_peers(&self, server: &PeerInfo, client: &PeerInfo) {
        check_socket_peers(server, client, "shm");
    }
}

/// shm clients of a unix listener with payload pools off: large payloads
/// go through the rings (or as segments).
struct ShmWithoutPoolsFixture(ShmFixture);

impl Fixture for ShmWithoutPoolsFixture {
    type Listener = UnixListener;

    async fn bind() -> Self {
        let mut shm = ShmFixture::bind().await;
        shm.listener().set_shm_pool(0).unwrap();
        Self(shm)
    }

    fn listener(&mut self) -> &mut UnixListener {
        self.0.listener()
    }

    fn endpoint(&self) -> Endpoint {
        self.0.endpoint()
    }

    fn check_peers(&self, server: &PeerInfo, client: &PeerInfo) {
        self.0.check_peers(server, client);
    }
}

/// Over a unix socket (plain or beside shm rings) both sides know each
/// other's credentials, and the accepting side pins the peer's executable.
fn check_socket_peers(server: &PeerInfo, client: &PeerInfo, addr: &str) {
    for peer in [server, client] {
        assert_eq!(peer.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(peer.gid, Some(rustix::process::getgid().as_raw()));
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.addr, addr);
    }
    assert_eq!(server.exe, Some(std::env::current_exe().unwrap()));
    assert_eq!(client.exe, None);
}

/// A connected pair: (daemon side, client side), the greeting already
/// through. Tests keep `fixture` (the listener) alive meanwhile, as a
/// daemon would.
async fn pair(fixture: &mut impl Fixture) -> (Connection, Connection) {
    let endpoint = fixture.endpoint();
    let client = async {
        let mut client = connect(&endpoint).await.unwrap();
        client.writer.write_all(GREETING).await.unwrap();
        client
    };
    let (client, server) = tokio::join!(client, fixture.listener().accept());
    let mut server = server.unwrap();
    let mut greeting = [0; GREETING.len()];
    server.reader.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, GREETING);
    (server, client)
}

/// Echo both ways, with reads and writes on different tasks.
async fn echo_both_ways<F: Fixture>() {
    let mut fixture = F::bind().await;
    let (server, client) = pair(&mut fixture).await;
    let Connection {
        reader: mut server_rx,
        writer: mut server_tx,
        ..
    } = server;
    // The daemon echoes from one task into the other half.
    let echo = tokio::spawn(async move {
        tokio::io::copy(&mut server_rx, &mut server_tx)
            .await
            .unwrap();
        server_tx.shutdown().await.unwrap();
    });
    let Connection {
        reader: mut client_rx,
        writer: mut client_tx,
        ..
    } = client;
    let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        client_tx.write_all(&sent).await.unwrap();
        client_tx.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    client_rx.read_to_end(&mut received).await.unwrap();
    writer.await.unwrap();
    echo.await.unwrap();
    assert_eq!(received, expected);
}

/// Writes many buffers with `write_vectored` through the boxed writer.
async fn vectored_write<F: Fixture>() {
    let mut fixture = F::bind().await;
    let (mut server, mut client) = pair(&mut fixture).await;
    assert!(client.writer.is_write_vectored());
    assert!(server.writer.is_write_vectored());

    let chunks: Vec<Vec<u8>> = (0..300u32)
        .map(|i| vec![(i % 256) as u8; 1 + (i as usize * 37) % 4000])
        .collect();
    let expected = chunks.concat();
    let reader = tokio::spawn(async move {
        let mut received = Vec::new();
        server.reader.read_to_end(&mut received).await.unwrap();
        received
    });
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = client.writer.write_vectored(slices).await.unwrap();
        assert!(n > 0);
        IoSlice::advance_slices(&mut slices, n);
    }
    client.writer.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), expected);
}

/// Both directions end independently: the daemon side still writes after
/// the client shut down its half, and each side reads end of stream once.
async fn half_close<F: Fixture>() {
    let mut fixture = F::bind().await;
    let (mut server, mut client) = pair(&mut fixture).await;
    client.writer.write_all(b"last words").await.unwrap();
    client.writer.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");
    // Again: still the end.
    assert_eq!(server.reader.read(&mut [0; 8]).await.unwrap(), 0);
    server.writer.write_all(b"reply").await.unwrap();
    drop(server.writer);
    let mut got = Vec::new();
    client.reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"reply");
}

/// Each side knows what its transport can tell of the other
/// ([`Fixture::check_peers`]).
async fn peers_are_identified<F: Fixture>() {
    let mut fixture = F::bind().await;
    let (server, client) = pair(&mut fixture).await;
    fixture.check_peers(&server.peer, &client.peer);
}

/// Frames with payloads from 16 KiB to 1 MiB arrive whole and in order:
/// through the client's payload pool where the connection has one (every
/// block handed back once the frame is dropped), else in the stream.
async fn large_payloads_arrive_whole<F: Fixture>() {
    const MAX_FRAME: u32 = 2 << 20;
    let mut fixture = F::bind().await;
    let (server, client) = pair(&mut fixture).await;
    let (codec, server_fds) = frame_codec(server.fds, MAX_FRAME, Mapping::Unmapped);
    let mut frames = FrameReader::new(server.reader, codec);
    let (_, client_fds) = frame_codec(client.fds, MAX_FRAME, Mapping::Mapped);
    let pool = client_fds.as_ref().and_then(|fds| fds.pool()).cloned();
    let payloads: Vec<Vec<u8>> = (0..24u32)
        .map(|i| {
            let len = (16 << 10) + (i as usize * 45_007) % (1 << 20);
            (0..len).map(|b| (b as u32 ^ i) as u8).collect()
        })
        .collect();
    let op = Op::Pub {
        subject: Subject::from_static("big"),
        headers: None,
    };
    // Written on a task of its own: a socket's buffer holds less than the
    // payloads, so the reader below reads meanwhile.
    let writing = {
        let (pool, payloads, op, mut writer) =
            (pool.clone(), payloads.clone(), op.clone(), client.writer);
        tokio::spawn(async move {
            let mut pooled = 0;
            for payload in &payloads {
                let body = match &pool {
                    Some(pool) => pool.lend_waiting(payload, Duration::from_secs(10)).await,
                    None => None,
                };
                pooled += usize::from(body.is_some());
                let mut head = BytesMut::new();
                encode_head_with(&op, body.unwrap_or(Body::Inline(payload.len())), &mut head)
                    .unwrap();
                writer.write_all(&head).await.unwrap();
                if body.is_none() {
                    writer.write_all(payload).await.unwrap();
                }
                writer.flush().await.unwrap();
            }
            pooled
        })
    };
    for payload in &payloads {
        let frame = frames.next().await.expect("open").expect("a valid frame");
        assert_eq!(frame.op, op);
        let got = frame
            .lease
            .as_ref()
            .map_or(frame.payload.to_vec(), |l| l.to_vec());
        assert!(got == *payload, "{} bytes, whole", payload.len());
        drop(frame);
        // What the daemon side read from the pool goes back to the client.
        if let (Some(pool), Some(fds)) = (&pool, &server_fds) {
            let releases = fds.releases().expect("shm hands blocks back");
            pool.handed_back(&releases.take()).expect("blocks it lent");
        }
    }
    let pooled = writing.await.unwrap();
    let expected = if pool.is_some() { payloads.len() } else { 0 };
    assert_eq!(
        pooled, expected,
        "through the pool exactly when there is one"
    );
    if let Some(pool) = pool {
        assert_eq!(pool.in_use(), 0, "every block back");
    }
}

/// Every conformance test, run against one transport: `conformance!(name,
/// Fixture)` makes a module `name` holding one `#[tokio::test]` per test.
macro_rules! conformance {
    ($transport:ident, $fixture:ty) => {
        mod $transport {
            use super::*;

            #[tokio::test]
            async fn echo_both_ways() {
                super::echo_both_ways::<$fixture>().await;
            }

            #[tokio::test]
            async fn vectored_write() {
                super::vectored_write::<$fixture>().await;
            }

            #[tokio::test]
            async fn half_close() {
                super::half_close::<$fixture>().await;
            }

            #[tokio::test]
            async fn peers_are_identified() {
                super::peers_are_identified::<$fixture>().await;
            }

            #[tokio::test]
            async fn large_payloads_arrive_whole() {
                super::large_payloads_arrive_whole::<$fixture>().await;
            }
        }
    };
}

conformance!(tcp, TcpFixture);
conformance!(unix, UnixFixture);
conformance!(shm, ShmFixture);
conformance!(shm_without_pools, ShmWithoutPoolsFixture);
