//! The client against a scripted peer: a minimal in-test daemon on a real
//! 127.0.0.1:0 TCP listener that speaks the protocol frame by frame, so each
//! test states exactly what the daemon does and checks what the client sends.

use std::time::Duration;

use busd_client::Client;
use busd_proto::{Frame, FrameCodec, Limits, Op, Sender, Subject, Welcome};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Subscriptions, their delivery and back-pressure; publishing.
mod pubsub;

/// Requests, the client's guard timer, and serving calls.
mod requests;

/// Reconnecting, and closing with or without it.
mod lifecycle;

/// Package identity, token proof, capability-gated services and ctl.
mod identity;

/// What a lost connection's errors keep as their cause.
mod lost;

/// Generous bound on any single step, so a broken client fails instead of hanging.
const STEP: Duration = Duration::from_secs(10);

const LIMITS: Limits = Limits {
    max_frame: 64 * 1024,
    max_pending_msgs: 1000,
    max_pending_bytes: 1 << 20,
};

/// The listening side of the scripted daemon.
struct Peer {
    listener: TcpListener,
}

/// One accepted, welcomed connection.
struct PeerConn {
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
}

impl Peer {
    async fn bind() -> (Self, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        (Self { listener }, url)
    }

    /// Accepts a client, checks its Hello and welcomes it as `client_id`.
    async fn accept(&self, client_id: u64) -> (PeerConn, busd_proto::Hello) {
        let (mut conn, hello) = self.accept_hello().await;
        conn.send(Op::Welcome(Welcome {
            client_id,
            pfn: None,
            limits: LIMITS,
            fds: false,
            set_pools: false,
        }))
        .await;
        (conn, hello)
    }

    /// Accepts a client and reads its Hello; the test goes on from there.
    async fn accept_hello(&self) -> (PeerConn, busd_proto::Hello) {
        let (stream, _) = tokio::time::timeout(STEP, self.listener.accept())
            .await
            .expect("client connects")
            .unwrap();
        let (reader, writer) = stream.into_split();
        let mut conn = PeerConn {
            reader: FramedRead::new(reader, FrameCodec::new(1 << 20)),
            writer: FramedWrite::new(writer, FrameCodec::new(1 << 20)),
        };
        let Op::Hello(hello) = conn.recv().await.op else {
            panic!("first frame is not Hello");
        };
        assert_eq!(hello.version, busd_proto::PROTOCOL_VERSION);
        (conn, hello)
    }
}

impl PeerConn {
    async fn recv(&mut self) -> Frame {
        self.try_recv().await.expect("a frame, not EOF")
    }

    async fn try_recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(STEP, self.reader.next())
            .await
            .expect("client sends within the step")
            .map(|frame| frame.expect("a well-formed frame"))
    }

    async fn send(&mut self, op: Op) {
        self.send_with(op, Bytes::new()).await;
    }

    async fn send_with(&mut self, op: Op, payload: impl Into<Bytes>) {
        let frame = Frame::with_payload(op, payload.into());
        self.writer.send(frame).await.unwrap();
    }

    /// Expects a registration followed by its Ping, answers Pong; returns the registration.
    async fn confirm(&mut self) -> Op {
        let registration = self.recv().await.op;
        assert_eq!(self.recv().await.op, Op::Ping);
        self.send(Op::Pong).await;
        registration
    }

    /// Delivers `payload` to subscription `sid` as a message on `subject`.
    async fn msg(&mut self, sid: u64, subject: &str, payload: impl Into<Bytes>) {
        let op = Op::Msg {
            sid,
            subject: Subject::parse(subject).unwrap(),
            from: sender(),
            headers: None,
        };
        self.send_with(op, payload).await;
    }
}

fn sender() -> Sender {
    Sender {
        client_id: 99,
        pfn: None,
    }
}

/// Connects `url` while `peer` accepts it; returns both ends.
async fn connect(peer: &Peer, url: &str, reconnect: bool) -> (Client, PeerConn) {
    let connecting = Client::builder(url)
        .name("scripted")
        .reconnect(reconnect)
        .connect();
    let (client, (conn, hello)) = tokio::join!(connecting, peer.accept(7));
    assert_eq!(hello.name, "scripted");
    (client.expect("handshake succeeds"), conn)
}

fn sid_of(op: &Op) -> u64 {
    match op {
        Op::Sub { sid, .. } | Op::Serve { sid, .. } | Op::Unsub { sid } => *sid,
        other => panic!("expected a registration, got {other:?}"),
    }
}
