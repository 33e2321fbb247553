//! NATS nodes failing under the bridges: one cut off (its link down), one
//! killed. Every request ends within its timeout, with an answer or a
//! clear error, and the bridges find the node left by themselves.

use std::time::{Duration, Instant};

use busd_client::{ErrorKind, RequestOptions};
use busd_e2e::access::{poll_until, within};
use futures::StreamExt;

use crate::fleet::{Fleet, SENSOR};

/// Each request's own timeout.
const TIMEOUT: Duration = Duration::from_secs(2);
/// What a request may take past its timeout before it counts as hanging:
/// the daemon answers at its deadline, so this is scheduling slack only.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn no_request_hangs_while_nodes_fail_and_the_bridges_recover() {
    let mut fleet = Fleet::start(&["h1", "h2"], "").await;
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (sensor1, sensor2) = (h1.client(SENSOR).await, h2.client(SENSOR).await);
    let mut svc = sensor1.serve("svc.inventory.count").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let _ = req.respond("7").await;
        }
    });
    let call = || {
        let options = RequestOptions {
            timeout: Some(TIMEOUT),
            headers: None,
        };
        sensor2.request_with("host.h1.svc.inventory.count", "?", options)
    };
    let _answer = poll_until("a first answer across", call, Result::is_ok).await;

    // Cut the node h2's bridge is on, and kill h1's (or another one).
    let (node2, node1) = (fleet.node_of(h2).await, fleet.node_of(h1).await);
    let killed = if node1 != node2 {
        node1
    } else {
        (1..=3).find(|&i| i != node2).expect("another node")
    };
    let left = (1..=3)
        .find(|&i| i != node2 && i != killed)
        .expect("a node left");
    fleet.cluster.cut(node2);
    fleet.cluster.kill(killed);

    // Calls keep coming, a few at a time, while the bridges notice and
    // move: each ends within its timeout.
    let (mut answered, mut failed) = (0, std::collections::BTreeMap::new());
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let batch = (0..4).map(|_| async {
            let started = Instant::now();
            let ended = tokio::time::timeout(TIMEOUT + SLACK, call()).await;
            (started.elapsed(), ended)
        });
        for (took, ended) in futures::future::join_all(batch).await {
            match ended {
                Err(_) => panic!("a request hung: no end after {took:?}"),
                Ok(Ok(_)) => answered += 1,
                Ok(Err(e)) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::Timeout | ErrorKind::NoResponders),
                        "a clear error: {e}"
                    );
                    *failed.entry(format!("{:?}", e.kind())).or_insert(0) += 1;
                }
            }
        }
    }
    println!("during the failures: {answered} answered; failed: {failed:?}");

    // Both bridges are back, on the node left, without help.
    let url = fleet.cluster.url(left);
    let on_left = |b: &serde_json::Value| {
        b["state"] == "connected" && url.ends_with(b["server"].as_str().unwrap_or("-"))
    };
    // Reconnecting tries the cut node too (5 s to time out), so allow two
    // rounds of the usual wait.
    let b2 = within("h2 back", async {
        loop {
            let b = h2.bridge().await;
            if on_left(&b) {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    within("h1 back", async {
        while !on_left(&h1.bridge().await) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(b2["reconnects"].as_u64() >= Some(1), "{b2}");
    let _answer = poll_until("answers again", call, Result::is_ok).await;
    fleet.cluster.restore(node2);
}
