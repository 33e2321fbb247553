//! Requests and services against the scripted peer: answers and the daemon's
//! verdicts (statuses and refusals), the client's guard timer for a request
//! the daemon never answers, and a service answering each call once.

use busd_client::{ErrorKind, RequestOptions, Status};
use busd_proto::{ErrorCode, Ref};

use super::*;

#[tokio::test]
async fn requests_get_answers_and_daemon_verdicts() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let answers = [
        (Status::Success, "sunny"),
        (Status::Failure, "unknown city"),
        (Status::NoResponders, ""),
        (Status::Timeout, ""),
    ];
    let requesting = tokio::spawn({
        let client = client.clone();
        async move {
            let mut results = Vec::new();
            for _ in 0..answers.len() {
                results.push(client.request("contoso.weather", "paris").await);
            }
            let options = RequestOptions {
                timeout: Some(Duration::from_millis(250)),
                headers: None,
            };
            results.push(
                client
                    .request_with("contoso.weather", "lyon", options)
                    .await,
            );
            results
        }
    });
    for (status, payload) in answers {
        let frame = conn.recv().await;
        let Op::Req {
            rid,
            service,
            timeout_ms,
            ..
        } = frame.op
        else {
            panic!("{:?}", frame.op)
        };
        assert_eq!((service.as_str(), timeout_ms), ("contoso.weather", 5000));
        assert_eq!(&frame.payload[..], b"paris");
        conn.send_with(
            Op::Resp {
                rid,
                status,
                headers: None,
            },
            payload,
        )
        .await;
    }
    let frame = conn.recv().await;
    let Op::Req {
        rid, timeout_ms, ..
    } = frame.op
    else {
        panic!("{:?}", frame.op)
    };
    assert_eq!(timeout_ms, 250);
    conn.send(Op::Error {
        code: ErrorCode::NotAuthorized,
        message: "denied".into(),
        refers: Some(Ref::Rid(rid)),
    })
    .await;

    let results = requesting.await.unwrap();
    let ok = results[0].as_ref().unwrap();
    assert!(ok.is_success());
    assert_eq!(&ok.payload[..], b"sunny");
    let failed = results[1].as_ref().unwrap();
    assert_eq!(
        (failed.status, &failed.payload[..]),
        (Status::Failure, &b"unknown city"[..])
    );
    let kinds: Vec<_> = results[2..]
        .iter()
        .map(|r| r.as_ref().unwrap_err().kind())
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::NoResponders,
            ErrorKind::Timeout,
            ErrorKind::NotAuthorized
        ]
    );
}

#[tokio::test]
async fn guard_timer_fails_a_request_the_daemon_never_answers() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;

    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let options = RequestOptions {
        timeout: Some(Duration::from_secs(2)),
        headers: None,
    };
    let err = client
        .request_with("silent.service", "?", options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The daemon's timeout plus the client's one-second margin.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    tokio::time::resume();

    // A late answer to the forgotten request is ignored; the client goes on.
    let Op::Req { rid, .. } = conn.recv().await.op else {
        panic!("expected Req")
    };
    conn.send(Op::Resp {
        rid,
        status: Status::Success,
        headers: None,
    })
    .await;
    let flushing = tokio::spawn(async move { client.flush().await });
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Pong).await;
    flushing.await.unwrap().unwrap();
}

#[tokio::test]
async fn serving_answers_calls_once() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let serving = tokio::spawn({
        let client = client.clone();
        async move { client.serve("contoso.weather").await }
    });
    let sid = sid_of(&conn.confirm().await);
    let mut service = serving.await.unwrap().unwrap();
    assert!(client.serve("contoso.*").await.is_err(), "wildcard service");

    for (rid, city) in [(41, "paris"), (42, "oslo")] {
        let call = Op::Call {
            rid,
            sid,
            service: Subject::from_static("contoso.weather"),
            from: sender(),
            headers: None,
        };
        conn.send_with(call, city).await;
    }
    let first = service.next().await.unwrap();
    assert_eq!(
        (first.service.as_str(), &first.payload[..]),
        ("contoso.weather", &b"paris"[..])
    );
    first.respond("sunny").await.unwrap();
    let second = service.next().await.unwrap();
    second.respond_failure("no such city").await.unwrap();

    let frame = conn.recv().await;
    assert_eq!(
        frame.op,
        Op::Resp {
            rid: 41,
            status: Status::Success,
            headers: None
        }
    );
    assert_eq!(&frame.payload[..], b"sunny");
    let frame = conn.recv().await;
    assert_eq!(
        frame.op,
        Op::Resp {
            rid: 42,
            status: Status::Failure,
            headers: None
        }
    );

    drop(service);
    assert_eq!(conn.recv().await.op, Op::Unsub { sid });
}
