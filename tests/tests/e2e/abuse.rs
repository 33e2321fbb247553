//! Abuse by a local client: a flood of requests past the per-connection
//! cap, and every other limit. The abuser is refused on its own
//! connection, with an error its SDK can branch on, everyone else is
//! served as before, and the audit log says who it was.

use std::time::Duration;

use busd_client::{Client, ErrorKind, RequestOptions, Status};
use busd_e2e::access::{current_uid, next_call, within};
use busd_e2e::{AuditLog, RawClient, TestDaemon, Transport};
use busd_proto::{ErrorCode, Frame, Op, Subject};
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

/// `uid=… pid=…` as the audit log writes this process's connections: the
/// daemon runs in it, so its clients are this process (no pid over tcp).
fn this_process(t: Transport) -> String {
    match t {
        Transport::Tcp => format!("uid={} limit", current_uid()),
        Transport::Unix | Transport::Shm => {
            format!("uid={} pid={}", current_uid(), std::process::id())
        }
    }
}

#[tokio::test]
async fn a_request_flood_past_the_pending_cap_gets_limit_exceeded() {
    let audit = AuditLog::capture();
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
        let audited_before = audit
            .matching(&["limits.max_pending_requests", &this_process(t)])
            .len();
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
        let audited = ["limits.max_pending_requests", &this_process(t)];
        let records = audit.matching(&audited).len() - audited_before;
        assert_eq!(records, 2, "{t:?}: {:?}", audit.lines());
        for call in calls {
            call.respond("done").await.unwrap();
        }
        for p in pending {
            let resp = within("a held request", p).await.unwrap().unwrap();
            assert_eq!(&resp.payload[..], b"done", "{t:?}");
        }
    }
    assert_eq!(d.daemon().stats().requests_over_limit, 2 * 3);
    // Recorded once per refusal, naming the limit and who hit it.
    assert_eq!(audit.matching(&["refused at a limit"]).len(), 2 * 3);
}

#[tokio::test]
async fn refusals_at_every_limit_are_audited_with_the_client() {
    let audit = AuditLog::capture();
    let d = TestDaemon::start_with(|c| {
        c.limits.max_connections = 2;
        c.limits.max_subscriptions = 1;
        c.limits.max_frame = 4096;
    })
    .await;
    let t = Transport::Unix;
    let who = this_process(t);
    let uid = current_uid();

    // Connections per identity (here, per uid of unpackaged clients).
    let first = connect(&d, t).await;
    let second = connect(&d, t).await;
    let e = within("a third connection", Client::connect(&d.url(t)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    let line = format!("who=unpackaged(uid {uid}) {who}");
    assert_eq!(
        audit
            .matching(&[&line, "limit=\"limits.max_connections\""])
            .len(),
        1,
        "{:?}",
        audit.lines()
    );

    // Subscriptions, counted across the identity's connections.
    let _held = first.subscribe("audit.a").await.unwrap();
    let e = second.subscribe("audit.b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert_eq!(
        audit
            .matching(&[&line, "limit=\"limits.max_subscriptions\""])
            .len(),
        1,
        "{:?}",
        audit.lines()
    );

    // A frame over max_frame after the handshake, and one over
    // max_preauth_frame (4 KiB by default) before it.
    drop(second);
    let (mut raw, _) = within("a raw client", RawClient::connect_hello(&d.url(t))).await;
    let big = Op::Pub {
        subject: Subject::from_static("audit.big"),
        headers: None,
    };
    raw.send_frame(Frame::with_payload(big, RawClient::payload(10_000)))
        .await;
    let frames = within("the close", raw.recv_until_closed()).await;
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::FrameTooLarge)
    );
    let mut raw = RawClient::connect(&d.url(t)).await;
    // (Not u32::MAX: on a unix socket, that opens the shm preface.)
    raw.send_bytes(&100_000_u32.to_be_bytes()).await;
    let frames = within("the close", raw.recv_until_closed()).await;
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::FrameTooLarge)
    );
    let frame_limit = "limit=\"limits.max_frame\"";
    assert_eq!(
        audit.matching(&[&line, frame_limit]).len(),
        1,
        "{:?}",
        audit.lines()
    );
    let preauth_limit = "limit=\"limits.max_preauth_frame\"";
    assert_eq!(
        audit
            .matching(&["who=unauthenticated", &who, preauth_limit])
            .len(),
        1,
        "{:?}",
        audit.lines()
    );
    assert_eq!(audit.matching(&["refused at a limit"]).len(), 4);
}
