//! Hostile framing: frames that would make the daemon hold memory nobody
//! is charged for. Before the handshake a frame may be only a few KiB; a
//! frame that has started must finish within `frame_timeout`.

use std::time::Duration;

use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{AuthKind, ErrorCode, Frame, Hello, Op, PROTOCOL_VERSION, Subject};

fn error_code(frames: &[Frame]) -> Option<ErrorCode> {
    RawClient::error_code(frames)
}

#[tokio::test]
async fn a_frame_larger_than_a_hello_needs_is_refused_before_the_handshake() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let mut c = RawClient::connect(&d.url(t)).await;
        c.send(Op::Hello(Hello {
            version: PROTOCOL_VERSION,
            pfn: None,
            name: "x".repeat(5000),
            auth: AuthKind::None,
            fds: false,
            set_pools: false,
        }))
        .await;
        let frames = c.recv_until_closed().await;
        assert_eq!(error_code(&frames), Some(ErrorCode::FrameTooLarge), "{t:?}");
        // After a handshake, frames up to max_frame are fine.
        let (mut ok, _) = RawClient::connect_hello(&d.url(t)).await;
        let op = Op::Pub {
            subject: Subject::from_static("big"),
            headers: None,
        };
        ok.send_frame(Frame::with_payload(op, RawClient::payload(64 * 1024)))
            .await;
        assert!(ok.ping().await.is_empty(), "{t:?}");
    }
}

#[tokio::test]
async fn a_frame_stalled_one_byte_short_is_closed_after_frame_timeout() {
    let d = TestDaemon::start_with(|c| c.limits.frame_timeout = Duration::from_millis(300)).await;
    for t in Transport::ALL {
        let (mut bystander, _) = RawClient::connect_hello(&d.url(t)).await;
        let (mut stalling, _) = RawClient::connect_hello(&d.url(t)).await;
        let op = Op::Pub {
            subject: Subject::from_static("big"),
            headers: None,
        };
        let mut bytes = bytes::BytesMut::new();
        Frame::with_payload(op, RawClient::payload(1 << 20))
            .encode(&mut bytes)
            .expect("encode");
        stalling.send_bytes(&bytes[..bytes.len() - 1]).await;
        // Bounded, so a connection left open fails rather than hangs.
        let frames = tokio::time::timeout(Duration::from_secs(20), stalling.recv_until_closed())
            .await
            .unwrap_or_else(|_| panic!("{t:?}: the stalled frame was held open"));
        assert_eq!(
            error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}"
        );
        bystander.ping().await;
    }
}
