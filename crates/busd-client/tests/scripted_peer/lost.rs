//! A lost connection fails the calls in flight with `Disconnected`, and the
//! error keeps what ended the connection as its `source()`: the daemon's
//! closing `Error`, or the decode error of a frame the client could not read.

use std::error::Error as _;

use busd_client::ErrorKind;
use busd_proto::{CodecError, ErrorCode};
use tokio::io::AsyncWriteExt;

use super::*;

/// Starts a request on `client` and waits until the peer has read it.
async fn request_in_flight(
    client: &Client,
    conn: &mut PeerConn,
) -> tokio::task::JoinHandle<Result<busd_client::Response, busd_client::Error>> {
    let requesting = tokio::spawn({
        let client = client.clone();
        async move { client.request("contoso.weather", "paris").await }
    });
    assert!(matches!(conn.recv().await.op, Op::Req { .. }));
    requesting
}

#[tokio::test]
async fn the_daemons_closing_error_is_the_source() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let requesting = request_in_flight(&client, &mut conn).await;
    conn.send(Op::Error {
        code: ErrorCode::SlowConsumer,
        message: "too slow".into(),
        refers: None,
    })
    .await;
    drop(conn);

    let err = requesting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);
    assert!(err.to_string().contains("too slow"), "{err}");
    let cause = err
        .source()
        .and_then(|s| s.downcast_ref::<busd_client::Error>())
        .expect("the daemon's error as the source");
    assert_eq!(cause.kind(), ErrorKind::SlowConsumer);
}

#[tokio::test]
async fn a_frame_the_client_cannot_read_is_the_source() {
    let (peer, url) = Peer::bind().await;
    let (client, mut conn) = connect(&peer, &url, true).await;
    let requesting = request_in_flight(&client, &mut conn).await;
    // A length prefix far over any limit.
    let raw = conn.writer.get_mut();
    raw.write_all(&[0xff, 0xff, 0xff, 0xf0]).await.unwrap();
    raw.flush().await.unwrap();

    let err = requesting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected);
    assert!(err.to_string().contains("bad frame"), "{err}");
    let cause = err.source().expect("a source");
    assert!(
        matches!(
            cause.downcast_ref::<CodecError>(),
            Some(CodecError::FrameTooLarge { .. })
        ),
        "{cause:?}"
    );
}
