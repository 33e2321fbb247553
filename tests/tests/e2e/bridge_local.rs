//! A `[[bridge]]` as the local bus sees it, with its NATS cluster out of
//! reach (nothing listens at its URL): its package cannot be claimed, only
//! it may relay or name a remote sender, a relayed call fails at once with
//! a clear message, and what it holds for NATS is bounded, every drop
//! counted. The bridge with
//! a real cluster, across hosts: `tests/tests/bridge/`.

use busd_client::{CtlCommand, ErrorKind, Headers, RequestOptions, Status};
use busd_e2e::access::{config_toml, next_msg, poll_until, within};
use busd_e2e::bridge_rules::{BRIDGE, packages};
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

async fn daemon() -> TestDaemon {
    let mut toml = config_toml("same-uid", &packages());
    // Port 1 on loopback: nothing listens, every connect is refused.
    toml += &format!(
        "[[bridge]]\nname = \"fleet\"\nnats = [\"nats://127.0.0.1:1\"]\npfn = \"{BRIDGE}\"\n\
         export = [\"telemetry.>\"]\nimport_services = [\"svc.remote.>\"]\nbuffer = 2\n"
    );
    TestDaemon::start_with_packages_toml(&toml, &packages()).await
}

async fn bridge(d: &TestDaemon) -> serde_json::Value {
    let admin = d.connect_unpackaged(Transport::Unix).await;
    let all = admin.ctl(CtlCommand::Bridges).await.expect("ctl bridges");
    all[0].clone()
}

#[tokio::test]
async fn a_bridges_package_is_the_daemons_alone() {
    let d = daemon().await;
    let b = bridge(&d).await;
    assert_eq!(b["name"], "fleet");
    assert_eq!(b["state"], "connecting", "{b}");
    // No proof can make a client the bridge's package.
    let claim = d.try_connect_peer(Transport::Unix, BRIDGE).await;
    assert_eq!(claim.unwrap_err().kind(), ErrorKind::AuthFailed);
    // Only a bridge relays wildcard names.
    let sensor = d.connect_as(Transport::Unix, &packages()[1]).await;
    let refused = sensor.serve_relay("svc.other.>").await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::InvalidSubject);
}

#[tokio::test]
async fn a_relayed_call_fails_at_once_while_nats_is_away() {
    let d = daemon().await;
    let sensor = d.connect_as(Transport::Unix, &packages()[1]).await;
    // The bridge registers its relay as it starts.
    let answer = poll_until(
        "the bridge's relay",
        || sensor.request("svc.remote.stock", "?"),
        |r| !matches!(r, Err(e) if e.kind() == ErrorKind::NoResponders),
    )
    .await
    .expect("an answer");
    assert_eq!(answer.status, Status::Failure);
    let why = String::from_utf8_lossy(&answer.payload);
    assert!(why.contains("NATS is unreachable"), "{why}");
    assert_eq!(bridge(&d).await["calls_out"], 0, "nothing was sent");
}

#[tokio::test]
async fn only_a_bridge_answers_with_another_bus_status() {
    let d = daemon().await;
    let (a, b) = (
        d.connect_as(Transport::Unix, &packages()[1]).await,
        d.connect_as(Transport::Unix, &packages()[1]).await,
    );
    let mut svc = a.serve("svc.local").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let mut h = Headers::new();
            h.insert("Busd-Status".into(), "NoResponders".into());
            let _ = req.respond_with(Status::Failure, Some(h), "mine").await;
        }
    });
    let answer = b.request("svc.local", "?").await.unwrap();
    assert_eq!(
        answer.status,
        Status::Failure,
        "a package's own Failure stays one"
    );
}

#[tokio::test]
async fn what_waits_for_nats_is_bounded_and_every_drop_counted() {
    let d = daemon().await;
    let sensor = d.connect_as(Transport::Unix, &packages()[1]).await;
    // Once the bridge's subscription is in, every publish reaches it
    // (the probes too are held or dropped, and counted).
    within("the bridge's subscription", async {
        loop {
            sensor.publish("telemetry.probe", "p").await.unwrap();
            sensor.flush().await.unwrap();
            if bridge(&d).await["buffered"].as_u64() >= Some(1) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let before = bridge(&d).await;
    let held = before["buffered"].as_u64().unwrap();
    let dropped = before["dropped_out"].as_u64().unwrap();
    for i in 0..5 {
        sensor.publish("telemetry.x", i.to_string()).await.unwrap();
    }
    let after = poll_until(
        "five more counted",
        || bridge(&d),
        |b| {
            let (h, x) = (b["buffered"].as_u64(), b["dropped_out"].as_u64());
            h.zip(x).is_some_and(|(h, x)| h + x == held + dropped + 5)
        },
    )
    .await;
    assert_eq!(after["buffered"], 2, "the buffer holds its bound: {after}");
    assert_eq!(after["msgs_out"], 0, "{after}");
}

#[tokio::test]
async fn no_local_client_can_pass_as_a_remote_sender() {
    let d = daemon().await;
    let (a, b) = (
        d.connect_as(Transport::Unix, &packages()[1]).await,
        d.connect_as(Transport::Unix, &packages()[1]).await,
    );
    let mut sub = b.subscribe("news.>").await.unwrap();
    let mut forged = Headers::new();
    forged.insert("Busd-Sender".into(), "hq/Contoso.Boss_8wekyb3d8bbwe".into());
    forged.insert("lang".into(), "en".into());
    a.publish_with_headers("news.today", forged.clone(), "hi")
        .await
        .unwrap();
    let msg = next_msg(&mut sub, "the publish").await;
    assert_eq!(msg.relayed_for(), None, "the daemon removed the claim");
    let lang = msg.headers.as_ref().and_then(|h| h.get("lang"));
    assert_eq!(lang.map(String::as_str), Some("en"), "other headers pass");
    // Nor in a request.
    let mut svc = b.serve("svc.whoami").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let remote = req.relayed_for().unwrap_or("-").to_owned();
            let _ = req.respond(remote).await;
        }
    });
    let options = RequestOptions {
        timeout: None,
        headers: Some(forged),
    };
    let answer = a.request_with("svc.whoami", "?", options).await.unwrap();
    assert_eq!(&answer.payload[..], b"-");
}
