//! Publish/subscribe through a real daemon, on every transport.

use std::collections::HashMap;
use std::time::Duration;

use busd_client::{Client, ErrorKind, SubscribeOptions};
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

async fn connect(d: &TestDaemon, t: Transport) -> Client {
    Client::connect(&d.url(t)).await.expect("connect")
}

/// Next message, or a panic naming what was awaited (instead of hanging).
async fn next(sub: &mut busd_client::Subscriber, what: &str) -> busd_client::Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no message for {what}"))
        .unwrap_or_else(|| panic!("subscription for {what} ended"))
}

#[tokio::test]
async fn wildcards_deliver_to_every_matching_subscriber() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (a, b) = (connect(&d, t).await, connect(&d, t).await);
        let mut star = b.subscribe("weather.*.paris").await.unwrap();
        let mut rest = b.subscribe("weather.>").await.unwrap();
        let mut exact = b.subscribe("weather.today.paris").await.unwrap();
        let mut other = b.subscribe("news.>").await.unwrap();
        a.publish("weather.today.paris", "sunny").await.unwrap();
        a.publish("weather.week", "rain").await.unwrap();
        a.flush().await.unwrap();
        for sub in [&mut star, &mut rest, &mut exact] {
            let m = next(sub, "weather.today.paris").await;
            assert_eq!(m.subject.as_str(), "weather.today.paris", "{t:?}");
            assert_eq!(&m.payload[..], b"sunny");
            assert_eq!(
                m.from.client_id,
                a.client_id(),
                "sender stamped by the daemon"
            );
            assert_eq!(m.from.pfn, None);
        }
        assert_eq!(&next(&mut rest, "weather.week").await.payload[..], b"rain");
        // Nothing else arrived: a marker on news.> is the very next message.
        a.publish("news.marker", "m").await.unwrap();
        assert_eq!(
            next(&mut other, "news.marker").await.subject.as_str(),
            "news.marker"
        );
    }
}

#[tokio::test]
async fn order_is_kept_per_publisher() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (p1, p2, s) = (
            connect(&d, t).await,
            connect(&d, t).await,
            connect(&d, t).await,
        );
        let mut sub = s.subscribe("seq.>").await.unwrap();
        const N: u32 = 2000;
        let send = |c: Client, subject: &'static str| async move {
            for i in 0..N {
                c.publish(subject, i.to_be_bytes().to_vec()).await.unwrap();
            }
            c.flush().await.unwrap();
        };
        tokio::join!(send(p1, "seq.one"), send(p2, "seq.two"));
        let mut last: HashMap<String, u32> = HashMap::new();
        for _ in 0..2 * N {
            let m = next(&mut sub, "seq").await;
            let i = u32::from_be_bytes(m.payload[..].try_into().unwrap());
            let prev = last.insert(m.subject.to_string(), i);
            assert_eq!(
                prev.map_or(0, |p| p + 1),
                i,
                "{t:?}: out of order on {}",
                m.subject
            );
        }
    }
}

/// Payload `i` of the mixed-size stream: its number, then a pattern of
/// its own, small (copied into the receiver's queue), or past the copy
/// limit (passed on whole), or past the shm segment threshold.
fn mixed_payload(i: u32) -> Vec<u8> {
    let len = match i % 7 {
        0 => 10 * 1024,
        3 if i % 21 == 3 => 70 * 1024,
        _ => 4 + (i as usize % 300),
    };
    let mut p = i.to_be_bytes().to_vec();
    p.extend((4..len).map(|k| (k as u32 ^ i) as u8));
    p
}

#[tokio::test]
async fn small_and_large_messages_keep_their_order_and_bytes() {
    // Small deliveries go into the receiver's queue as copied runs, large
    // ones as frames of their own: between them, nothing may reorder.
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (p, s) = (connect(&d, t).await, connect(&d, t).await);
        let mut sub = s.subscribe("mixed").await.unwrap();
        const N: u32 = 600;
        let send = async {
            for i in 0..N {
                p.publish("mixed", mixed_payload(i)).await.unwrap();
            }
            p.flush().await.unwrap();
        };
        let receive = async {
            for i in 0..N {
                let m = next(&mut sub, "mixed").await;
                assert_eq!(
                    m.payload.len(),
                    mixed_payload(i).len(),
                    "{t:?}: message {i}"
                );
                assert!(m.payload[..] == mixed_payload(i)[..], "{t:?}: message {i}");
            }
        };
        tokio::join!(send, receive);
    }
}

#[tokio::test]
async fn queue_group_gives_each_message_to_one_member() {
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let publisher = connect(&d, t).await;
        let mut members = Vec::new();
        for _ in 0..3 {
            let c = connect(&d, t).await;
            members.push(c.queue_subscribe("jobs.>", "workers").await.unwrap());
        }
        let watcher = connect(&d, t).await;
        let mut all = watcher.subscribe("jobs.>").await.unwrap();
        const N: usize = 300;
        for i in 0..N {
            publisher.publish("jobs.new", format!("{i}")).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for _ in 0..N {
            next(&mut all, "plain subscriber").await;
        }
        // Round robin: each of the 3 members gets exactly a third, and
        // together they got each message once.
        let mut seen = Vec::new();
        for m in &mut members {
            for _ in 0..N / 3 {
                seen.push(String::from_utf8(next(m, "member").await.payload.to_vec()).unwrap());
            }
        }
        seen.sort_by_key(|s| s.parse::<usize>().unwrap());
        let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(seen, want, "{t:?}");
        // And no member got a fourth share: a marker after is the next message.
        publisher.publish("jobs.marker", "x").await.unwrap();
        let mut markers = 0;
        for m in &mut members {
            if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), m.next()).await
            {
                assert_eq!(msg.subject.as_str(), "jobs.marker");
                markers += 1;
            }
        }
        assert_eq!(markers, 1);
    }
}

#[tokio::test]
async fn dropping_a_subscriber_unsubscribes() {
    let d = TestDaemon::start().await;
    let c = connect(&d, Transport::Unix).await;
    let sub = c.subscribe("gone").await.unwrap();
    drop(sub);
    c.flush().await.unwrap();
    // The daemon routes nothing to a dropped subscription.
    let mut kept = c.subscribe("kept").await.unwrap();
    c.publish("gone", "x").await.unwrap();
    c.publish("kept", "y").await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(&next(&mut kept, "kept").await.payload[..], b"y");
    assert_eq!(d.daemon().stats().delivered, 1);
}

#[tokio::test]
async fn a_stream_reaches_subscribers_as_they_come_and_go() {
    // The daemon reuses a publisher's route while nothing that routes has
    // changed; a subscription made or ended mid-stream must count at once.
    let d = TestDaemon::start().await;
    for t in Transport::ALL {
        let (p, s) = (connect(&d, t).await, connect(&d, t).await);
        let mut first = s.subscribe("stream.x").await.unwrap();
        for i in 0..3u8 {
            p.publish("stream.x", [i]).await.unwrap();
        }
        for i in 0..3u8 {
            assert_eq!(&next(&mut first, "first").await.payload[..], [i], "{t:?}");
        }

        let joiner = connect(&d, t).await;
        let mut late = joiner.subscribe("stream.*").await.unwrap();
        p.publish("stream.x", [3]).await.unwrap();
        assert_eq!(&next(&mut late, "late").await.payload[..], [3], "{t:?}");
        assert_eq!(&next(&mut first, "first").await.payload[..], [3], "{t:?}");

        late.unsubscribe().await.unwrap();
        joiner.flush().await.unwrap(); // the daemon has handled the Unsub
        let before = d.daemon().stats().delivered;
        p.publish("stream.x", [4]).await.unwrap();
        p.flush().await.unwrap();
        assert_eq!(&next(&mut first, "first").await.payload[..], [4], "{t:?}");
        let delivered = d.daemon().stats().delivered - before;
        assert_eq!(delivered, 1, "only to the subscription left: {t:?}");
    }
}

#[tokio::test]
async fn invalid_subjects_are_refused() {
    let d = TestDaemon::start().await;
    let c = connect(&d, Transport::Tcp).await;
    let e = c.publish("a.*", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSubject);
    let e = c.publish("a..b", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSubject);
    let e = c.subscribe("a.>.b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSubject);
}

#[tokio::test]
async fn subscription_limit_is_reported() {
    let d = TestDaemon::start_with(|c| c.limits.max_subscriptions = 2).await;
    let c = connect(&d, Transport::Unix).await;
    let _a = c.subscribe("a").await.unwrap();
    let _b = c.subscribe("b").await.unwrap();
    let e = c
        .subscribe_with("c", SubscribeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded);
}
