//! Bad input closes only the offending connection; the daemon keeps serving.

use std::time::Duration;

use busd_e2e::access::within;
use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{AuthKind, ErrorCode, Frame, Hello, Op, Overflow, Subject};

fn error_code(frames: &[Frame]) -> Option<ErrorCode> {
    frames.iter().find_map(|f| match f.op {
        Op::Error { code, .. } => Some(code),
        _ => None,
    })
}

async fn ping(c: &mut RawClient) {
    c.send(Op::Ping).await;
    loop {
        match c.recv().await.expect("connection alive").op {
            Op::Pong => return,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn frame_over_max_frame_closes_only_that_connection() {
    let d = TestDaemon::start_with(|c| c.limits.max_frame = 4096).await;
    for t in Transport::ALL {
        let (mut bystander, welcome) = RawClient::connect_hello(&d.url(t)).await;
        assert!(matches!(welcome, Op::Welcome(_)), "{welcome:?}");
        let (mut bad, _) = RawClient::connect_hello(&d.url(t)).await;
        let pub_op = Op::Pub {
            subject: Subject::from_static("big"),
            headers: None,
        };
        bad.send_frame(Frame::with_payload(pub_op, RawClient::payload(10_000)))
            .await;
        let frames = bad.recv_until_closed().await;
        assert_eq!(error_code(&frames), Some(ErrorCode::FrameTooLarge), "{t:?}");
        ping(&mut bystander).await;
    }
}

#[tokio::test]
async fn huge_length_prefix_is_refused_without_reading_it() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (mut bad, _) = RawClient::connect_hello(&d.url(t)).await;
        bad.send_bytes(&u32::MAX.to_be_bytes()).await;
        let frames = bad.recv_until_closed().await;
        assert_eq!(error_code(&frames), Some(ErrorCode::FrameTooLarge), "{t:?}");
    }
}

#[tokio::test]
async fn malformed_header_is_a_protocol_violation() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (mut bad, _) = RawClient::connect_hello(&d.url(t)).await;
        bad.send_bytes(&[0, 0, 0, 8, 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1])
            .await;
        let frames = bad.recv_until_closed().await;
        assert_eq!(
            error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}"
        );
        let (mut ok, _) = RawClient::connect_hello(&d.url(t)).await;
        ping(&mut ok).await;
    }
}

#[tokio::test]
async fn a_ping_with_trailing_bytes_in_its_header_is_a_protocol_violation() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        // The same frame without the garbage is answered.
        let (mut bad, _) = RawClient::connect_hello(&d.url(t)).await;
        bad.send_with_trailing(Op::Ping, &[]).await;
        let pong = within("the Pong", bad.recv()).await.map(|f| f.op);
        assert_eq!(pong, Some(Op::Pong), "{t:?}");
        // A whole MessagePack value after the op, hidden in the header.
        bad.send_with_trailing(Op::Ping, &[0xa4, b'j', b'u', b'n', b'k'])
            .await;
        let frames = within("the close", bad.recv_until_closed()).await;
        assert_eq!(
            error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}: {frames:?}"
        );
        assert!(!frames.iter().any(|f| f.op == Op::Pong), "{t:?}: acted on");

        // Before the handshake too: a Hello with bytes after it.
        let mut bad = RawClient::connect(&d.url(t)).await;
        let hello = Op::Hello(Hello {
            version: busd_proto::PROTOCOL_VERSION,
            pfn: None,
            name: "trailing".into(),
            auth: AuthKind::None,
            fds: false,
            set_pools: false,
        });
        bad.send_with_trailing(hello, &[0xc0]).await;
        let frames = within("the refusal", bad.recv_until_closed()).await;
        assert_eq!(
            error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}: {frames:?}"
        );
        assert!(
            !frames.iter().any(|f| matches!(f.op, Op::Welcome(_))),
            "{t:?}: welcomed"
        );

        let (mut ok, _) = RawClient::connect_hello(&d.url(t)).await;
        within("a ping", ping(&mut ok)).await;
    }
}

#[tokio::test]
async fn nothing_is_accepted_before_welcome() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let mut c = RawClient::connect(&d.url(t)).await;
        c.send(Op::Ping).await;
        let frames = c.recv_until_closed().await;
        assert_eq!(
            error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}"
        );
        assert!(!frames.iter().any(|f| f.op == Op::Pong));
    }
}

#[tokio::test]
async fn wrong_protocol_version_and_unproven_package_are_refused() {
    let d = TestDaemon::start().await;
    let mut c = RawClient::connect(&d.url(Transport::Unix)).await;
    c.send(Op::Hello(Hello {
        version: 999,
        pfn: None,
        name: "future".into(),
        auth: AuthKind::None,
        fds: false,
        set_pools: false,
    }))
    .await;
    assert_eq!(
        error_code(&c.recv_until_closed().await),
        Some(ErrorCode::ProtocolViolation)
    );
    // A token claim of a package the default config does not have is
    // challenged like any other (refusing it at once would tell which
    // names exist), and its answer refused.
    let (mut c, _, _, answer) = within(
        "a token claim of an unknown package",
        RawClient::connect_token(
            &d.url(Transport::Unix),
            "Contoso.Weather_8wekyb3d8bbwe",
            |_| vec![0; busd_proto::AUTH_MAC_LEN],
        ),
    )
    .await;
    assert!(
        matches!(
            answer,
            Some(Op::Error {
                code: ErrorCode::AuthFailed,
                ..
            })
        ),
        "{answer:?}"
    );
    assert_eq!(within("the close", c.recv_until_closed()).await, []);
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_auth_timeout() {
    let d = TestDaemon::start_with(|c| c.limits.auth_timeout = Duration::from_secs(3)).await;
    let mut c = RawClient::connect(&d.url(Transport::Tcp)).await;
    let frames = c.recv_until_closed().await;
    assert_eq!(error_code(&frames), Some(ErrorCode::ProtocolViolation));
}

#[tokio::test]
async fn wildcard_publish_is_refused_and_the_connection_stays() {
    let d = TestDaemon::start().await;
    let (mut c, _) = RawClient::connect_hello(&d.url(Transport::Unix)).await;
    c.send(Op::Pub {
        subject: Subject::from_static("a.*"),
        headers: None,
    })
    .await;
    let f = c.recv().await.expect("error frame");
    assert!(
        matches!(
            f.op,
            Op::Error {
                code: ErrorCode::InvalidSubject,
                ..
            }
        ),
        "{f:?}"
    );
    ping(&mut c).await;
}

#[tokio::test]
async fn slow_consumer_is_disconnected_without_blocking_the_publisher() {
    let d = TestDaemon::start_with(|c| {
        c.limits.max_pending_msgs = 64;
        c.limits.max_pending_bytes = 8 << 20;
    })
    .await;
    for t in Transport::ALL {
        let url = d.url(t);
        let (mut slow, _) = RawClient::connect_hello(&url).await;
        let (mut fast, _) = RawClient::connect_hello(&url).await;
        for c in [&mut slow, &mut fast] {
            c.send(Op::Sub {
                sid: 1,
                subject: Subject::from_static("firehose"),
                queue: None,
                overflow: Overflow::Disconnect,
            })
            .await;
            ping(c).await;
        }
        let (mut publisher, _) = RawClient::connect_hello(&url).await;
        // Far more than the socket buffers and the slow one's queue of 64
        // hold; the fast subscriber keeps pace, in windows of 32.
        const N: usize = 2000;
        const WINDOW: usize = 32;
        let mut got = 0;
        for _ in 0..N / WINDOW {
            for _ in 0..WINDOW {
                let op = Op::Pub {
                    subject: Subject::from_static("firehose"),
                    headers: None,
                };
                publisher
                    .send_frame(Frame::with_payload(op, RawClient::payload(16 * 1024)))
                    .await;
            }
            for _ in 0..WINDOW {
                match fast
                    .recv()
                    .await
                    .expect("fast subscriber keeps its connection")
                    .op
                {
                    Op::Msg { .. } => got += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // The daemon handled every publish: the publisher was never held up.
        ping(&mut publisher).await;
        assert_eq!(got, N / WINDOW * WINDOW, "{t:?}");
        let frames = slow.recv_until_closed().await;
        let msgs = frames
            .iter()
            .filter(|f| matches!(f.op, Op::Msg { .. }))
            .count();
        assert!(
            msgs < got,
            "{t:?}: the slow consumer cannot have received everything"
        );
        assert_eq!(error_code(&frames), Some(ErrorCode::SlowConsumer), "{t:?}");
    }
}
