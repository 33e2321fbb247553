//! Payload pools set up with the rings: a pooled frame each way, its block
//! handed back once the receiver drops it, and what a peer says about
//! blocks checked.

use busd_proto::{Body, Frame, Op, Subject, encode_head_with};
use busd_transport::{
    ConnectOptions, Connection, FdSender, FrameReader, Mapping, UnixListener, connect_with,
    frame_codec,
};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::{PROMPT, Server, timeout};

pub(super) fn pub_op() -> Op {
    Op::Pub {
        subject: Subject::from_static("big.data"),
        headers: None,
    }
}

/// Both ends of an shm connection with pools, split into a writer, a
/// frame reader (the daemon's unmapped, the client's mapped) and the fd
/// sender holding each side's pool.
pub(super) struct End {
    pub(super) writer: busd_transport::BoxWriter,
    pub(super) frames: FrameReader<busd_transport::BoxReader>,
    pub(super) fds: FdSender,
}

fn end(conn: Connection, mapping: Mapping) -> End {
    let (codec, fds) = frame_codec(conn.fds, 8 << 20, mapping);
    End {
        writer: conn.writer,
        frames: FrameReader::new(conn.reader, codec),
        fds: fds.expect("shm passes fds"),
    }
}

pub(super) async fn pair(server: &mut Server) -> (End, End) {
    let client = connect_with(&server.shm(), &ConnectOptions::default())
        .await
        .unwrap();
    let daemon = server.next().await;
    (end(daemon, Mapping::Unmapped), end(client, Mapping::Mapped))
}

/// Sends `payload` from `from`'s pool as a pooled `Pub`.
async fn send_pooled(from: &mut End, payload: &[u8]) -> u64 {
    let pool = from.fds.pool().expect("a pool of its own");
    let body = pool.lend(payload).expect("room in the pool");
    let Body::Pooled { offset, .. } = body else {
        unreachable!("lend gives pooled bodies")
    };
    let mut head = BytesMut::new();
    encode_head_with(&pub_op(), body, &mut head).unwrap();
    from.writer.write_all(&head).await.unwrap();
    from.writer.flush().await.unwrap();
    offset
}

pub(super) async fn next(end: &mut End) -> Frame {
    timeout(PROMPT, end.frames.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("a valid frame")
}

#[tokio::test]
async fn a_pooled_payload_goes_each_way_and_its_block_comes_back() {
    let mut server = Server::start().await;
    let (mut daemon, mut client) = pair(&mut server).await;
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();

    // Client to daemon: the daemon gets a lease and copies from it.
    let offset = send_pooled(&mut client, &big).await;
    let frame = next(&mut daemon).await;
    assert_eq!(frame.op, pub_op());
    let lease = frame.lease.clone().expect("a lease");
    assert_eq!(lease.to_vec(), big);
    drop((frame, lease));
    let releases = daemon.fds.releases().expect("shm");
    assert_eq!(releases.take(), [offset], "the daemon hands the block back");
    let client_pool = client.fds.pool().unwrap();
    assert_eq!(client_pool.in_use(), 1 << 20);
    client_pool.handed_back(&[offset]).unwrap();
    assert_eq!(client_pool.in_use(), 0);

    // Daemon to client: the client reads the payload in place.
    let offset = send_pooled(&mut daemon, &big[..300_000]).await;
    let frame = next(&mut client).await;
    assert!(frame.lease.is_none());
    assert_eq!(frame.payload, big[..300_000]);
    let releases = client.fds.releases().unwrap();
    assert!(releases.take().is_empty(), "still held");
    drop(frame);
    assert_eq!(releases.take(), [offset]);
    let daemon_pool = daemon.fds.pool().unwrap();
    assert!(
        daemon_pool.handed_back(&[offset + 4096]).is_err(),
        "not lent"
    );
    daemon_pool.handed_back(&[offset]).unwrap();
    assert!(
        daemon_pool.handed_back(&[offset]).is_err(),
        "handed back twice"
    );
}

#[tokio::test]
async fn a_pooled_frame_outside_the_pool_is_refused() {
    let mut server = Server::start().await;
    let (mut daemon, mut client) = pair(&mut server).await;
    let pool_size = client.fds.pool().unwrap().size();
    let mut head = BytesMut::new();
    let body = Body::Pooled {
        offset: pool_size - 10,
        len: 20,
    };
    encode_head_with(&pub_op(), body, &mut head).unwrap();
    client.writer.write_all(&head).await.unwrap();
    client.writer.flush().await.unwrap();
    let got = timeout(PROMPT, daemon.frames.next()).await.unwrap();
    let err = got.expect("an answer").unwrap_err();
    assert!(err.to_string().contains("pool"), "{err}");
}

#[tokio::test]
async fn a_pool_over_the_daemons_limit_is_not_taken_and_none_means_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let mut listener = UnixListener::bind(&path).await.unwrap();
    listener.set_shm_pool(1 << 20).unwrap();
    assert!(listener.set_shm_pool(3 << 20).is_err());
    let accepting = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok(conn) = busd_transport::Listener::accept(&mut listener).await {
            conns.push(conn);
            if conns.len() == 3 {
                return conns;
            }
        }
        conns
    });
    let endpoint = busd_transport::Endpoint::Shm(path);
    // A 2 MiB pool over a 1 MiB limit: the connection stands, without it.
    let too_big = ConnectOptions::default().shm_pool_bytes(2 << 20);
    let client = connect_with(&endpoint, &too_big).await.unwrap();
    let (_, fds) = frame_codec(client.fds, 1 << 20, Mapping::Mapped);
    assert!(fds.unwrap().pool().is_none(), "its own pool was not taken");

    // Without a pool of its own the client sends large payloads as
    // segments, as before, and still reads the daemon's pool.
    let none = ConnectOptions::default().shm_pool_bytes(0);
    let client = connect_with(&endpoint, &none).await.unwrap();
    let (_, fds) = frame_codec(client.fds, 1 << 20, Mapping::Mapped);
    let fds = fds.unwrap();
    assert!(fds.pool().is_none());
    let fitting = ConnectOptions::default().shm_pool_bytes(1 << 20);
    let client = connect_with(&endpoint, &fitting).await.unwrap();
    let (_, fds) = frame_codec(client.fds, 1 << 20, Mapping::Mapped);
    assert_eq!(fds.unwrap().pool().unwrap().size(), 1 << 20);
    let conns = timeout(PROMPT, accepting).await.unwrap().unwrap();
    assert_eq!(conns.len(), 3);
    let daemon_sides: Vec<_> = conns
        .into_iter()
        .map(|c| frame_codec(c.fds, 1 << 20, Mapping::Unmapped).1.unwrap())
        .collect();
    // The daemon's own pool, for every client that reads pooled frames.
    for side in &daemon_sides {
        assert_eq!(side.pool().unwrap().size(), 1 << 20);
    }
}
