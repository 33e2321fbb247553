//! Every delivery the router made ends in exactly one of the daemon's
//! counters (`written`, `dropped`, `discarded`, `failed`) once the daemon
//! is idle, however its receiver went: read it all, fell behind a
//! `drop-oldest` or `block` subscription, overflowed its queue, or died
//! with its queue full. And every routed request ends once.

use std::time::Duration;

use busd_client::{Client, CtlCommand};
use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{Frame, Op, Overflow, Subject};
use futures::StreamExt;

fn small_queues(c: &mut busd_daemon::Config) {
    c.limits.max_pending_msgs = 8;
    c.limits.max_pending_bytes = 8 << 20;
}

/// Waits (polling, up to 20 s: a closing connection may take its 5 s
/// flush grace and more) until every delivery is accounted for and none is
/// queued; panics with the counters otherwise.
async fn balanced(d: &TestDaemon) -> busd_daemon::Deliveries {
    for _ in 0..1000 {
        let delivered = d.daemon().stats().delivered;
        let counts = d.daemon().deliveries();
        if counts.total() == delivered && counts.queued == 0 && d.daemon().connection_count() == 0 {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stats, counts) = (d.daemon().stats(), d.daemon().deliveries());
    panic!("deliveries do not balance: {stats:?} against {counts:?}");
}

/// A raw subscriber to `subject` with `overflow`, confirmed by a round trip.
async fn raw_subscriber(url: &str, subject: &'static str, overflow: Overflow) -> RawClient {
    let (mut sub, _) = RawClient::connect_hello(url).await;
    let op = Op::Sub {
        sid: 1,
        subject: Subject::from_static(subject),
        queue: None,
        overflow,
    };
    sub.send(op).await;
    sub.ping().await;
    sub
}

/// Publishes `count` payloads of `size` bytes to `subject` from a raw
/// connection, and returns once the daemon has routed them (or closed it).
async fn raw_publish(url: &str, subject: &'static str, count: usize, size: usize) {
    let (mut publisher, _) = RawClient::connect_hello(url).await;
    for _ in 0..count {
        let op = Op::Pub {
            subject: Subject::from_static(subject),
            headers: None,
        };
        let frame = Frame::with_payload(op, RawClient::payload(size));
        publisher.send_frame(frame).await;
    }
    publisher.send(Op::Ping).await;
    while let Some(f) = publisher.recv().await {
        if f.op == Op::Pong {
            break;
        }
    }
}

#[tokio::test]
async fn deliveries_that_are_read_are_counted_written() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let sub_client = Client::connect(&d.url(t)).await.unwrap();
        let mut sub = sub_client.subscribe("read.all").await.unwrap();
        let publisher = Client::connect(&d.url(t)).await.unwrap();
        // Small payloads are copied into runs, large ones queued whole.
        for i in 0..200_usize {
            let size = if i % 10 == 0 { 8192 } else { 16 };
            publisher.publish("read.all", vec![1; size]).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for _ in 0..200 {
            tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("a message")
                .expect("subscribed");
        }
        drop((sub, sub_client, publisher));
    }
    let counts = balanced(&d).await;
    assert_eq!(counts.written, 600, "{counts:?}");
    assert_eq!(counts.total(), counts.written, "{counts:?}");
}

#[tokio::test]
async fn drop_oldest_losses_are_counted_once_and_match_the_notices() {
    let d = TestDaemon::start_with(small_queues).await;
    let url = d.url(Transport::Unix);
    let mut lagging = raw_subscriber(&url, "lag", Overflow::DropOldest).await;
    // Far more than 8 queued messages and the socket buffers hold.
    raw_publish(&url, "lag", 400, 16 * 1024).await;
    // Not a ping: its Pong would not fit a queue full of messages.
    let (mut got, mut told) = (0, 0);
    while got + told < 400 {
        let f = tokio::time::timeout(Duration::from_secs(30), lagging.recv())
            .await
            .expect("frames keep coming")
            .expect("the lagging subscriber stays connected");
        match f.op {
            Op::Msg { .. } => got += 1,
            Op::Dropped { count, .. } => told += count,
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(lagging);
    let counts = balanced(&d).await;
    assert!(told > 0, "the subscriber fell behind");
    assert_eq!((counts.written, counts.dropped), (got, told), "{counts:?}");
    assert_eq!(counts.discarded, 0, "{counts:?}");
}

#[tokio::test]
async fn a_reader_that_dies_with_its_queue_full_has_it_counted_discarded() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let url = d.url(t);
        let stuck = raw_subscriber(&url, "never.read", Overflow::Disconnect).await;
        // More than the socket buffers (or ring) take: the rest is queued,
        // and some of it is in the writer's hands when the reader dies.
        raw_publish(&url, "never.read", 400, 64 * 1024).await;
        drop(stuck);
    }
    let counts = balanced(&d).await;
    assert!(counts.discarded > 0, "{counts:?}");
}

#[tokio::test]
async fn a_subscriber_cut_off_for_its_full_queue_has_every_delivery_counted() {
    let d = TestDaemon::start_with(small_queues).await;
    let url = d.url(Transport::Tcp);
    let mut stuck = raw_subscriber(&url, "overflow", Overflow::Disconnect).await;
    raw_publish(&url, "overflow", 300, 64 * 1024).await;
    // Cut off: what it read, then SlowConsumer, then the end.
    let got = stuck
        .recv_until_closed()
        .await
        .iter()
        .filter(|f| matches!(f.op, Op::Msg { .. }))
        .count() as u64;
    drop(stuck);
    let counts = balanced(&d).await;
    assert_eq!(counts.written, got, "{counts:?}");
    assert!(counts.discarded > 0, "{counts:?}");
}

#[tokio::test]
async fn a_block_subscriber_that_makes_no_room_has_the_waiting_delivery_counted() {
    let d = TestDaemon::start_with(|c| {
        small_queues(c);
        c.limits.block_timeout = Duration::from_millis(200);
    })
    .await;
    let url = d.url(Transport::Unix);
    let stuck = raw_subscriber(&url, "blocked", Overflow::Block).await;
    raw_publish(&url, "blocked", 300, 64 * 1024).await;
    drop(stuck);
    let counts = balanced(&d).await;
    assert!(counts.discarded > 0, "{counts:?}");
}

#[tokio::test]
async fn routed_requests_end_once_and_ctl_stats_says_where() {
    let d = TestDaemon::start().await;
    let url = d.url(Transport::Unix);
    let responder = Client::connect(&url).await.unwrap();
    let mut svc = responder.serve("ledger.svc").await.unwrap();
    let requester = Client::connect(&url).await.unwrap();
    let asking = {
        let requester = requester.clone();
        tokio::spawn(async move { requester.request("ledger.svc", "a").await })
    };
    let call = svc.next().await.expect("the call");
    call.respond("b").await.unwrap();
    assert!(asking.await.unwrap().is_ok());
    // One answered; the next fails as its responder goes.
    let asking = {
        let requester = requester.clone();
        tokio::spawn(async move { requester.request("ledger.svc", "c").await })
    };
    let unanswered = svc.next().await.expect("the second call");
    drop((unanswered, svc, responder));
    let gone = asking.await.unwrap().expect_err("its responder left");
    assert_eq!(gone.kind(), busd_client::ErrorKind::ResponderGone);
    let stats = requester.ctl(CtlCommand::Stats).await.unwrap();
    let n = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
    };
    assert_eq!(
        (n("requests"), n("replies"), n("responder_gone")),
        (2, 1, 1)
    );
    let ended = n("replies") + n("timeouts") + n("responder_gone") + n("requester_gone");
    assert_eq!(n("requests"), ended + n("pending_requests"), "{stats}");
    for key in ["written", "dropped", "discarded", "failed", "queued"] {
        let _ = n(key);
    }
}

#[tokio::test]
async fn an_sdk_subscriber_is_told_every_drop_the_daemon_counts() {
    let d = TestDaemon::start_with(small_queues).await;
    let url = d.url(Transport::Unix);
    let sub_client = Client::connect(&url).await.unwrap();
    let options = busd_client::SubscribeOptions {
        overflow: Overflow::DropOldest,
        ..Default::default()
    };
    let mut sub = sub_client.subscribe_with("sdk.lag", options).await.unwrap();
    let publisher = Client::connect(&url).await.unwrap();
    // More than the SDK's inbox, the socket and an 8-message queue hold,
    // while nobody reads.
    const N: u64 = 30_000;
    for _ in 0..N {
        publisher.publish("sdk.lag", vec![3; 1024]).await.unwrap();
    }
    publisher.flush().await.unwrap();
    let mut got = 0;
    while got + sub.dropped() < N {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("the subscription ended"),
            Err(_) => panic!("stuck at {got} got, {} told dropped", sub.dropped()),
        }
    }
    let counts = d.daemon().deliveries();
    assert!(sub.dropped() > 0);
    assert_eq!((got, sub.dropped()), (counts.written, counts.dropped));
}
