//! The whole cluster out of reach of one host (its link down): local
//! traffic there goes on at the speed it had, the bridge holds what it
//! can for NATS and drops the rest, counted exactly, and what it held
//! crosses once the host is back.

use std::time::{Duration, Instant};

use busd_client::{Client, Overflow, SubscribeOptions, Subscriber};
use busd_e2e::access::{next_msg, poll_until, within};
use futures::{FutureExt, StreamExt};

use crate::fleet::{Fleet, SENSOR};

/// The bridge's buffer in this test, in messages.
const BUFFER: u64 = 500;
/// Messages published locally in each phase.
const COUNT: u64 = 20_000;

/// Publishes `COUNT` messages on `subject` from `publisher` until `local`
/// has them all; messages per second.
async fn local_rate(publisher: &Client, local: &mut Subscriber, subject: &str) -> f64 {
    let started = Instant::now();
    let send = async {
        for i in 0..COUNT {
            publisher.publish(subject, i.to_string()).await.unwrap();
        }
    };
    let receive = async {
        for i in 0..COUNT {
            let m = next_msg(local, "a local delivery").await;
            assert_eq!(
                m.payload,
                i.to_string().into_bytes(),
                "local order, nothing lost"
            );
        }
    };
    tokio::join!(send, receive);
    COUNT as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn a_host_cut_off_the_cluster_keeps_local_speed_and_counts_each_drop() {
    let extra = format!("buffer = {BUFFER}");
    let fleet = Fleet::start(&["h1", "h2"], &extra).await;
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (publisher, reader) = (h1.client(SENSOR).await, h1.client(SENSOR).await);
    let mut local = reader.subscribe("telemetry.>").await.unwrap();
    let remote_reader = h2.client(SENSOR).await;
    let options = SubscribeOptions {
        queue: None,
        overflow: Overflow::DropOldest,
    };
    let mut remote = (remote_reader)
        .subscribe_with("host.h1.telemetry.outage", options)
        .await
        .unwrap();
    // Until NATS carries h2's interest to h1's node.
    within("the first crossing", async {
        loop {
            publisher
                .publish("telemetry.outage", "warm-up")
                .await
                .unwrap();
            let _ = next_msg(&mut local, "the warm-up here").await;
            let next = tokio::time::timeout(Duration::from_millis(200), remote.next());
            if next.await.is_ok() {
                return;
            }
        }
    })
    .await;

    let before = local_rate(&publisher, &mut local, "telemetry.load").await;
    poll_until("the bridge drained", || h1.bridge(), |b| b["buffered"] == 0).await;
    while remote.next().now_or_never().flatten().is_some() {}

    h1.host.cut();
    let cut = h1.bridge_in("disconnected").await;
    let dropped_before = cut["dropped_out"].as_u64().unwrap();
    let during = local_rate(&publisher, &mut local, "telemetry.outage").await;
    let b = poll_until(
        "every drop counted",
        || h1.bridge(),
        |b| b["dropped_out"].as_u64() == Some(dropped_before + COUNT - BUFFER),
    )
    .await;
    assert_eq!(b["buffered"], BUFFER, "{b}");
    let ratio = during / before;
    println!(
        "local pub/sub on h1: {before:.0} msgs/s before, {during:.0} msgs/s with the cluster cut off (x{ratio:.2})"
    );
    // Not a speed benchmark: a stall detector. A bridge that held local
    // publishers up (a blocked queue, a full buffer waited on) would be
    // orders of magnitude slower here, not a few tens of percent.
    assert!(ratio > 0.3, "local traffic slowed down: x{ratio:.2}");

    h1.host.restore();
    h1.bridge_in("connected").await;
    // Exactly what the buffer held crosses, in order: the first BUFFER.
    let mut received = Vec::new();
    while received.len() < BUFFER as usize {
        let m = next_msg(&mut remote, "a buffered message on h2").await;
        // A warm-up that was still on its way before the cut.
        if &m.payload[..] != b"warm-up" {
            received.push(m);
        }
    }
    for (i, m) in (0..BUFFER).zip(&received) {
        assert_eq!(
            m.payload,
            i.to_string().into_bytes(),
            "the first {BUFFER}, in order"
        );
    }
    publisher
        .publish("telemetry.outage", "after")
        .await
        .unwrap();
    let m = next_msg(&mut remote, "the first message after").await;
    assert_eq!(&m.payload[..], b"after", "nothing past the buffer crossed");
    let b = h1.bridge().await;
    assert_eq!(
        b["dropped_out"].as_u64(),
        Some(dropped_before + COUNT - BUFFER),
        "{b}"
    );
    assert!(b["reconnects"].as_u64() >= Some(1), "{b}");
    assert_eq!(remote.dropped(), 0, "h2's reader kept up");
}
