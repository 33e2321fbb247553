//! Figures for the note, not assertions: a request across hosts
//! through the bridges next to the same call made through NATS alone, and
//! publishes through the bridges next to NATS alone, alternating in one
//! run. `cargo test --test bridge -- --ignored --nocapture figures`.

use std::time::{Duration, Instant};

use busd_client::{Overflow, SubscribeOptions};
use bytes::Bytes;
use futures::StreamExt;

use crate::fleet::{Fleet, SENSOR, first_answer};

const CALLS: usize = 2_000;
const MESSAGES: u64 = 50_000;
const SIZE: usize = 256;
const ROUNDS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for the note; run by hand with --nocapture"]
async fn figures() {
    let fleet = Fleet::start(&["h1", "h2"], "buffer = 100000").await;
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (sensor1, sensor2) = (h1.client(SENSOR).await, h2.client(SENSOR).await);
    let mut svc = sensor1.serve("svc.inventory.echo").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let body = req.payload.clone();
            let _ = req.respond(body).await;
        }
    });
    // NATS alone: a responder on h1's bridge's node, a requester on h2's.
    let (n1, n2) = (fleet.node_of(h1).await, fleet.node_of(h2).await);
    let (nats1, nats2) = (fleet.nats(n1).await, fleet.nats(n2).await);
    let mut echo = nats1.subscribe("direct.echo").await.unwrap();
    let responder = nats1.clone();
    tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            let _ = responder.publish(m.reply.unwrap(), m.payload).await;
        }
    });
    nats1.flush().await.unwrap();
    let payload = Bytes::from(vec![7u8; 128]);
    first_answer(&sensor2, "host.h1.svc.inventory.echo", &payload).await;
    println!("nodes: h1's bridge on nats-{n1}, h2's on nats-{n2}");
    for round in 1..=ROUNDS {
        let mut bridged = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            sensor2
                .request("host.h1.svc.inventory.echo", &payload)
                .await
                .unwrap();
            bridged.push(t.elapsed());
        }
        let mut direct = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            nats2.request("direct.echo", payload.clone()).await.unwrap();
            direct.push(t.elapsed());
        }
        bridged.sort();
        direct.sort();
        println!(
            "round {round} request/reply 128 B: bridged p50 {:.0} µs p99 {:.0} µs; NATS alone p50 {:.0} µs p99 {:.0} µs; p50 ratio x{:.2}",
            percentile(&bridged, 0.5),
            percentile(&bridged, 0.99),
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
            percentile(&bridged, 0.5) / percentile(&direct, 0.5),
        );
    }

    let options = SubscribeOptions {
        queue: None,
        overflow: Overflow::DropOldest,
    };
    let mut remote = sensor2
        .subscribe_with("host.h1.telemetry.tp", options)
        .await
        .unwrap();
    let mut direct_sub = nats2.subscribe("direct.tp").await.unwrap();
    nats2.flush().await.unwrap();
    let body = Bytes::from(vec![1u8; SIZE]);
    for round in 1..=ROUNDS {
        let before = h1.bridge().await;
        let t = Instant::now();
        for _ in 0..MESSAGES {
            sensor1.publish("telemetry.tp", &body).await.unwrap();
        }
        let mut got = 0u64;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), remote.next()).await {
            got += 1;
            if got == MESSAGES {
                break;
            }
        }
        let bridged = got as f64 / t.elapsed().as_secs_f64();
        let after = h1.bridge().await;
        let dropped =
            after["dropped_out"].as_u64().unwrap() - before["dropped_out"].as_u64().unwrap();
        let t = Instant::now();
        for _ in 0..MESSAGES {
            nats1.publish("direct.tp", body.clone()).await.unwrap();
        }
        let mut direct = 0u64;
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_secs(2), direct_sub.next()).await
        {
            direct += 1;
            if direct == MESSAGES {
                break;
            }
        }
        let alone = direct as f64 / t.elapsed().as_secs_f64();
        println!(
            "round {round} pub/sub {SIZE} B: bridged {bridged:.0} msgs/s ({got} of {MESSAGES} arrived, {dropped} dropped by the bridge, {} by h2's reader); NATS alone {alone:.0} msgs/s ({direct} arrived); ratio x{:.2}",
            remote.dropped(),
            bridged / alone
        );
    }
}
