//! Memory charged before it is spent: what one package or uid makes the
//! daemon hold (frames it sends, read in part; messages queued for it) is
//! capped by `limits.max_memory_per_identity`, however many connections
//! it opens, and nobody else pays for it.

use std::time::Duration;

use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{AuthKind, ErrorCode, Frame, Op, Overflow, Subject};

const BYSTANDER: &str = "Busd.Bystander_1234567890abc";

/// A daemon with `limits`, where [`BYSTANDER`] is a package proven by this
/// process's uid: an owner of its own, apart from the unpackaged clients.
async fn daemon(limits: &str) -> TestDaemon {
    let uid = rustix::process::getuid().as_raw();
    let toml = format!(
        "[limits]\n{limits}\n\n[[package]]\npfn = \"{BYSTANDER}\"\nloopback = true\nexempt_out = true\nuids = [{uid}]\n"
    );
    TestDaemon::start_with_config(&toml, &[]).await
}

/// A connection proven as [`BYSTANDER`].
async fn bystander(url: &str) -> RawClient {
    let mut c = RawClient::connect(url).await;
    c.hello(Some(BYSTANDER), AuthKind::Peer).await;
    let welcome = c.recv().await.map(|f| f.op);
    assert!(matches!(welcome, Some(Op::Welcome(_))), "{welcome:?}");
    c
}

fn publish(subject: &'static str, size: usize) -> Frame {
    let op = Op::Pub {
        subject: Subject::from_static(subject),
        headers: None,
    };
    Frame::with_payload(op, RawClient::payload(size))
}

/// Frames until the connection closes or nothing comes for `quiet`.
async fn frames_until_quiet(c: &mut RawClient, quiet: Duration) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(quiet, c.recv()).await {
        frames.push(f);
    }
    frames
}

#[tokio::test]
async fn stalled_large_frames_on_many_connections_are_capped_by_one_budget() {
    let d = daemon(
        "max_frame = 1048576\nmax_pending_bytes = 1048576\n\
         max_memory_per_identity = 3670016\nframe_timeout = \"1h\"",
    )
    .await;
    for t in Transport::ALL {
        let url = d.url(t);
        // Ten connections of one uid each send a 1 MiB frame but its last
        // byte: 10 MiB held, were it not for the 3.5 MiB budget. Three fit
        // in it and hold on to it (they never finish); every other is
        // refused, whatever the order the daemon reads them in.
        let mut stalling = Vec::new();
        for _ in 0..10 {
            let (mut c, _) = RawClient::connect_hello(&url).await;
            let mut bytes = bytes::BytesMut::new();
            publish("big", (1 << 20) - 64)
                .encode(&mut bytes)
                .expect("encode");
            c.send_bytes(&bytes[..bytes.len() - 1]).await;
            stalling.push(c);
        }
        // All read at once: a refused one ends with its error, a holder
        // when nothing came for the quiet time.
        let ends = futures::future::join_all(
            stalling
                .iter_mut()
                .map(|c| frames_until_quiet(c, Duration::from_secs(2))),
        )
        .await;
        let refused = ends
            .iter()
            .filter(|f| RawClient::error_code(f) == Some(ErrorCode::LimitExceeded))
            .count();
        assert!(refused >= 7, "{t:?}: only {refused} of 10 refused");
        // Another owner is served as before, large frames included.
        let mut other = bystander(&url).await;
        other.send_frame(publish("big", (1 << 20) - 64)).await;
        assert!(other.ping().await.is_empty(), "{t:?}");
    }
}

#[tokio::test]
async fn a_reader_that_reads_nothing_on_many_connections_is_capped_by_one_budget() {
    // Each queue may hold 8 MiB, so only the shared budget can stop them.
    let d = daemon(
        "max_frame = 65536\nmax_pending_bytes = 8388608\n\
         max_memory_per_identity = 8454144\nwrite_timeout = \"1h\"",
    )
    .await;
    let url = d.url(Transport::Unix);
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (mut r, _) = RawClient::connect_hello(&url).await;
        r.send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("flood"),
            queue: None,
            overflow: Overflow::Disconnect,
        })
        .await;
        r.ping().await;
        readers.push(r);
    }
    // 4 MiB to each of the four: 16 MiB queued for one uid.
    let mut publisher = bystander(&url).await;
    for _ in 0..64 {
        publisher.send_frame(publish("flood", 60 * 1024)).await;
    }
    publisher.ping().await;
    let ends = futures::future::join_all(
        readers
            .iter_mut()
            .map(|r| frames_until_quiet(r, Duration::from_secs(2))),
    )
    .await;
    let codes: Vec<_> = ends
        .iter()
        .filter_map(|f| RawClient::error_code(f))
        .collect();
    assert!(codes.contains(&ErrorCode::LimitExceeded), "{codes:?}");
    assert!(!codes.contains(&ErrorCode::SlowConsumer), "{codes:?}");
    // The publisher, another owner, is untouched.
    assert!(publisher.ping().await.is_empty());
}
