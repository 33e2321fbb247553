//! The SDK survives a daemon restart and restores what it had.

use std::time::Duration;

use busd_client::Client;
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

#[tokio::test]
async fn client_reconnects_and_restores_subscriptions_and_services() {
    for t in Transport::ALL {
        let mut d = TestDaemon::start().await;
        let c = Client::connect(&d.url(t)).await.unwrap();
        let mut sub = c.subscribe("after.restart").await.unwrap();
        let mut svc = c.serve("still.here").await.unwrap();
        tokio::spawn(async move {
            while let Some(req) = svc.next().await {
                req.respond("yes").await.unwrap();
            }
        });
        d.restart().await;

        // A fresh client on the new daemon; wait (bounded) until the old
        // client has reconnected and re-registered its service.
        let other = Client::connect(&d.url(t)).await.unwrap();
        let mut answered = None;
        for _ in 0..200 {
            match other.request("still.here", "?").await {
                Ok(resp) => {
                    answered = Some(resp);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        let resp = answered.expect("the service came back after the restart");
        assert_eq!(&resp.payload[..], b"yes", "{t:?}");
        other.publish("after.restart", "hello again").await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("message after restart")
            .expect("subscription still open");
        assert_eq!(&m.payload[..], b"hello again");
        d.stop().await;
    }
}
