//! The connection's life after the handshake: a dropped peer is reconnected
//! and every registration sent again; without reconnect, a lost connection
//! closes the client; dropping the last handle flushes and closes.

use busd_client::ErrorKind;
use busd_proto::ErrorCode;

use super::*;

#[tokio::test]
async fn reconnects_and_registers_again_after_the_peer_drops() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let registering = tokio::spawn({
        let client = client.clone();
        async move {
            let sub = client.queue_subscribe("news.>", "readers").await?;
            let service = client.serve("news.latest").await?;
            Ok::<_, busd_client::Error>((sub, service))
        }
    });
    let sub_op = conn.confirm().await;
    let serve_op = conn.confirm().await;
    let (mut sub, mut service) = registering.await.unwrap().unwrap();
    let call = Op::Call {
        rid: 5,
        sid: sid_of(&serve_op),
        service: Subject::from_static("news.latest"),
        from: sender(),
        headers: None,
    };
    conn.send(call).await;
    let unanswered = tokio::time::timeout(STEP, service.next())
        .await
        .unwrap()
        .unwrap();
    let requesting = tokio::spawn({
        let client = client.clone();
        async move { client.request("news.latest", "?").await }
    });
    assert!(matches!(conn.recv().await.op, Op::Req { .. }));

    // The daemon goes away with a request in flight.
    drop(conn);
    let err = requesting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);

    let (mut conn, _) = peer.accept(8).await;
    assert_eq!(conn.recv().await.op, sub_op, "Sub sent again, same sid");
    assert_eq!(conn.recv().await.op, serve_op, "Serve sent again, same sid");
    conn.msg(sid_of(&sub_op), "news.today", "back").await;
    let message = tokio::time::timeout(STEP, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload[..], b"back");
    assert_eq!(client.client_id(), 8);
    // A call from the lost connection cannot be answered on the new one.
    let err = unanswered.respond("too late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);

    client.publish("news.today", "after").await.unwrap();
    assert_eq!(&conn.recv().await.payload[..], b"after");
}

#[tokio::test]
async fn without_reconnect_a_lost_connection_closes_the_client() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, false).await;
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("a.b").await }
    });
    conn.confirm().await;
    let mut sub = subscribing.await.unwrap().unwrap();
    conn.send(Op::Error {
        code: ErrorCode::ShuttingDown,
        message: "bye".into(),
        refers: None,
    })
    .await;
    drop(conn);
    assert!(
        tokio::time::timeout(STEP, sub.next())
            .await
            .unwrap()
            .is_none()
    );
    let err = client.publish("a.b", "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn dropping_every_handle_flushes_and_closes() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    client.publish("last.words", "bye").await.unwrap();
    drop(client);
    assert_eq!(&conn.recv().await.payload[..], b"bye");
    assert!(conn.try_recv().await.is_none(), "socket closed");
}
