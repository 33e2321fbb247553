//! Fds attached to frames, over unix and shm: they arrive with the frame
//! that announced them, in order, and any other fd is refused.

use std::io::{IoSlice, Read, Seek, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use busd_proto::{ErrorCode, Fds, Frame, Op, Subject};
use busd_transport::{
    BoxReader, Connection, Endpoint, FdSender, FrameReader, Listener, Mapping, UnixListener,
    connect, frame_codec,
};
use bytes::{Bytes, BytesMut};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

const PROMPT: Duration = Duration::from_secs(5);

/// A listener and one client connected to it over `shm` or unix.
async fn pair(shm: bool) -> (Connection, Connection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busd.sock");
    let mut listener = UnixListener::bind(&path).await.unwrap();
    let endpoint = if shm {
        Endpoint::Shm(path)
    } else {
        Endpoint::Unix(path)
    };
    let client = async {
        let mut client = connect(&endpoint).await.unwrap();
        // The listener hands a unix connection out once its first bytes
        // came (an shm one once its rings are set up).
        if !shm {
            send(&mut client.writer, None, &Frame::new(Op::Ping)).await;
        }
        client
    };
    let (client, server) = tokio::join!(client, timeout(PROMPT, listener.accept()));
    (client, server.unwrap().unwrap(), dir)
}

/// Writes `frame`, its fds passed by `fds`.
async fn send(writer: &mut busd_transport::BoxWriter, fds: Option<&FdSender>, frame: &Frame) {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).unwrap();
    let mut sent = 0;
    if !frame.fds.is_empty() {
        let fds = fds.expect("a connection that passes fds");
        sent = fds
            .send_attached(&frame.fds.borrowed(), &buf)
            .await
            .unwrap();
    }
    writer.write_all(&buf[sent..]).await.unwrap();
}

/// A temporary file holding `text`, opened read-only.
fn file(text: &str) -> OwnedFd {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f));
    std::fs::File::open(path).unwrap().into()
}

fn read_all(fd: OwnedFd) -> String {
    let mut f = std::fs::File::from(fd);
    f.rewind().unwrap();
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    text
}

fn publish(payload: &'static [u8], fds: Vec<OwnedFd>) -> Frame {
    let op = Op::Pub {
        subject: Subject::from_static("files.new"),
        headers: None,
    };
    let mut frame = Frame::with_payload(op, Bytes::from_static(payload));
    frame.fds = Fds::new(fds);
    frame
}

async fn next(frames: &mut FrameReader<BoxReader>) -> Result<Frame, busd_proto::CodecError> {
    timeout(PROMPT, frames.next()).await.unwrap().unwrap()
}

#[tokio::test]
async fn fds_arrive_with_the_frame_that_announced_them_over_unix_and_shm() {
    for shm in [false, true] {
        let (mut client, server, _dir) = pair(shm).await;
        let (_, sender) = frame_codec(client.fds.take(), 1 << 20, Mapping::Mapped);
        let (codec, receiving) = frame_codec(server.fds, 1 << 20, Mapping::Unmapped);
        receiving.expect("unix and shm pass fds").accept();
        let mut frames = FrameReader::new(server.reader, codec);
        if !shm {
            assert_eq!(next(&mut frames).await.unwrap().op, Op::Ping);
        }
        let sent = [
            publish(b"one", vec![file("first")]),
            publish(b"none", vec![]),
            publish(b"two", vec![file("second"), file("third")]),
        ];
        for frame in &sent {
            send(&mut client.writer, sender.as_ref(), frame).await;
        }
        let mut texts = Vec::new();
        for frame in &sent {
            let got = next(&mut frames).await.unwrap();
            assert_eq!(got.payload, frame.payload, "shm: {shm}");
            texts.push(
                got.fds
                    .into_owned()
                    .unwrap()
                    .into_iter()
                    .map(read_all)
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            texts,
            [vec!["first"], vec![], vec!["second", "third"]],
            "shm: {shm}"
        );
    }
}

/// Sends `bytes` with `fds` attached, as a hostile peer would.
fn send_raw(socket: &impl AsFd, bytes: &[u8], fds: &[OwnedFd]) {
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    let sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
}

fn encoded(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).unwrap();
    buf
}

/// Bytes a hostile peer writes, with this many fds attached.
type Write<'a> = (&'a [u8], usize);

#[tokio::test]
async fn fds_no_frame_announced_or_other_counts_are_refused_on_unix() {
    let ping = encoded(&Frame::new(Op::Ping));
    let plain = encoded(&publish(b"plain", vec![]));
    let one = encoded(&publish(b"one", vec![file("x")]));
    // Whether the connection accepts fds, and what comes.
    let cases: [(&str, bool, Vec<Write<'_>>); 5] = [
        (
            "an fd with a frame announcing none",
            true,
            vec![(&plain, 1)],
        ),
        ("a frame announcing one, with none", true, vec![(&one, 0)]),
        ("a frame announcing one, with two", true, vec![(&one, 2)]),
        (
            "an fd in the middle of a frame",
            true,
            vec![(&plain[..5], 0), (&plain[5..], 1)],
        ),
        (
            "a frame announcing one, with one, to a connection not accepting fds",
            false,
            vec![(&one, 1)],
        ),
    ];
    for (what, accepting, writes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busd.sock");
        let mut listener = UnixListener::bind(&path).await.unwrap();
        let raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
        send_raw(&raw, &ping, &[]);
        let server = timeout(PROMPT, listener.accept()).await.unwrap().unwrap();
        let (codec, receiving) = frame_codec(server.fds, 1 << 20, Mapping::Unmapped);
        if accepting {
            receiving.expect("unix passes fds").accept();
        }
        let mut frames = FrameReader::new(server.reader, codec);
        assert_eq!(next(&mut frames).await.unwrap().op, Op::Ping);
        for (bytes, fds) in writes {
            let fds: Vec<_> = (0..fds).map(|_| file("stray")).collect();
            if fds.is_empty() {
                (&raw).write_all(bytes).unwrap();
            } else {
                send_raw(&raw, bytes, &fds);
            }
        }
        let err = next(&mut frames).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ProtocolViolation, "{what}: {err}");
    }
}
