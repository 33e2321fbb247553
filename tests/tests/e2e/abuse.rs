//! Abuse by a local client, on every transport where it matters: a flood
//! of requests past the per-connection cap. The abuser is refused on its
//! own connection, with an error its SDK can branch on, and everyone else
//! is served as before.

use std::time::Duration;

use busd_client::{Client, ErrorKind, RequestOptions, Status};
use busd_e2e::access::{next_call, within};
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

/// `limits.max_pending_requests` in these tests.
const CAP: usize = 4;

async fn connect(d: &TestDaemon, t: Transport) -> Client {
    within(&format!("{t:?} connect"), Client::connect(&d.url(t)))
        .await
        .expect("connect")
}

/// Requests that only an immediate answer can finish.
fn an_hour() -> RequestOptions {
    RequestOptions {
        timeout: Some(Duration::from_secs(3600)),
        ..RequestOptions::default()
    }
}

#[tokio::test]
async fn a_request_flood_past_the_pending_cap_gets_limit_exceeded() {
    let d = TestDaemon::start_with(|c| c.limits.max_pending_requests = CAP).await;
    for t in Transport::ALL {
        // A service that holds every call, and one that answers at once.
        let sink = connect(&d, t).await;
        let mut held_calls = sink.serve("flood.sink").await.unwrap();
        let echo = connect(&d, t).await;
        let mut answering = echo.serve("flood.echo").await.unwrap();
        tokio::spawn(async move {
            while let Some(req) = answering.next().await {
                let payload = req.payload.clone();
                let _ = req.respond(payload).await;
            }
        });

        let attacker = connect(&d, t).await;
        let mut pending = Vec::new();
        for i in 0..CAP {
            let attacker = attacker.clone();
            pending.push(tokio::spawn(async move {
                attacker
                    .request_with("flood.sink", format!("{i}"), an_hour())
                    .await
            }));
        }
        // Every one of them is in flight: the sink holds its call.
        let mut calls = Vec::new();
        for _ in 0..CAP {
            calls.push(next_call(&mut held_calls, "a held call").await);
        }
        // One more is refused at once, whatever service it asks.
        for service in ["flood.sink", "flood.echo"] {
            let e = within(
                "the request past the cap",
                attacker.request_with(service, "one too many", an_hour()),
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{t:?} {service}: {e}");
        }

        // Another connection of the same uid has its own budget.
        let bystander = connect(&d, t).await;
        let resp = within(
            "the bystander's answer",
            bystander.request("flood.echo", "hi"),
        )
        .await
        .unwrap();
        assert_eq!(
            (resp.status, &resp.payload[..]),
            (Status::Success, &b"hi"[..])
        );

        // An answer frees its slot at once; the refusals held nothing.
        calls.pop().unwrap().respond("done").await.unwrap();
        let resp = within(
            "a request after an answer",
            attacker.request("flood.echo", "again"),
        )
        .await
        .unwrap();
        assert_eq!(&resp.payload[..], b"again", "{t:?}");
        for call in calls {
            call.respond("done").await.unwrap();
        }
        for p in pending {
            let resp = within("a held request", p).await.unwrap().unwrap();
            assert_eq!(&resp.payload[..], b"done", "{t:?}");
        }
    }
    assert_eq!(d.daemon().stats().requests_over_limit, 2 * 3);
}
