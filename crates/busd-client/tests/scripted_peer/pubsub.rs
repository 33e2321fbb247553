//! Publish and subscribe against the scripted peer: a subscription is confirmed
//! by the Pong after its Sub, delivers in order, counts Dropped notices and
//! unsubscribes on drop; publishes are checked before they reach the wire;
//! a full subscriber pushes back on the connection without losing messages.

use busd_client::{ErrorKind, Headers, Overflow, SubscribeOptions};
use busd_proto::{ErrorCode, Ref};

use super::*;

#[tokio::test]
async fn handshake_subscribe_confirmation_and_ordered_delivery() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    assert_eq!(client.client_id(), 7);
    assert_eq!(client.server_limits(), LIMITS);

    // subscribe() returns only after the Pong that follows its Sub.
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("weather.*").await }
    });
    let sub_op = conn.recv().await.op;
    let Op::Sub {
        sid,
        ref subject,
        ref queue,
        overflow,
    } = sub_op
    else {
        panic!("expected Sub, got {sub_op:?}");
    };
    assert_eq!(subject.as_str(), "weather.*");
    assert_eq!((queue.clone(), overflow), (None, Overflow::Disconnect));
    assert_eq!(conn.recv().await.op, Op::Ping);
    tokio::task::yield_now().await;
    assert!(!subscribing.is_finished(), "confirmed before the Pong");
    conn.send(Op::Pong).await;
    let mut sub = subscribing.await.unwrap().unwrap();

    for i in 0..500u32 {
        conn.msg(sid, "weather.paris", i.to_be_bytes().to_vec())
            .await;
    }
    for i in 0..500u32 {
        let message = tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.subject.as_str(), "weather.paris");
        assert_eq!(message.from, sender());
        assert_eq!(&message.payload[..], &i.to_be_bytes());
    }

    // Dropped notices add up; the Ping makes sure the client has read them.
    conn.send(Op::Dropped { sid, count: 3 }).await;
    conn.send(Op::Dropped { sid, count: 2 }).await;
    conn.send(Op::Ping).await;
    assert_eq!(conn.recv().await.op, Op::Pong);
    assert_eq!(sub.dropped(), 5);

    // Dropping the subscriber unsubscribes.
    drop(sub);
    assert_eq!(conn.recv().await.op, Op::Unsub { sid });
}

#[tokio::test]
async fn publish_validates_locally_and_keeps_order() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;

    for bad in ["weather.*", "weather.>", "weather..paris", ""] {
        let err = client.publish(bad, "x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubject, "{bad:?}");
    }
    let err = client
        .publish("big.payload", vec![0u8; LIMITS.max_frame as usize])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FrameTooLarge);

    let mut headers = Headers::new();
    headers.insert("k".into(), "v".into());
    client.publish("a.b", "one").await.unwrap();
    client
        .publish_with_headers("a.c", headers.clone(), "two")
        .await
        .unwrap();
    let flushing = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    // Nothing of the refused publishes reached the wire.
    let first = conn.recv().await;
    assert_eq!(
        first.op,
        Op::Pub {
            subject: Subject::from_static("a.b"),
            headers: None
        }
    );
    assert_eq!(&first.payload[..], b"one");
    let second = conn.recv().await;
    assert_eq!(
        second.op,
        Op::Pub {
            subject: Subject::from_static("a.c"),
            headers: Some(headers)
        }
    );
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Pong).await;
    flushing.await.unwrap().unwrap();
}

#[tokio::test]
async fn subscription_refused_by_the_daemon() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move {
            let options = SubscribeOptions {
                queue: Some("workers".into()),
                overflow: Overflow::DropOldest,
            };
            client.subscribe_with("jobs.>", options).await
        }
    });
    let op = conn.recv().await.op;
    let Op::Sub {
        sid,
        queue,
        overflow,
        ..
    } = op
    else {
        panic!("{op:?}")
    };
    assert_eq!(
        (queue.as_deref(), overflow),
        (Some("workers"), Overflow::DropOldest)
    );
    assert_eq!(conn.recv().await.op, Op::Ping);
    conn.send(Op::Error {
        code: ErrorCode::LimitExceeded,
        message: "too many subscriptions".into(),
        refers: Some(Ref::Sid(sid)),
    })
    .await;
    conn.send(Op::Pong).await;
    let err = subscribing.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert!(err.to_string().contains("too many subscriptions"), "{err}");
}

#[tokio::test]
async fn a_full_subscriber_pushes_back_without_losing_messages() {
    const COUNT: u32 = 9000; // more than a subscription's channel holds
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("flood").await }
    });
    let sid = sid_of(&conn.confirm().await);
    let mut sub = subscribing.await.unwrap().unwrap();

    let PeerConn {
        mut reader,
        mut writer,
    } = conn;
    let flooding = tokio::spawn(async move {
        for i in 0..COUNT {
            let op = Op::Msg {
                sid,
                subject: Subject::from_static("flood"),
                from: sender(),
                headers: None,
            };
            let frame = Frame::with_payload(op, Bytes::from(i.to_be_bytes().to_vec()));
            writer.feed(frame).await.unwrap();
        }
        writer.send(Frame::new(Op::Ping)).await.unwrap();
        writer
    });
    let _writer = tokio::time::timeout(STEP, flooding).await.unwrap().unwrap();

    // While deliveries wait for room, commands still go out.
    client.publish("meanwhile", "still writing").await.unwrap();
    let frame = tokio::time::timeout(STEP, reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&frame.payload[..], b"still writing");

    for i in 0..COUNT {
        let message = tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&message.payload[..], &i.to_be_bytes(), "message {i}");
    }
    // The peer's Ping came after every message, so its Pong does too.
    let frame = tokio::time::timeout(STEP, reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.op, Op::Pong);
    assert_eq!(sub.dropped(), 0);
}
