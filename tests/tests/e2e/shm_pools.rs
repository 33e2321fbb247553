//! Large payloads over shm with payload pools (the default): written into
//! the sender's pool, copied by the daemon into each shm receiver's own
//! pool, read there in place (a read-only view); the other transports get
//! the bytes. A receiver that holds its messages fills only its own pool.
//! (Payloads fanned out to several shm receivers share one copy in their
//! set's pool: see `shm_set_pools`.)

use std::time::Duration;

use busd_client::Client;
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

use crate::pools_common::{
    block_sub, closed_for_violation, in_own_pool as is_pool_view, in_writable_pool, next, pattern,
    small_pools_short_timeouts,
};

#[tokio::test]
async fn a_large_payload_reaches_shm_receivers_as_a_view_of_their_pool_and_others_as_bytes() {
    let d = TestDaemon::start().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut receivers = Vec::new();
    for t in Transport::ALL {
        let client = Client::connect(&d.url(t)).await.expect("connect");
        let sub = client.subscribe("big.>").await.expect("subscribe");
        receivers.push((t, client, sub));
    }
    for round in 0..40 {
        let big = pattern(1 << 20, round);
        publisher.publish("big.data", big.clone()).await.unwrap();
        for (t, _client, sub) in &mut receivers {
            let m = next(sub, "big.data").await;
            assert_eq!(
                m.payload, big,
                "{t:?}, round {round}: every byte as published"
            );
            assert_eq!(
                is_pool_view(&m.payload),
                *t == Transport::Shm,
                "{t:?}, round {round}"
            );
        }
    }
}

#[tokio::test]
async fn requests_and_replies_go_through_the_pools_both_ways() {
    let d = TestDaemon::start().await;
    let responder = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let requester = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut service = responder.serve("files.get").await.unwrap();
    let answering = tokio::spawn(async move {
        while let Some(request) = service.next().await {
            assert!(
                is_pool_view(&request.payload),
                "the request is read in place"
            );
            let mut reply = request.payload.to_vec();
            reply.reverse();
            request.respond(reply).await.expect("respond");
        }
    });
    for round in 0..20 {
        let question = pattern(300_000, round);
        let answer = requester
            .request("files.get", question.clone())
            .await
            .expect("an answer");
        let mut expected = question.to_vec();
        expected.reverse();
        assert_eq!(answer.payload, expected, "round {round}");
        assert!(is_pool_view(&answer.payload), "the reply is read in place");
    }
    answering.abort();
}

#[tokio::test]
async fn a_receiver_holding_its_messages_fills_only_its_own_pool() {
    // A 1 MiB pool each: 16 blocks of 64 KiB. No set pools: each receiver
    // gets its own copy (`shm_set_pools` has the shared case).
    let d = TestDaemon::start_with(|c| {
        c.limits.shm_pool_bytes = 1 << 20;
        c.limits.shm_set_pools = 0;
    })
    .await;
    let publisher = Client::builder(d.url(Transport::Shm))
        .shm_pool_bytes(1 << 20)
        .connect()
        .await
        .unwrap();
    let hoarder = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let reader = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut hoarded_sub = hoarder.subscribe("bulk").await.unwrap();
    let mut read_sub = reader.subscribe("bulk").await.unwrap();
    let mut held = Vec::new();
    for round in 0..64 {
        let payload = pattern(64 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        // The reader drops each message; the hoarder keeps every one.
        let m = next(&mut read_sub, "the reader's").await;
        assert_eq!(m.payload, payload);
        assert!(is_pool_view(&m.payload), "round {round}: its pool has room");
        let h = next(&mut hoarded_sub, "the hoarder's").await;
        assert_eq!(h.payload, payload, "round {round}: every byte, pool or not");
        held.push(h);
    }
    let in_pool = held.iter().filter(|m| is_pool_view(&m.payload)).count();
    assert_eq!(
        in_pool, 16,
        "the hoarder's pool holds 16 blocks; the rest came another way"
    );
}

#[tokio::test]
async fn a_client_handing_back_a_block_it_was_not_lent_is_a_protocol_violation() {
    let d = TestDaemon::start().await;
    let (mut raw, welcome) = busd_e2e::RawClient::connect_hello(&d.url(Transport::Shm)).await;
    assert!(matches!(welcome, busd_proto::Op::Welcome(_)), "{welcome:?}");
    raw.send(busd_proto::Op::Release {
        blocks: vec![12_288],
    })
    .await;
    closed_for_violation(&mut raw).await;
    // Everyone else is still served.
    let other = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    other.flush().await.unwrap();
}

#[tokio::test]
async fn the_blocks_a_receiver_holds_are_charged_to_its_owner_alone() {
    use busd_e2e::Package;
    const PUBLISHER: &str = "Pools.Publisher_8wekyb3d8bbwe";
    const HOARDER: &str = "Pools.Hoarder_8wekyb3d8bbwe";
    const READER: &str = "Pools.Reader_8wekyb3d8bbwe";
    let packages = [
        Package::new(PUBLISHER).sends_to(&[HOARDER, READER]),
        Package::new(HOARDER).accepts(&[PUBLISHER]),
        Package::new(READER).accepts(&[PUBLISHER]),
    ];
    // A 1 MiB pool holds 16 blocks of 64 KiB; the hoarder's budget, less
    // what its connection holds anyway, about 9.
    let mut toml = busd_e2e::access::config_toml("same-uid", &packages);
    toml.push_str(
        "\n[limits]\nshm_pool_bytes = 1048576\nmax_frame = 262144\n\
         max_pending_bytes = 262144\nmax_memory_per_identity = 655360\n\
         shm_set_pools = 0\n",
    );
    let d = TestDaemon::start_with_packages_toml(&toml, &packages).await;
    let publisher = d.connect_as(Transport::Shm, &packages[0]).await;
    let hoarder = d
        .token_builder(Transport::Shm, HOARDER, &packages[1].token_rel())
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let reader = d.connect_as(Transport::Shm, &packages[2]).await;
    let mut hoarded = hoarder.subscribe("bulk").await.unwrap();
    let mut read = reader.subscribe("bulk").await.unwrap();
    let mut held = Vec::new();
    for round in 0..24 {
        let payload = pattern(64 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        // Everyone else is served as before: every message, in its pool.
        let m = next(&mut read, "the reader's").await;
        assert_eq!(m.payload, payload, "round {round}");
        assert!(
            is_pool_view(&m.payload),
            "round {round}: the reader's pool has room"
        );
        // The hoarder keeps what it gets, until its owner's budget runs
        // out and the daemon closes it (LimitExceeded).
        let got = tokio::time::timeout(Duration::from_millis(500), hoarded.next()).await;
        if let Ok(Some(m)) = got {
            assert_eq!(m.payload, payload, "round {round}: every byte, pool or not");
            held.push(m);
        }
    }
    let in_pool = held.iter().filter(|m| is_pool_view(&m.payload)).count();
    eprintln!(
        "the hoarder got {} of 24 before its cut, {in_pool} in its pool",
        held.len()
    );
    assert!(
        (1..16).contains(&in_pool),
        "{in_pool} in the pool: its budget, not the pool's 16 blocks, bounds what it holds"
    );
    assert!(held.len() < 24, "the hoarder was cut off at its budget");
}

#[tokio::test]
async fn a_payload_buffer_is_a_block_of_the_senders_pool_sent_without_a_copy() {
    let d = TestDaemon::start().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let receiver = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut sub = receiver.subscribe("frames").await.unwrap();
    // Buffers dropped unsent give their blocks back: 40 of 1 MiB from a
    // 16 MiB pool, each one a block of it.
    for round in 0..40 {
        let buffer = publisher.payload_buffer(1 << 20).await.unwrap();
        assert!(
            in_writable_pool(&buffer),
            "round {round}: a block of its own pool"
        );
        assert!(buffer.iter().all(|&b| b == 0), "round {round}: zeroed");
    }
    // Blocks that held payloads are zeroed again for `payload_buffer`, and
    // left as they are for `payload_buffer_unzeroed`, whose writer fills
    // them.
    for round in 0..60 {
        let payload = pattern(1 << 20, round);
        let mut buffer = if round < 40 {
            publisher.payload_buffer(payload.len()).await.unwrap()
        } else {
            let zeroed = publisher.payload_buffer(payload.len()).await.unwrap();
            assert!(zeroed.iter().all(|&b| b == 0), "round {round}: zeroed");
            drop(zeroed);
            publisher
                .payload_buffer_unzeroed(payload.len())
                .await
                .unwrap()
        };
        assert!(in_writable_pool(&buffer), "round {round}");
        buffer.copy_from_slice(&payload);
        publisher
            .publish_buffer("frames", None, buffer)
            .await
            .unwrap();
        let m = next(&mut sub, "a frame").await;
        assert_eq!(m.payload, payload, "round {round}");
        assert!(is_pool_view(&m.payload), "round {round}");
    }
}

#[tokio::test]
async fn a_block_subscriber_whose_pool_is_full_is_waited_for_not_sent_the_bytes() {
    // A 1 MiB pool each: 16 blocks of 64 KiB.
    let d = TestDaemon::start_with(|c| c.limits.shm_pool_bytes = 1 << 20).await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let receiver = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut sub = block_sub(&receiver, "bulk").await;
    let publishing = tokio::spawn(async move {
        for round in 0..40 {
            publisher
                .publish("bulk", pattern(64 * 1024, round))
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
    });
    // Holding 16 fills its pool: the 17th waits for a block to come back.
    let mut held = Vec::new();
    for round in 0..16 {
        held.push(next(&mut sub, "the first 16").await);
        assert!(is_pool_view(&held[round].payload), "round {round}");
    }
    let early = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(
        early.is_err(),
        "nothing more until a block is handed back: {early:?}"
    );
    drop(held);
    for round in 16..40 {
        let m = next(&mut sub, "the rest").await;
        assert_eq!(m.payload, pattern(64 * 1024, round), "round {round}");
        assert!(
            is_pool_view(&m.payload),
            "round {round}: in its pool, at its pace"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), publishing)
        .await
        .expect("the publisher went on")
        .unwrap();
}

#[tokio::test]
async fn a_block_subscriber_holding_its_pool_past_the_block_timeout_is_cut_off() {
    let d = small_pools_short_timeouts().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let hoarder = Client::builder(d.url(Transport::Shm))
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let mut sub = block_sub(&hoarder, "bulk").await;
    let mut held = Vec::new();
    for round in 0..17 {
        publisher
            .publish("bulk", pattern(64 * 1024, round))
            .await
            .unwrap();
        if round < 16 {
            held.push(next(&mut sub, "the first 16").await);
        }
    }
    // The 17th finds no block within the block timeout: the hoarder goes,
    // and the publisher serves on.
    let end = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the hoarder is cut off");
    assert!(end.is_none(), "{end:?}");
    publisher
        .publish("bulk", pattern(64 * 1024, 17))
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    assert_eq!(held.len(), 16);
}
