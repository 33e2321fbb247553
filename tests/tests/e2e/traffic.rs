//! Each connection's traffic as `busd ctl clients` shows it: frames and
//! bytes in, messages published and denied, messages delivered to it and
//! bytes out, over every transport.

use busd_client::{Client, CtlCommand};
use busd_e2e::access::{next_msg, poll_until, within};
use busd_e2e::{Package, TestDaemon, Transport};
use serde_json::Value;

const SENDER: &str = "Traffic.Sender_8wekyb3d8bbwe";
const RECEIVER: &str = "Traffic.Receiver_8wekyb3d8bbwe";
const BARRED: &str = "Traffic.Barred_8wekyb3d8bbwe";

/// The row of `client` in `busd ctl clients`, once `ready` holds for it
/// (a session adds its counts when it has handled what it read).
async fn row(admin: &Client, client: &Client, ready: impl Fn(&Value) -> bool) -> Value {
    let id = client.client_id();
    let probe = || async {
        let doc = within("ctl clients", admin.ctl(CtlCommand::Clients))
            .await
            .expect("ctl clients");
        doc.as_array()
            .expect("a list")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("client {id} not listed: {doc}"))
    };
    poll_until("the counts", probe, ready).await
}

#[tokio::test]
async fn ctl_clients_counts_each_connections_messages_and_bytes_both_ways() {
    let packages = [
        Package::new(SENDER).sends_to(&[RECEIVER, BARRED]),
        Package::new(RECEIVER).accepts(&[SENDER]),
        // Does not accept SENDER: its deliveries are denied.
        Package::new(BARRED),
    ];
    for t in Transport::ALL {
        let d = TestDaemon::start_with_packages("same-uid", &packages).await;
        let sender = d.connect_as(t, &packages[0]).await;
        let receiver = d.connect_as(t, &packages[1]).await;
        let barred = d.connect_as(t, &packages[2]).await;
        let admin = d.connect_unpackaged(t).await;
        let mut sub = receiver.subscribe("traffic.>").await.expect("subscribe");
        let _barred_sub = barred.subscribe("traffic.>").await.expect("subscribe");
        receiver.flush().await.expect("flush");
        barred.flush().await.expect("flush");
        for _ in 0..3 {
            sender
                .publish("traffic.count", vec![7u8; 100])
                .await
                .expect("publish");
        }
        for _ in 0..3 {
            next_msg(&mut sub, "a counted message").await;
        }

        let sent = row(&admin, &sender, |r| r["published"] == 3).await;
        assert_eq!(sent["denied"], 3, "{t:?}: {sent}");
        assert_eq!(sent["received"], 0, "{t:?}: {sent}");
        assert!(sent["frames_in"].as_u64().unwrap() >= 3, "{t:?}: {sent}");
        assert!(sent["bytes_in"].as_u64().unwrap() > 300, "{t:?}: {sent}");
        let got = row(&admin, &receiver, |r| r["received"] == 3).await;
        assert_eq!(got["published"], 0, "{t:?}: {got}");
        assert!(got["bytes_out"].as_u64().unwrap() > 300, "{t:?}: {got}");
        assert_eq!(got["dropped"], 0, "{t:?}: {got}");
        assert_eq!(got["discarded"], 0, "{t:?}: {got}");
        let none = row(&admin, &barred, |_| true).await;
        assert_eq!(none["received"], 0, "{t:?}: {none}");
    }
}
