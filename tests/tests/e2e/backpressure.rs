//! Back-pressure within bounds: a `block` subscriber makes its publisher
//! wait, but one of another package (or uid) only briefly
//! (`limits.foreign_block_timeout`), unless the publisher's package
//! accepts longer waits (`accept_block`); a publisher's own subscribers
//! may hold it for `limits.block_timeout`.
//!
//! Paused time: the daemon's waits end by its timers alone, and the
//! bound that ended them is the one its notice names (`write_timeout` is
//! set past them all, so that it does not end them first).

use std::time::Duration;

use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{AuthKind, ErrorCode, Frame, Op, Overflow, Subject};

const PUBLISHER: &str = "Busd.Publisher_1234567890abc";

/// The `SlowConsumer` notice a publisher of [`PUBLISHER`] (with
/// `package_extra` in its table) gets when a subscriber that never reads
/// (of [`PUBLISHER`] too when `same_package`, else unpackaged) is cut off.
async fn publisher_notice(package_extra: &str, same_package: bool) -> String {
    let uid = rustix::process::getuid().as_raw();
    let toml = format!(
        "[limits]\nmax_pending_msgs = 8\nblock_timeout = \"1h\"\nforeign_block_timeout = \"50ms\"\n\
         write_timeout = \"2h\"\n\n\
         [[package]]\npfn = \"{PUBLISHER}\"\nloopback = true\nexempt_out = true\nuids = [{uid}]\n{package_extra}\n"
    );
    let d = TestDaemon::start_with_config(&toml, &[]).await;
    let url = d.url(Transport::Unix);
    let mut stuck = connect(&url, same_package.then_some(PUBLISHER)).await;
    stuck
        .send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("stuck"),
            queue: None,
            overflow: Overflow::Block,
        })
        .await;
    assert!(stuck.ping().await.is_empty());
    let mut publisher = connect(&url, Some(PUBLISHER)).await;
    // Far more than an 8-message queue and the socket buffers hold.
    for _ in 0..200 {
        let op = Op::Pub {
            subject: Subject::from_static("stuck"),
            headers: None,
        };
        publisher
            .send_frame(Frame::with_payload(op, RawClient::payload(64 * 1024)))
            .await;
    }
    let notice = tokio::time::timeout(Duration::from_secs(7200), publisher.recv())
        .await
        .expect("the publisher is told")
        .expect("the publisher stays connected");
    let stuck_end = stuck.recv_until_closed().await;
    assert_eq!(
        RawClient::error_code(&stuck_end),
        Some(ErrorCode::SlowConsumer)
    );
    match notice.op {
        Op::Error {
            code: ErrorCode::SlowConsumer,
            refers: None,
            message,
        } => message,
        other => panic!("{other:?}"),
    }
}

async fn connect(url: &str, pfn: Option<&str>) -> RawClient {
    let mut c = RawClient::connect(url).await;
    let auth = if pfn.is_some() {
        AuthKind::Peer
    } else {
        AuthKind::None
    };
    c.hello(pfn, auth).await;
    let welcome = c.recv().await.map(|f| f.op);
    assert!(matches!(welcome, Some(Op::Welcome(_))), "{welcome:?}");
    c
}

#[tokio::test(start_paused = true)]
async fn a_stuck_subscriber_of_another_owner_holds_a_publisher_only_briefly() {
    let notice = publisher_notice("", false).await;
    assert!(notice.contains("within 50ms"), "{notice}");
}

#[tokio::test(start_paused = true)]
async fn a_publishers_own_package_may_hold_it_for_the_block_timeout() {
    let notice = publisher_notice("", true).await;
    assert!(notice.contains("within 1h"), "{notice}");
}

#[tokio::test(start_paused = true)]
async fn accept_block_lets_another_owner_hold_the_publisher_for_the_block_timeout() {
    let notice = publisher_notice("accept_block = true", false).await;
    assert!(notice.contains("within 1h"), "{notice}");
}
