//! A bare protocol client, for frames the SDK would never send.

use std::os::fd::BorrowedFd;

use busd_proto::{
    AuthKind, Body, ErrorCode, Frame, FrameCodec, Hello, Op, PROTOCOL_VERSION, Pfn,
    encode_head_with,
};
use busd_transport::{BoxReader, BoxWriter, Endpoint, FdSender};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

/// A connection speaking frames by hand.
pub struct RawClient {
    reader: FramedRead<BoxReader, FrameCodec>,
    writer: BoxWriter,
    /// Over unix and shm: passes fds with or beside the stream.
    fds: Option<FdSender>,
}

impl RawClient {
    /// Connects without a handshake.
    pub async fn connect(url: &str) -> Self {
        let endpoint: Endpoint = url.parse().expect("url");
        let conn = busd_transport::connect(&endpoint).await.expect("connect");
        let (codec, fds) =
            busd_transport::frame_codec(conn.fds, 64 << 20, busd_transport::Mapping::Mapped);
        Self {
            reader: FramedRead::new(conn.reader, codec),
            writer: conn.writer,
            fds,
        }
    }

    /// Connects and completes the unpackaged handshake, asking to pass
    /// fds (granted over unix and shm); returns the Welcome op.
    pub async fn connect_hello(url: &str) -> (Self, Op) {
        Self::connect_hello_with(url, true).await
    }

    /// As [`connect_hello`](Self::connect_hello), asking to pass fds only
    /// if `fds`.
    pub async fn connect_hello_with(url: &str, fds: bool) -> (Self, Op) {
        Self::connect_hello_asking(url, fds, false).await
    }

    /// As [`connect_hello_with`](Self::connect_hello_with), asking for set
    /// pools too if `set_pools` (and mapping those the daemon passes).
    pub async fn connect_hello_asking(url: &str, fds: bool, set_pools: bool) -> (Self, Op) {
        let mut c = Self::connect(url).await;
        if let Some(sender) = c.fds.as_ref().filter(|_| fds) {
            sender.accept();
        }
        if let Some(pools) = c
            .fds
            .as_ref()
            .and_then(|f| f.set_pools())
            .filter(|_| set_pools)
        {
            pools.accept();
        }
        c.send(Op::Hello(Hello {
            version: PROTOCOL_VERSION,
            pfn: None,
            name: "raw".into(),
            auth: AuthKind::None,
            fds,
            set_pools,
        }))
        .await;
        let welcome = c.recv().await.expect("welcome").op;
        (c, welcome)
    }

    /// Sends `Hello` claiming `pfn` (if any) with `auth`.
    pub async fn hello(&mut self, pfn: Option<&str>, auth: AuthKind) {
        let pfn = pfn.map(|p| Pfn::parse(p).expect("valid pfn"));
        self.send(Op::Hello(Hello {
            version: PROTOCOL_VERSION,
            pfn,
            name: "raw".into(),
            auth,
            fds: false,
            set_pools: false,
        }))
        .await;
    }

    /// Connects, claims `pfn` with a token proof and answers the challenge
    /// with `mac(nonce)`. Returns the client, the nonce the daemon sent,
    /// the MAC sent, and the daemon's answer (`Welcome` or `Error`; `None`
    /// if it closed without a word).
    pub async fn connect_token(
        url: &str,
        pfn: &str,
        mac: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (Self, Vec<u8>, Vec<u8>, Option<Op>) {
        let mut c = Self::connect(url).await;
        c.hello(Some(pfn), AuthKind::Token).await;
        let mut buf = match c.recv().await.map(|f| f.op) {
            Some(Op::Challenge { nonce }) => nonce,
            other => panic!("expected Challenge for {pfn}, got {other:?}"),
        };
        let nonce = buf.to_vec();
        let hmac = mac(&nonce);
        // The challenge's byte buffer, reused for the answer.
        buf.clear();
        buf.extend_from_slice(&hmac);
        c.send(Op::Auth { hmac: buf }).await;
        let answer = c.recv().await.map(|f| f.op);
        (c, nonce, hmac, answer)
    }

    /// Sends `Ping` and returns every frame before the `Pong`: what the
    /// daemon queued for this connection before handling the ping.
    /// Panics if the connection closes first.
    pub async fn ping(&mut self) -> Vec<Frame> {
        self.send(Op::Ping).await;
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                Some(Frame { op: Op::Pong, .. }) => return before,
                Some(f) => before.push(f),
                None => panic!("connection closed before Pong; got {before:?}"),
            }
        }
    }

    /// The code of the first `Error` among `frames`.
    pub fn error_code(frames: &[Frame]) -> Option<ErrorCode> {
        frames.iter().find_map(|f| match f.op {
            Op::Error { code, .. } => Some(code),
            _ => None,
        })
    }

    /// Sends a frame without payload.
    pub async fn send(&mut self, op: Op) {
        self.send_frame(Frame::new(op)).await;
    }

    /// Sends a frame.
    pub async fn send_frame(&mut self, frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encode");
        self.send_bytes(&buf).await;
    }

    /// Sends `op` (no payload) with `trailing` bytes after its MessagePack
    /// header, inside the header's length: a frame no encoder writes.
    pub async fn send_with_trailing(&mut self, op: Op, trailing: &[u8]) {
        let mut buf = BytesMut::new();
        Frame::new(op).encode(&mut buf).expect("encode");
        // Length, header length, header: the header ends the frame.
        buf.extend_from_slice(trailing);
        let len = u32::try_from(buf.len() - 4).expect("a small frame");
        let header_len = u32::try_from(buf.len() - 8).expect("a small frame");
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf[4..8].copy_from_slice(&header_len.to_be_bytes());
        self.send_bytes(&buf).await;
    }

    /// Sends a frame announcing a segment of `len` bytes, after passing `fd`
    /// beside the stream (or no fd at all, to break the rule). Shm only.
    pub async fn send_segment(&mut self, op: Op, fd: Option<BorrowedFd<'_>>, len: u64) {
        if let Some(fd) = fd {
            let sender = self
                .fds
                .as_ref()
                .expect("fd passing needs an shm connection");
            sender.send(fd).await.expect("pass the fd");
        }
        let mut buf = BytesMut::new();
        encode_head_with(&op, Body::Segment(len), &mut buf).expect("encode");
        self.send_bytes(&buf).await;
    }

    /// Sends `frame` with `fds` passed as a frame's attached fds are
    /// (unix and shm), whatever its head announces: a frame with no fds of
    /// its own makes them fds no frame announced.
    pub async fn send_with_fds(&mut self, frame: Frame, fds: &[BorrowedFd<'_>]) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encode");
        let sender = self.fds.as_ref().expect("fd passing needs unix or shm");
        let sent = sender.send_attached(fds, &buf).await.expect("pass the fds");
        self.send_bytes(&buf[sent..]).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        // The daemon may already have closed: a write error is then expected.
        let _ = self.writer.write_all(bytes).await;
    }

    /// Next frame, or `None` at end of stream.
    pub async fn recv(&mut self) -> Option<Frame> {
        match self.reader.next().await {
            Some(Ok(frame)) => Some(frame),
            Some(Err(_)) | None => None,
        }
    }

    /// Frames until the daemon closes the connection.
    pub async fn recv_until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.recv().await {
            frames.push(f);
        }
        frames
    }

    /// A payload of `n` bytes.
    pub fn payload(n: usize) -> Bytes {
        Bytes::from(vec![0x5a; n])
    }
}
