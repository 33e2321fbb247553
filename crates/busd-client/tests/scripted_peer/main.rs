//! The client against a scripted peer: a minimal in-test daemon on a real
//! 127.0.0.1:0 TCP listener that speaks the protocol frame by frame, so each
//! test states exactly what the daemon does and checks what the client sends.

use std::time::Duration;

use busd_client::{Client, ErrorKind, Headers, Overflow, RequestOptions, Status, SubscribeOptions};
use busd_proto::{ErrorCode, Frame, FrameCodec, Limits, Op, Ref, Sender, Subject, Welcome};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

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

#[tokio::test]
async fn handshake_subscribe_confirmation_and_ordered_delivery() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    assert_eq!(client.client_id(), 7);
    assert_eq!(client.server_limits(), LIMITS);

    // subscribe() returns only after the Pong that follows its Sub.
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("weather.*").await }
    });
    let sub_op = conn.recv().await.op;
    let Op::Sub {
        sid,
        ref subject,
        ref queue,
        overflow,
    } = sub_op
    else {
        panic!("expected Sub, got {sub_op:?}");
    };
    assert_eq!(subject.as_str(), "weather.*");
    assert_eq!((queue.clone(), overflow), (None, Overflow::Disconnect));
    assert_eq!(conn.recv().await.op, Op::Ping);
    tokio::task::yield_now().await;
    assert!(!subscribing.is_finished(), "confirmed before the Pong");
    conn.send(Op::Pong).await;
    let mut sub = subscribing.await.unwrap().unwrap();

    for i in 0..500u32 {
        conn.msg(sid, "weather.paris", i.to_be_bytes().to_vec())
            .await;
    }
    for i in 0..500u32 {
        let message = tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.subject.as_str(), "weather.paris");
        assert_eq!(message.from, sender());
        assert_eq!(&message.payload[..], &i.to_be_bytes());
    }

    // Dropped notices add up; the Ping makes sure the client has read them.
    conn.send(Op::Dropped { sid, count: 3 }).await;
    conn.send(Op::Dropped { sid, count: 2 }).await;
    conn.send(Op::Ping).await;
    assert_eq!(conn.recv().await.op, Op::Pong);
    assert_eq!(sub.dropped(), 5);

    // Dropping the subscriber unsubscribes.
    drop(sub);
    assert_eq!(conn.recv().await.op, Op::Unsub { sid });
}

#[tokio::test]
async fn publish_validates_locally_and_keeps_order() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;

    for bad in ["weather.*", "weather.>", "weather..paris", ""] {
        let err = client.publish(bad, "x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubject, "{bad:?}");
    }
    let err = client
        .publish("big.payload", vec![0u8; LIMITS.max_frame as usize])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FrameTooLarge);

    let mut headers = Headers::new();
    headers.insert("k".into(), "v".into());
    client.publish("a.b", "one").await.unwrap();
    client
        .publish_with_headers("a.c", headers.clone(), "two")
        .await
        .unwrap();
    let flushing = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    // Nothing of the refused publishes reached the wire.
    let first = conn.recv().await;
    assert_eq!(
        first.op,
        Op::Pub {
            subject: Subject::from_static("a.b"),
            headers: None
        }
    );
    assert_eq!(&first.payload[..], b"one");
    let second = conn.recv().await;
    assert_eq!(
        second.op,
        Op::Pub {
            subject: Subject::from_static("a.c"),
            headers: Some(headers)
        }
    );
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Pong).await;
    flushing.await.unwrap().unwrap();
}

#[tokio::test]
async fn subscription_refused_by_the_daemon() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move {
            let options = SubscribeOptions {
                queue: Some("workers".into()),
                overflow: Overflow::DropOldest,
            };
            client.subscribe_with("jobs.>", options).await
        }
    });
    let op = conn.recv().await.op;
    let Op::Sub {
        sid,
        queue,
        overflow,
        ..
    } = op
    else {
        panic!("{op:?}")
    };
    assert_eq!(
        (queue.as_deref(), overflow),
        (Some("workers"), Overflow::DropOldest)
    );
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Error {
        code: ErrorCode::LimitExceeded,
        message: "too many subscriptions".into(),
        refers: Some(Ref::Sid(sid)),
    })
    .await;
    conn.send(Op::Pong).await;
    let err = subscribing.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert!(err.to_string().contains("too many subscriptions"), "{err}");
}

#[tokio::test]
async fn requests_get_answers_and_daemon_verdicts() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let answers = [
        (Status::Success, "sunny"),
        (Status::Failure, "unknown city"),
        (Status::NoResponders, ""),
        (Status::Timeout, ""),
    ];
    let requesting = tokio::spawn({
        let client = client.clone();
        async move {
            let mut results = Vec::new();
            for _ in 0..answers.len() {
                results.push(client.request("contoso.weather", "paris").await);
            }
            let options = RequestOptions {
                timeout: Some(Duration::from_millis(250)),
                headers: None,
            };
            results.push(
                client
                    .request_with("contoso.weather", "lyon", options)
                    .await,
            );
            results
        }
    });
    for (status, payload) in answers {
        let frame = conn.recv().await;
        let Op::Req {
            rid,
            service,
            timeout_ms,
            ..
        } = frame.op
        else {
            panic!("{:?}", frame.op)
        };
        assert_eq!((service.as_str(), timeout_ms), ("contoso.weather", 5000));
        assert_eq!(&frame.payload[..], b"paris");
        conn.send_with(
            Op::Resp {
                rid,
                status,
                headers: None,
            },
            payload,
        )
        .await;
    }
    let frame = conn.recv().await;
    let Op::Req {
        rid, timeout_ms, ..
    } = frame.op
    else {
        panic!("{:?}", frame.op)
    };
    assert_eq!(timeout_ms, 250);
    conn.send(Op::Error {
        code: ErrorCode::NotAuthorized,
        message: "denied".into(),
        refers: Some(Ref::Rid(rid)),
    })
    .await;

    let results = requesting.await.unwrap();
    let ok = results[0].as_ref().unwrap();
    assert!(ok.is_success());
    assert_eq!(&ok.payload[..], b"sunny");
    let failed = results[1].as_ref().unwrap();
    assert_eq!(
        (failed.status, &failed.payload[..]),
        (Status::Failure, &b"unknown city"[..])
    );
    let kinds: Vec<_> = results[2..]
        .iter()
        .map(|r| r.as_ref().unwrap_err().kind())
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::NoResponders,
            ErrorKind::Timeout,
            ErrorKind::NotAuthorized
        ]
    );
}

#[tokio::test]
async fn guard_timer_fails_a_request_the_daemon_never_answers() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;

    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let options = RequestOptions {
        timeout: Some(Duration::from_secs(2)),
        headers: None,
    };
    let err = client
        .request_with("silent.service", "?", options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The daemon's timeout plus the client's one-second margin.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    tokio::time::resume();

    // A late answer to the forgotten request is ignored; the client goes on.
    let Op::Req { rid, .. } = conn.recv().await.op else {
        panic!("expected Req")
    };
    conn.send(Op::Resp {
        rid,
        status: Status::Success,
        headers: None,
    })
    .await;
    let flushing = tokio::spawn(async move { client.flush().await });
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Pong).await;
    flushing.await.unwrap().unwrap();
}

#[tokio::test]
async fn serving_answers_calls_once() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let serving = tokio::spawn({
        let client = client.clone();
        async move { client.serve("contoso.weather").await }
    });
    let sid = sid_of(&conn.confirm().await);
    let mut service = serving.await.unwrap().unwrap();
    assert!(client.serve("contoso.*").await.is_err(), "wildcard service");

    for (rid, city) in [(41, "paris"), (42, "oslo")] {
        let call = Op::Call {
            rid,
            sid,
            service: Subject::from_static("contoso.weather"),
            from: sender(),
            headers: None,
        };
        conn.send_with(call, city).await;
    }
    let first = service.next().await.unwrap();
    assert_eq!(
        (first.service.as_str(), &first.payload[..]),
        ("contoso.weather", &b"paris"[..])
    );
    first.respond("sunny").await.unwrap();
    let second = service.next().await.unwrap();
    second.respond_failure("no such city").await.unwrap();

    let frame = conn.recv().await;
    assert_eq!(
        frame.op,
        Op::Resp {
            rid: 41,
            status: Status::Success,
            headers: None
        }
    );
    assert_eq!(&frame.payload[..], b"sunny");
    let frame = conn.recv().await;
    assert_eq!(
        frame.op,
        Op::Resp {
            rid: 42,
            status: Status::Failure,
            headers: None
        }
    );

    drop(service);
    assert_eq!(conn.recv().await.op, Op::Unsub { sid });
}

#[tokio::test]
async fn reconnects_and_registers_again_after_the_peer_drops() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let registering = tokio::spawn({
        let client = client.clone();
        async move {
            let sub = client.queue_subscribe("news.>", "readers").await?;
            let service = client.serve("news.latest").await?;
            Ok::<_, busd_client::Error>((sub, service))
        }
    });
    let sub_op = conn.confirm().await;
    let serve_op = conn.confirm().await;
    let (mut sub, mut service) = registering.await.unwrap().unwrap();
    let call = Op::Call {
        rid: 5,
        sid: sid_of(&serve_op),
        service: Subject::from_static("news.latest"),
        from: sender(),
        headers: None,
    };
    conn.send(call).await;
    let unanswered = tokio::time::timeout(STEP, service.next())
        .await
        .unwrap()
        .unwrap();
    let requesting = tokio::spawn({
        let client = client.clone();
        async move { client.request("news.latest", "?").await }
    });
    assert!(matches!(conn.recv().await.op, Op::Req { .. }));

    // The daemon goes away with a request in flight.
    drop(conn);
    let err = requesting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);

    let (mut conn, _) = peer.accept(8).await;
    assert_eq!(conn.recv().await.op, sub_op, "Sub sent again, same sid");
    assert_eq!(conn.recv().await.op, serve_op, "Serve sent again, same sid");
    conn.msg(sid_of(&sub_op), "news.today", "back").await;
    let message = tokio::time::timeout(STEP, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload[..], b"back");
    assert_eq!(client.client_id(), 8);
    // A call from the lost connection cannot be answered on the new one.
    let err = unanswered.respond("too late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);

    client.publish("news.today", "after").await.unwrap();
    assert_eq!(&conn.recv().await.payload[..], b"after");
}

#[tokio::test]
async fn without_reconnect_a_lost_connection_closes_the_client() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, false).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("a.b").await }
    });
    conn.confirm().await;
    let mut sub = subscribing.await.unwrap().unwrap();
    conn.send(Op::Error {
        code: ErrorCode::ShuttingDown,
        message: "bye".into(),
        refers: None,
    })
    .await;
    drop(conn);
    assert!(
        tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .is_none()
    );
    let err = client.publish("a.b", "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn dropping_every_handle_flushes_and_closes() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    client.publish("last.words", "bye").await.unwrap();
    drop(client);
    assert_eq!(&conn.recv().await.payload[..], b"bye");
    assert!(conn.try_recv().await.is_none(), "socket closed");
}

#[tokio::test]
async fn a_full_subscriber_pushes_back_without_losing_messages() {
    const COUNT: u32 = 9000; // more than a subscription's channel holds
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("flood").await }
    });
    let sid = sid_of(&conn.confirm().await);
    let mut sub = subscribing.await.unwrap().unwrap();

    let PeerConn {
        mut reader,
        mut writer,
    } = conn;
    let flooding = tokio::spawn(async move {
        for i in 0..COUNT {
            let op = Op::Msg {
                sid,
                subject: Subject::from_static("flood"),
                from: sender(),
                headers: None,
            };
            let frame = Frame::with_payload(op, Bytes::from(i.to_be_bytes().to_vec()));
            writer.feed(frame).await.unwrap();
        }
        writer.send(Frame::new(Op::Ping)).await.unwrap();
        writer
    });
    let _writer = tokio::time::timeout(STEP, flooding).await.unwrap().unwrap();

    // While deliveries wait for room, commands still go out.
    client.publish("meanwhile", "still writing").await.unwrap();
    let frame = tokio::time::timeout(STEP, reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&frame.payload[..], b"still writing");

    for i in 0..COUNT {
        let message = tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&message.payload[..], &i.to_be_bytes(), "message {i}");
    }
    // The peer's Ping came after every message, so its Pong does too.
    let frame = tokio::time::timeout(STEP, reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.op, Op::Pong);
    assert_eq!(sub.dropped(), 0);
}
