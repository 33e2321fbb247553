//! Closing with replies owed: a stopping daemon delivers what is queued
//! within its grace (and counts what it could not), and a connection that
//! breaks the protocol still gets what was queued for it before the error.

use std::time::Duration;

use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{ErrorCode, Frame, Op, Overflow, Subject};

/// A connection subscribed to `subject`, confirmed by a round trip.
async fn subscriber(url: &str, subject: &'static str) -> RawClient {
    let (mut sub, _) = RawClient::connect_hello(url).await;
    sub.send(Op::Sub {
        sid: 1,
        subject: Subject::from_static(subject),
        queue: None,
        overflow: Overflow::Disconnect,
    })
    .await;
    sub.ping().await;
    sub
}

/// Publishes `count` messages of `size` bytes to `subject`, and waits until
/// the daemon has routed them all (its `Pong` comes after).
async fn publish(url: &str, subject: &'static str, count: usize, size: usize) {
    let (mut publisher, _) = RawClient::connect_hello(url).await;
    for _ in 0..count {
        let op = Op::Pub {
            subject: Subject::from_static(subject),
            headers: None,
        };
        publisher
            .send_frame(Frame::with_payload(op, RawClient::payload(size)))
            .await;
    }
    publisher.ping().await;
}

fn messages(frames: &[Frame]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f.op, Op::Msg { .. }))
        .count()
}

#[tokio::test]
async fn a_stopping_daemon_delivers_what_is_queued_to_a_slow_reader() {
    for t in Transport::ALL {
        let mut d = TestDaemon::start().await;
        let url = d.url(t);
        // The subscriber reads nothing until the daemon is stopping.
        let mut sub = subscriber(&url, "backlog").await;
        publish(&url, "backlog", 2_000, 1024).await;
        let stop = tokio::spawn(async move { d.stop().await });
        let frames = sub.recv_until_closed().await;
        assert_eq!(messages(&frames), 2_000, "{t:?}: every queued message");
        assert!(
            matches!(
                frames.last().map(|f| &f.op),
                Some(Op::Error {
                    code: ErrorCode::ShuttingDown,
                    ..
                })
            ),
            "{t:?}: ShuttingDown comes last: {:?}",
            frames.last()
        );
        let stopped = stop.await.expect("stop task").expect("was running");
        assert_eq!(stopped.undelivered, 0, "{t:?}");
    }
}

#[tokio::test]
async fn a_reader_that_never_reads_is_counted_when_the_grace_runs_out() {
    let mut d = TestDaemon::start_with(|c| c.shutdown_grace = Duration::from_millis(300)).await;
    let url = d.url(Transport::Unix);
    let sub = subscriber(&url, "stuck").await;
    // Far more than the socket buffers hold: most of it stays queued.
    publish(&url, "stuck", 200, 64 * 1024).await;
    let stopped = d.stop().await.expect("was running");
    assert!(stopped.undelivered > 0, "{stopped:?}");
    drop(sub);
}

#[tokio::test]
async fn replies_owed_are_delivered_before_a_protocol_error() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (mut c, _) = RawClient::connect_hello(&d.url(t)).await;
        // A Ping and, in the same write, a frame whose header is not
        // MessagePack: the Pong owed for the first comes before the error.
        let mut bytes = bytes::BytesMut::new();
        Frame::new(Op::Ping).encode(&mut bytes).expect("encode");
        bytes.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1]);
        c.send_bytes(&bytes).await;
        let frames = c.recv_until_closed().await;
        let ops: Vec<&Op> = frames.iter().map(|f| &f.op).collect();
        assert!(
            matches!(
                ops[..],
                [
                    Op::Pong,
                    Op::Error {
                        code: ErrorCode::ProtocolViolation,
                        ..
                    }
                ]
            ),
            "{t:?}: {ops:?}"
        );
    }
}

#[tokio::test]
async fn a_reader_whose_socket_stays_full_is_cut_off_after_write_timeout() {
    // A long flush grace and a generous queue: only the write deadline
    // can end this connection.
    // A small payload pool: a stuck shm reader fills it with 16 messages,
    // then the rest go through the rings, which fill as a socket does.
    let d = TestDaemon::start_with(|c| {
        c.limits.write_timeout = Duration::from_millis(200);
        c.limits.shm_pool_bytes = 1 << 20;
    })
    .await;
    for t in Transport::ALL {
        let url = d.url(t);
        let before = d.daemon().connection_count();
        let sub = subscriber(&url, "full").await;
        // Enough to fill the socket (or ring) and leave more queued, far
        // below the queue's limits.
        publish(&url, "full", 100, 64 * 1024).await;
        // Waiting for the daemon to act, bounded; not a timing assertion.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while d.daemon().connection_count() > before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{t:?}: the stuck reader is still connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(sub);
    }
}
