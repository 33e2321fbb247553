//! Request/reply through a real daemon, on every transport.

use std::time::Duration;

use busd_client::{Client, ErrorKind, RequestOptions, Status};
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

async fn connect(d: &TestDaemon, t: Transport) -> Client {
    Client::connect(&d.url(t)).await.expect("connect")
}

/// Serves `service` on `client` (registered when this returns), answering
/// "<prefix>:<payload>".
async fn spawn_responder(client: &Client, service: &'static str, prefix: &'static str) {
    let mut svc = client.serve(service).await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let body = format!("{prefix}:{}", String::from_utf8_lossy(&req.payload));
            req.respond(body).await.unwrap();
        }
    });
}

#[tokio::test]
async fn requests_are_answered_round_robin() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (r1, r2) = (connect(&d, t).await, connect(&d, t).await);
        spawn_responder(&r1, "contoso.weather.forecast", "one").await;
        spawn_responder(&r2, "contoso.weather.forecast", "two").await;
        let asker = connect(&d, t).await;
        let mut answers = Vec::new();
        for i in 0..4 {
            let resp = asker
                .request("contoso.weather.forecast", format!("{i}"))
                .await
                .unwrap();
            assert_eq!(resp.status, Status::Success);
            answers.push(String::from_utf8(resp.payload.to_vec()).unwrap());
        }
        let ones = answers.iter().filter(|a| a.starts_with("one:")).count();
        assert_eq!(ones, 2, "{t:?}: {answers:?}");
        assert!(
            answers
                .iter()
                .enumerate()
                .all(|(i, a)| a.ends_with(&format!(":{i}")))
        );
    }
}

#[tokio::test]
async fn service_failure_travels_in_the_response() {
    let d = TestDaemon::start().await;
    let responder = connect(&d, Transport::Unix).await;
    let mut svc = responder.serve("fragile").await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            req.respond_failure("city unknown").await.unwrap();
        }
    });
    let asker = connect(&d, Transport::Tcp).await;
    let resp = asker.request("fragile", "Atlantis").await.unwrap();
    assert_eq!(resp.status, Status::Failure);
    assert_eq!(&resp.payload[..], b"city unknown");
}

#[tokio::test]
async fn nobody_serving_answers_no_responders_at_once() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let c = connect(&d, t).await;
        let options = RequestOptions {
            timeout: Some(Duration::from_secs(3600)),
            ..RequestOptions::default()
        };
        // With an hour's timeout, only an immediate answer can finish this.
        let e = tokio::time::timeout(
            Duration::from_secs(30),
            c.request_with("nobody.home", "?", options),
        )
        .await
        .expect("answered at once, not at the timeout")
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoResponders, "{t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn unanswered_request_times_out() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let responder = connect(&d, t).await;
        let mut svc = responder.serve("silent").await.unwrap();
        let asker = connect(&d, t).await;
        let options = RequestOptions {
            timeout: Some(Duration::from_millis(250)),
            ..RequestOptions::default()
        };
        let pending =
            tokio::spawn(async move { asker.request_with("silent", "hello?", options).await });
        // The responder got the call but never answers.
        let req = svc.next().await.expect("the call arrives");
        let e = pending.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{t:?}");
        // A late answer is dropped by the daemon and counted.
        req.respond("too late").await.unwrap();
        responder.flush().await.unwrap();
        assert!(d.daemon().stats().late_replies >= 1);
    }
}

#[tokio::test]
async fn responder_that_leaves_fails_the_request_at_once() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let responder = connect(&d, t).await;
        let mut svc = responder.serve("flaky").await.unwrap();
        let asker = connect(&d, t).await;
        let options = RequestOptions {
            timeout: Some(Duration::from_secs(3600)),
            ..RequestOptions::default()
        };
        let pending = tokio::spawn(async move { asker.request_with("flaky", "x", options).await });
        let req = svc.next().await.expect("the call arrives");
        drop(req);
        drop(svc);
        drop(responder); // the connection closes with the call unanswered
        let e = tokio::time::timeout(Duration::from_secs(30), pending)
            .await
            .expect("answered at once, not at the timeout")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResponderGone, "{t:?}");
    }
}

#[tokio::test]
async fn many_concurrent_requests_all_answered() {
    let d = TestDaemon::start().await;
    let responder = connect(&d, Transport::Unix).await;
    spawn_responder(&responder, "echo", "re").await;
    let asker = connect(&d, Transport::Tcp).await;
    let calls = (0..200).map(|i| {
        let a = asker.clone();
        async move { a.request("echo", format!("{i}")).await.map(|r| r.payload) }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), format!("re:{i}").as_bytes());
    }
}
