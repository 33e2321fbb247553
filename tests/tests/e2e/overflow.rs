//! Overflow policies of slow subscribers: block (lossless back-pressure)
//! and drop-oldest (counted, reported).

use std::time::Duration;

use busd_client::{Client, Overflow, SubscribeOptions};
use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{ErrorCode, Frame, Op, Subject};
use futures::StreamExt;

fn small_queues(c: &mut busd_daemon::Config) {
    c.limits.max_pending_msgs = 8;
    c.limits.max_pending_bytes = 8 << 20;
}

#[tokio::test]
async fn block_policy_loses_nothing_and_keeps_order() {
    let d = TestDaemon::start_with(small_queues).await;
    for t in Transport::ALL {
        let sub_client = Client::connect(&d.url(t)).await.unwrap();
        let options = SubscribeOptions {
            overflow: Overflow::Block,
            ..SubscribeOptions::default()
        };
        let mut sub = sub_client
            .subscribe_with("lossless", options)
            .await
            .unwrap();
        let publisher = Client::connect(&d.url(t)).await.unwrap();
        // Far more than an 8-message queue and the socket buffers hold.
        const N: u32 = 600;
        let sending = tokio::spawn(async move {
            for i in 0..N {
                let mut payload = vec![0u8; 16 * 1024];
                payload[..4].copy_from_slice(&i.to_be_bytes());
                publisher.publish("lossless", payload).await.unwrap();
            }
            publisher.flush().await.unwrap();
        });
        for i in 0..N {
            let m = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .unwrap_or_else(|_| panic!("{t:?}: message {i} never came"))
                .unwrap_or_else(|| panic!("{t:?}: subscription ended at {i}"));
            assert_eq!(
                u32::from_be_bytes(m.payload[..4].try_into().unwrap()),
                i,
                "{t:?}"
            );
        }
        sending.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn block_policy_gives_up_on_a_stuck_subscriber_after_the_deadline() {
    let d = TestDaemon::start_with(|c| {
        small_queues(c);
        c.limits.block_timeout = Duration::from_secs(2);
    })
    .await;
    let url = d.url(Transport::Unix);
    let (mut stuck, _) = RawClient::connect_hello(&url).await;
    stuck
        .send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("stuck"),
            queue: None,
            overflow: Overflow::Block,
        })
        .await;
    stuck.send(Op::Ping).await;
    assert_eq!(stuck.recv().await.map(|f| f.op), Some(Op::Pong));
    let (mut publisher, _) = RawClient::connect_hello(&url).await;
    // The stuck subscriber never reads; the publisher's session waits for
    // room until the block deadline, then cuts the subscriber off.
    for _ in 0..200 {
        let op = Op::Pub {
            subject: Subject::from_static("stuck"),
            headers: None,
        };
        publisher
            .send_frame(Frame::with_payload(op, RawClient::payload(64 * 1024)))
            .await;
    }
    let notice = tokio::time::timeout(Duration::from_secs(60), publisher.recv())
        .await
        .expect("the publisher is told")
        .expect("publisher still connected");
    match &notice.op {
        Op::Error {
            code: ErrorCode::SlowConsumer,
            refers: None,
            message,
        } => assert!(
            message.contains("within 2s"),
            "limits.block_timeout: {message}"
        ),
        _ => panic!("{notice:?}"),
    }
    let frames = stuck.recv_until_closed().await;
    assert!(frames.iter().any(|f| matches!(
        f.op,
        Op::Error {
            code: ErrorCode::SlowConsumer,
            ..
        }
    )));
}

#[tokio::test]
async fn drop_oldest_counts_and_reports_losses() {
    let d = TestDaemon::start_with(small_queues).await;
    let url = d.url(Transport::Unix);
    let (mut lagging, _) = RawClient::connect_hello(&url).await;
    lagging
        .send(Op::Sub {
            sid: 5,
            subject: Subject::from_static("ticks"),
            queue: None,
            overflow: Overflow::DropOldest,
        })
        .await;
    lagging.send(Op::Ping).await;
    assert_eq!(lagging.recv().await.map(|f| f.op), Some(Op::Pong));
    let publisher = Client::connect(&url).await.unwrap();
    const N: usize = 400;
    for _ in 0..N {
        publisher
            .publish("ticks", vec![7u8; 32 * 1024])
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    // Everything published is either delivered or counted as dropped.
    let (mut delivered, mut dropped) = (0, 0);
    while delivered + dropped < N as u64 {
        let f = tokio::time::timeout(Duration::from_secs(30), lagging.recv())
            .await
            .expect("frames keep coming")
            .expect("the lagging subscriber stays connected");
        match f.op {
            Op::Msg { sid: 5, .. } => delivered += 1,
            Op::Dropped { sid: 5, count } => dropped += count,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered + dropped, N as u64);
    assert!(
        dropped > 0,
        "an 8-message queue cannot have held {N} big messages"
    );
}
