//! The shm transport beyond the conformance suite: peers that die or leave,
//! and plain and silent clients on the same socket (here); hostile set-ups
//! and corrupted rings (`hostile`); the rings' and segments' integrity
//! (`integrity`).

mod hostile;
mod integrity;
mod pools;
mod set_pools;

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
