//! The Prometheus endpoint (`[metrics] listen`): scraped over HTTP as
//! Prometheus does, parsed with a strict OpenMetrics parser, and checked
//! against what the clients did.

use busd_client::ErrorKind;
use busd_e2e::access::{config_toml, next_call, next_msg, poll_until, within};
use busd_e2e::{Package, TestDaemon, Transport};
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SENDER: &str = "Metrics.Sender_8wekyb3d8bbwe";
const RECEIVER: &str = "Metrics.Receiver_8wekyb3d8bbwe";
const BARRED: &str = "Metrics.Barred_8wekyb3d8bbwe";

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// `GET path` over HTTP/1.1; the status line and the body.
async fn get(d: &TestDaemon, path: &str) -> (String, String) {
    let addr = d.daemon().metrics_addr().expect("metrics served");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    within("the metrics answer", stream.read_to_string(&mut response))
        .await
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    let status = head.lines().next().unwrap_or_default().to_owned();
    assert!(
        status.contains("200") || path != "/metrics",
        "{status}: {body}"
    );
    if path == "/metrics" {
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
    }
    (status, body.to_owned())
}

async fn scrape(d: &TestDaemon) -> Exposition {
    let (_, body) = get(d, "/metrics").await;
    openmetrics_parser::openmetrics::parse_openmetrics(&body)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{body}"))
}

/// The value of `family`'s sample whose labels include `labels` (0 when
/// there is none: a counter not yet started).
fn value(metrics: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    let family = metrics
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    family
        .iter_samples()
        .find(|s| {
            let set = s.get_labelset().expect("labels");
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map_or(0.0, |s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(g) => g.as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap_or_default() as f64,
            other => panic!("unexpected value {other:?}"),
        })
}

/// Scrapes until `ready` holds (a session adds its counts when it has
/// handled what it read), bounded.
async fn scrape_until(d: &TestDaemon, ready: impl Fn(&Exposition) -> bool) -> Exposition {
    poll_until("the metrics wanted", || scrape(d), ready).await
}

#[tokio::test]
async fn the_metrics_endpoint_counts_traffic_requests_and_refusals_by_identity() {
    let packages = [
        Package::new(SENDER).sends_to(&[RECEIVER, BARRED]),
        Package::new(RECEIVER).accepts(&[SENDER]),
        Package::new(BARRED),
    ];
    let toml = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        config_toml("same-uid", &packages)
    );
    let d = TestDaemon::start_with_packages_toml(&toml, &packages).await;
    let t = Transport::Unix;
    let sender = d.connect_as(t, &packages[0]).await;
    let receiver = d.connect_as(t, &packages[1]).await;
    let barred = d.connect_as(t, &packages[2]).await;
    let mut sub = receiver.subscribe("metrics.>").await.expect("subscribe");
    let _denied = barred.subscribe("metrics.>").await.expect("subscribe");
    barred.flush().await.expect("flush");
    for _ in 0..3 {
        sender.publish("metrics.tick", "x").await.expect("publish");
    }
    for _ in 0..3 {
        next_msg(&mut sub, "a message").await;
    }
    // One request answered, one failed by its service, one with no service.
    let mut svc = receiver.serve("metrics.svc").await.expect("serve");
    receiver.flush().await.expect("flush");
    let answered = tokio::spawn(async move {
        next_call(&mut svc, "a call")
            .await
            .respond("ok")
            .await
            .unwrap();
        next_call(&mut svc, "a call")
            .await
            .respond_failure("no")
            .await
            .unwrap();
        svc
    });
    sender.request("metrics.svc", "1").await.expect("answered");
    sender
        .request("metrics.svc", "2")
        .await
        .expect("a Failure is an answer");
    let _svc = answered.await.expect("service task");
    let none = sender.request("metrics.nobody", "3").await.unwrap_err();
    assert_eq!(none.kind(), ErrorKind::NoResponders);
    // A wrong token is refused and counted.
    let wrong = d
        .try_connect_token(t, SENDER, &packages[1].token_rel())
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::AuthFailed);

    let metrics = scrape_until(&d, |m| {
        value(m, "busd_messages_published", &[("identity", SENDER)]) == 3.0
    })
    .await;
    assert_eq!(
        value(&metrics, "busd_messages_denied", &[("identity", SENDER)]),
        3.0
    );
    assert_eq!(
        value(
            &metrics,
            "busd_messages_delivered",
            &[("identity", RECEIVER)]
        ),
        3.0
    );
    assert_eq!(
        value(&metrics, "busd_messages_delivered", &[("identity", BARRED)]),
        0.0
    );
    assert_eq!(
        value(
            &metrics,
            "busd_connections",
            &[("identity", RECEIVER), ("transport", "unix")]
        ),
        1.0
    );
    assert_eq!(
        value(&metrics, "busd_requests", &[("status", "success")]),
        1.0
    );
    assert_eq!(
        value(&metrics, "busd_requests", &[("status", "failure")]),
        1.0
    );
    assert_eq!(
        value(&metrics, "busd_requests", &[("status", "no_responders")]),
        1.0
    );
    assert_eq!(value(&metrics, "busd_request_duration_seconds", &[]), 2.0);
    let reason = "the token proof does not match";
    assert_eq!(
        value(&metrics, "busd_auth_failures", &[("reason", reason)]),
        1.0
    );
    assert!(value(&metrics, "busd_received_bytes", &[("identity", SENDER)]) > 0.0);
    assert!(value(&metrics, "busd_sent_bytes", &[("identity", RECEIVER)]) > 0.0);

    // A client that leaves keeps its counts: counters never go back.
    drop(sender);
    let metrics = scrape_until(&d, |m| {
        value(
            m,
            "busd_connections",
            &[("identity", SENDER), ("transport", "unix")],
        ) == 0.0
    })
    .await;
    assert_eq!(
        value(&metrics, "busd_messages_published", &[("identity", SENDER)]),
        3.0
    );
    assert_eq!(
        value(&metrics, "busd_messages_denied", &[("identity", SENDER)]),
        3.0
    );

    let (status, body) = get(&d, "/").await;
    assert!(status.contains("404"), "{status}: {body}");
}

#[tokio::test]
async fn metrics_are_served_on_loopback_only() {
    let e = busd_daemon::Config::parse("test.toml", "[metrics]\nlisten = \"0.0.0.0:9271\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("metrics.listen: 0.0.0.0:9271 is not a loopback address"),
        "{e}"
    );
    // Off unless asked for.
    let d = TestDaemon::start().await;
    assert_eq!(d.daemon().metrics_addr(), None);
}

#[tokio::test]
async fn a_bridge_shows_its_state_and_every_message_held_or_dropped() {
    use busd_e2e::bridge_rules::{BRIDGE, packages};
    let mut toml = config_toml("same-uid", &packages());
    // Nothing listens at port 1: the bridge never connects.
    toml += &format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n[[bridge]]\nname = \"fleet\"\n\
         nats = [\"nats://127.0.0.1:1\"]\npfn = \"{BRIDGE}\"\nexport = [\"telemetry.>\"]\nbuffer = 1\n"
    );
    let d = TestDaemon::start_with_packages_toml(&toml, &packages()).await;
    let sensor = d.connect_as(Transport::Unix, &packages()[1]).await;
    let fleet = [("bridge", "fleet")];
    let held_or_dropped = |m: &Exposition| {
        value(m, "busd_bridge_buffered", &fleet)
            + value(
                m,
                "busd_bridge_dropped",
                &[("bridge", "fleet"), ("direction", "out")],
            )
    };
    // Publishes until the bridge's subscription is in, then three more.
    let m = within("the bridge's subscription", async {
        loop {
            sensor.publish("telemetry.x", "x").await.unwrap();
            sensor.flush().await.unwrap();
            let m = scrape(&d).await;
            if held_or_dropped(&m) >= 1.0 {
                return m;
            }
        }
    })
    .await;
    let before = held_or_dropped(&m);
    for _ in 0..3 {
        sensor.publish("telemetry.x", "x").await.unwrap();
    }
    let m = scrape_until(&d, |m| held_or_dropped(m) == before + 3.0).await;
    assert_eq!(value(&m, "busd_bridge_buffered", &fleet), 1.0, "its bound");
    let state = |s: &str| {
        value(
            &m,
            "busd_bridge_state",
            &[("bridge", "fleet"), ("state", s)],
        )
    };
    assert_eq!((state("connecting"), state("connected")), (1.0, 0.0));
    let out = [("bridge", "fleet"), ("direction", "out")];
    assert_eq!(value(&m, "busd_bridge_messages", &out), 0.0);
    assert_eq!(value(&m, "busd_bridge_reconnects", &fleet), 0.0);
}
