//! Publishes and requests cross between hosts, both ways, as the access
//! rules allow; the sender's identity arrives; NATS's own clients reach
//! local services and local clients reach NATS services.

use busd_client::{ErrorKind, RequestOptions, Status};
use busd_e2e::access::{assert_nothing_delivered, next_msg, within};
use bytes::Bytes;
use futures::StreamExt;

use crate::fleet::{BRIDGE, Fleet, SENSOR, SPY, first_answer};

/// Serves `name` on `client` until the test ends, answering each call with
/// who called (the proven caller, and the remote one a bridge relays for).
async fn serve_whoami(client: &busd_client::Client, name: &str) {
    let mut svc = client.serve(name).await.expect("serve");
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let from = req.from.pfn.as_ref().map(ToString::to_string);
            let body = format!(
                "{}|{}",
                from.unwrap_or_default(),
                req.relayed_for().unwrap_or("-")
            );
            let _ = req.respond(body).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn publishes_cross_hosts_as_the_rules_allow_with_the_sender_named() {
    let fleet = Fleet::start(&["h1", "h2"], "").await;
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (sensor1, spy1) = (h1.client(SENSOR).await, h1.client(SPY).await);
    let (sensor2, spy2) = (h2.client(SENSOR).await, h2.client(SPY).await);
    let mut got = sensor2.subscribe("host.h1.telemetry.>").await.unwrap();
    let mut snooped = spy2.subscribe("host.h1.telemetry.>").await.unwrap();

    // NATS spreads the subscriptions' interest over the cluster on its
    // own time: publish until the first crosses.
    within("the first crossing", async {
        loop {
            sensor1.publish("telemetry.warmup", "w").await.unwrap();
            let next = tokio::time::timeout(std::time::Duration::from_millis(200), got.next());
            if next.await.is_ok() {
                return;
            }
        }
    })
    .await;

    // A package the bridge's rules do not name cannot send out: its
    // publish, routed first, never reaches the other host.
    spy1.publish("telemetry.temp", "from the spy")
        .await
        .unwrap();
    spy1.flush().await.unwrap();
    sensor1.publish("telemetry.temp", "21").await.unwrap();
    // Warm-ups still on their way are skipped; the spy's would come first.
    let msg = loop {
        let msg = next_msg(&mut got, "the sensor's reading on h2").await;
        if msg.subject.as_str() != "host.h1.telemetry.warmup" {
            break msg;
        }
    };
    assert_eq!(msg.subject.as_str(), "host.h1.telemetry.temp");
    assert_eq!(msg.payload, Bytes::from_static(b"21"));
    assert_eq!(msg.from.pfn.as_ref().map(|p| p.as_str()), Some(BRIDGE));
    let remote = format!("h1/{SENSOR}");
    assert_eq!(msg.relayed_for(), Some(remote.as_str()));
    // Nor receive in: h2's bridge may not deliver to the spy there.
    assert_nothing_delivered(&spy2, &mut snooped, "the spy on h2").await;

    // From a plain NATS client into both hosts, to whom the rules allow.
    let nats = fleet.nats(3).await;
    let mut alerts = sensor2.subscribe("fleet.alerts.>").await.unwrap();
    let mut spied = spy2.subscribe("fleet.alerts.>").await.unwrap();
    within("an alert crossing in", async {
        loop {
            nats.publish("fleet.alerts.fire", "hall 3".into())
                .await
                .unwrap();
            nats.flush().await.unwrap();
            let next = tokio::time::timeout(std::time::Duration::from_millis(200), alerts.next());
            if let Ok(Some(m)) = next.await {
                assert_eq!(m.payload, Bytes::from_static(b"hall 3"));
                assert_eq!(m.from.pfn.as_ref().map(|p| p.as_str()), Some(BRIDGE));
                assert_eq!(m.relayed_for(), None, "a plain NATS client names nobody");
                return;
            }
        }
    })
    .await;
    assert_nothing_delivered(&spy2, &mut spied, "the spy's alerts on h2").await;

    let (b1, b2) = (h1.bridge().await, h2.bridge().await);
    assert!(b1["msgs_out"].as_u64() >= Some(2), "{b1}");
    assert!(b2["msgs_in"].as_u64() >= Some(2), "{b2}");
    assert_eq!(b1["dropped_out"], 0, "{b1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn requests_cross_both_ways_with_every_outcome_mapped() {
    let fleet = Fleet::start(&["h1", "h2"], "").await;
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (sensor1, spy1) = (h1.client(SENSOR).await, h1.client(SPY).await);
    let (sensor2, spy2) = (h2.client(SENSOR).await, h2.client(SPY).await);
    serve_whoami(&sensor1, "svc.inventory.whoami").await;
    let mut broken = sensor1.serve("svc.inventory.broken").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = broken.next().await {
            let _ = req.respond_failure("out of stock").await;
        }
    });
    let mut silent = sensor1.serve("svc.inventory.silent").await.unwrap();
    // Holds its calls unanswered until the test ends.
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(req) = silent.next().await {
            held.push(req);
        }
    });

    // h2 → h1 (local → NATS → local), once NATS knows h1's bridge serves.
    let remote = "host.h1.svc.inventory.whoami";
    let answer = first_answer(&sensor2, remote, b"?").await;
    let expected = format!("{BRIDGE}|h2/{SENSOR}");
    assert_eq!(
        answer.payload,
        Bytes::from(expected),
        "the service sees the bridge, for the remote caller"
    );
    let none = sensor2.request("host.h1.svc.inventory.none", "?").await;
    assert_eq!(
        none.unwrap_err().kind(),
        ErrorKind::NoResponders,
        "h1 answered NoResponders"
    );
    let failed = sensor2
        .request("host.h1.svc.inventory.broken", "?")
        .await
        .unwrap();
    assert_eq!(
        (failed.status, &failed.payload[..]),
        (Status::Failure, &b"out of stock"[..])
    );
    let quick = RequestOptions {
        timeout: Some(std::time::Duration::from_millis(500)),
        headers: None,
    };
    let late = sensor2
        .request_with("host.h1.svc.inventory.silent", "?", quick)
        .await;
    assert_eq!(late.unwrap_err().kind(), ErrorKind::Timeout);
    // The spy may not call out through h2's bridge.
    let denied = spy2.request(remote, "?").await;
    assert_eq!(denied.unwrap_err().kind(), ErrorKind::NotAuthorized);

    // A NATS service, called from h1; and NoResponders when there is none.
    let nats = fleet.nats(2).await;
    let mut stock = nats.subscribe("svc.remote.stock").await.unwrap();
    let responder = nats.clone();
    tokio::spawn(async move {
        while let Some(m) = stock.next().await {
            let sender = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Busd-Sender").map(|v| v.to_string()));
            let body = format!("12|{}", sender.unwrap_or_default());
            let _ = responder.publish(m.reply.unwrap(), body.into()).await;
        }
    });
    nats.flush().await.unwrap();
    let answer = first_answer(&sensor1, "svc.remote.stock", b"?").await;
    assert_eq!(answer.payload, Bytes::from(format!("12|h1/{SENSOR}")));
    let none = sensor1.request("svc.remote.nothing", "?").await;
    assert_eq!(
        none.unwrap_err().kind(),
        ErrorKind::NoResponders,
        "NATS had no responders"
    );
    let denied = spy1.request("svc.remote.stock", "?").await;
    assert_eq!(denied.unwrap_err().kind(), ErrorKind::NotAuthorized);

    // A plain NATS client calls h1's service, and reads how it ended.
    let reply = nats.request(remote.to_owned(), "?".into()).await.unwrap();
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Busd-Status").map(|v| v.to_string()));
    assert_eq!(status.as_deref(), Some("Success"));
    assert_eq!(reply.payload, Bytes::from(format!("{BRIDGE}|-")));
    let reply = nats
        .request("host.h1.svc.inventory.none".to_owned(), "?".into())
        .await
        .unwrap();
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Busd-Status").map(|v| v.to_string()));
    assert_eq!(status.as_deref(), Some("NoResponders"));

    let (b1, b2) = (h1.bridge().await, h2.bridge().await);
    assert!(b1["calls_in"].as_u64() >= Some(4), "{b1}");
    assert!(b2["calls_out"].as_u64() >= Some(4), "{b2}");
    held.abort();
}
