//! Behaviour every transport must share, written once and run against each
//! listener (tcp, unix, and shm over the unix listener): bytes flow both ways
//! through independent halves, vectored writes arrive intact, end of stream
//! is seen, and the peer is identified.

use std::io::IoSlice;

use busd_transport::{Connection, Endpoint, Listener, TcpListener, UnixListener, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What every client says first, as busd clients do (their `Hello`): the
/// unix listener hands a connection out once its first bytes arrived.
const GREETING: &[u8] = b"hi";

/// A connected pair: (daemon side, client side), the greeting already
/// through. `shm` connects with `shm://` to the (unix) listener's socket.
async fn pair_over(listener: &mut impl Listener, shm: bool) -> (Connection, Connection) {
    let endpoint = match listener.endpoint() {
        Endpoint::Unix(path) if shm => Endpoint::Shm(path),
        other => other,
    };
    let client = async {
        let mut client = connect(&endpoint).await.unwrap();
        client.writer.write_all(GREETING).await.unwrap();
        client
    };
    let (client, server) = tokio::join!(client, listener.accept());
    let mut server = server.unwrap();
    let mut greeting = [0; GREETING.len()];
    server.reader.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, GREETING);
    (server, client)
}

async fn pair(listener: &mut impl Listener) -> (Connection, Connection) {
    pair_over(listener, false).await
}

async fn tcp() -> TcpListener {
    TcpListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn unix(dir: &tempfile::TempDir) -> UnixListener {
    UnixListener::bind(&dir.path().join("busd.sock"))
        .await
        .unwrap()
}

/// Echo both ways, with reads and writes on different tasks.
async fn echo_both_ways(listener: &mut impl Listener, shm: bool) {
    let (server, client) = pair_over(listener, shm).await;
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
async fn vectored_write(listener: &mut impl Listener, shm: bool) {
    let (mut server, mut client) = pair_over(listener, shm).await;
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
async fn half_close(listener: &mut impl Listener, shm: bool) {
    let (mut server, mut client) = pair_over(listener, shm).await;
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

#[tokio::test]
async fn tcp_echo_both_ways() {
    echo_both_ways(&mut tcp().await, false).await;
}

#[tokio::test]
async fn unix_echo_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    echo_both_ways(&mut unix(&dir).await, false).await;
}

#[tokio::test]
async fn shm_echo_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    echo_both_ways(&mut unix(&dir).await, true).await;
}

#[tokio::test]
async fn tcp_vectored_write() {
    vectored_write(&mut tcp().await, false).await;
}

#[tokio::test]
async fn unix_vectored_write() {
    let dir = tempfile::tempdir().unwrap();
    vectored_write(&mut unix(&dir).await, false).await;
}

#[tokio::test]
async fn shm_vectored_write() {
    let dir = tempfile::tempdir().unwrap();
    vectored_write(&mut unix(&dir).await, true).await;
}

#[tokio::test]
async fn tcp_half_close() {
    half_close(&mut tcp().await, false).await;
}

#[tokio::test]
async fn unix_half_close() {
    let dir = tempfile::tempdir().unwrap();
    half_close(&mut unix(&dir).await, false).await;
}

#[tokio::test]
async fn shm_half_close() {
    let dir = tempfile::tempdir().unwrap();
    half_close(&mut unix(&dir).await, true).await;
}

#[tokio::test]
async fn tcp_daemon_knows_the_clients_uid() {
    let uid = rustix::process::getuid().as_raw();
    let mut listener = tcp().await;
    let (server, client) = pair(&mut listener).await;
    assert_eq!(server.peer.uid, Some(uid), "{:?}", server.peer);
    // The client does not look the daemon's uid up.
    assert_eq!(client.peer.uid, None, "{:?}", client.peer);
    assert_eq!(server.peer.pid, None);
    assert!(
        server.peer.addr.starts_with("127.0.0.1:"),
        "{}",
        server.peer.addr
    );
    assert_eq!(
        client.peer.addr,
        listener.endpoint().to_string().trim_start_matches("tcp://")
    );
}

#[tokio::test]
async fn unix_peers_know_each_others_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut listener = unix(&dir).await;
    let (server, client) = pair(&mut listener).await;
    for peer in [&server.peer, &client.peer] {
        assert_eq!(peer.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(peer.gid, Some(rustix::process::getgid().as_raw()));
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.addr, "unix");
    }
    // The accepting side pins the peer's executable.
    assert_eq!(server.peer.exe, Some(std::env::current_exe().unwrap()));
    assert_eq!(client.peer.exe, None);
}

#[tokio::test]
async fn shm_peers_know_each_others_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut listener = unix(&dir).await;
    let (server, client) = pair_over(&mut listener, true).await;
    for peer in [&server.peer, &client.peer] {
        assert_eq!(peer.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(peer.gid, Some(rustix::process::getgid().as_raw()));
        assert_eq!(peer.pid, Some(std::process::id()));
        assert_eq!(peer.addr, "shm");
    }
    assert_eq!(server.peer.exe, Some(std::env::current_exe().unwrap()));
    assert_eq!(client.peer.exe, None);
}
