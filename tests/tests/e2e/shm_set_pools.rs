//! Set pools: a large payload fanned out to several shm receivers is
//! copied once, into a pool the daemon shares among exactly that receiver
//! set, which each member maps read-only. Only receivers the rules let
//! have the payload are in the set; a set that changes gets another pool,
//! and the members unmap the old one; a member that holds its blocks
//! fills that pool and then only its own.

use std::time::Duration;

use busd_client::{Client, Subscriber};
use busd_e2e::{Package, RawClient, TestDaemon, Transport};
use busd_proto::{Body, Op, Subject, encode_head_with};
use bytes::BytesMut;
use futures::StreamExt;

use crate::pools_common::{
    block_sub, closed_for_violation, in_own_pool, in_set_pool, mappings, next, pattern,
    set_pool_of, small_pools_short_timeouts,
};

/// How many clients of this process map set pool `inode`.
fn readers_of(inode: u64) -> usize {
    mappings("busd-set-pool", "r--s")
        .iter()
        .filter(|m| m.inode == inode)
        .count()
}

/// Waits (bounded) until `count` clients of this process map set pool
/// `inode`.
async fn mapped_by(inode: u64, count: usize) {
    for _ in 0..200 {
        if readers_of(inode) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "set pool {inode} mapped {} times, not {count}",
        readers_of(inode)
    );
}

#[tokio::test]
async fn a_payload_fanned_out_to_shm_receivers_is_one_block_of_their_set_pool() {
    let d = TestDaemon::start().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut receivers = Vec::new();
    for t in [
        Transport::Shm,
        Transport::Shm,
        Transport::Shm,
        Transport::Unix,
    ] {
        let client = Client::connect(&d.url(t)).await.unwrap();
        let sub = client.subscribe("big.>").await.unwrap();
        receivers.push((t, client, sub));
    }
    let mut pools = std::collections::BTreeSet::new();
    for round in 0..20 {
        let big = pattern(1 << 20, round);
        publisher.publish("big.data", big.clone()).await.unwrap();
        for (t, _client, sub) in &mut receivers {
            let m = next(sub, "big.data").await;
            assert_eq!(m.payload, big, "{t:?}, round {round}");
            let pool = set_pool_of(&m.payload);
            assert_eq!(
                pool.is_some(),
                *t == Transport::Shm,
                "{t:?}, round {round}: shm receivers read the set's block"
            );
            pools.extend(pool);
        }
    }
    // One pool for the set, mapped by each of its three members.
    assert_eq!(pools.len(), 1, "{pools:?}");
    mapped_by(pools.pop_first().unwrap(), 3).await;
}

#[tokio::test]
async fn only_receivers_the_rules_allow_are_in_the_set_and_map_its_pool() {
    const PUBLISHER: &str = "Sets.Publisher_8wekyb3d8bbwe";
    const A: &str = "Sets.A_8wekyb3d8bbwe";
    const B: &str = "Sets.B_8wekyb3d8bbwe";
    const DENIED: &str = "Sets.Denied_8wekyb3d8bbwe";
    let packages = [
        Package::new(PUBLISHER).sends_to(&[A, B]),
        Package::new(A).accepts(&[PUBLISHER]),
        Package::new(B).accepts(&[PUBLISHER]),
        Package::new(DENIED).accepts(&[PUBLISHER]),
    ];
    let toml = busd_e2e::access::config_toml("same-uid", &packages);
    let d = TestDaemon::start_with_packages_toml(&toml, &packages).await;
    let publisher = d.connect_as(Transport::Shm, &packages[0]).await;
    let a = d.connect_as(Transport::Shm, &packages[1]).await;
    let b = d.connect_as(Transport::Shm, &packages[2]).await;
    let denied = d.connect_as(Transport::Shm, &packages[3]).await;
    let mut subs = [
        a.subscribe("bulk").await.unwrap(),
        b.subscribe("bulk").await.unwrap(),
    ];
    let mut denied_sub = denied.subscribe("bulk").await.unwrap();
    let mut pool = None;
    for round in 0..10 {
        let payload = pattern(256 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        for sub in &mut subs {
            let m = next(sub, "an allowed receiver").await;
            assert_eq!(m.payload, payload, "round {round}");
            pool = set_pool_of(&m.payload);
            assert!(pool.is_some(), "round {round}");
        }
    }
    let nothing = tokio::time::timeout(Duration::from_millis(300), denied_sub.next()).await;
    assert!(
        nothing.is_err(),
        "the denied receiver gets nothing: {nothing:?}"
    );
    // Mapped by A and B only: the denied client was never passed it.
    mapped_by(pool.unwrap(), 2).await;
}

/// A publisher and three shm clients a, b, c, in two receiver sets that
/// share b: {a, b} hear `x` (`xs`), {b, c} hear `y` (`ys`).
struct TwoSets {
    publisher: Client,
    xs: [Subscriber; 2],
    ys: [Subscriber; 2],
    _clients: [Client; 3],
}

async fn two_sets(d: &TestDaemon) -> TwoSets {
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let (a, b, c) = (
        Client::connect(&d.url(Transport::Shm)).await.unwrap(),
        Client::connect(&d.url(Transport::Shm)).await.unwrap(),
        Client::connect(&d.url(Transport::Shm)).await.unwrap(),
    );
    let xs = [
        a.subscribe("x").await.unwrap(),
        b.subscribe("x").await.unwrap(),
    ];
    let ys = [
        b.subscribe("y").await.unwrap(),
        c.subscribe("y").await.unwrap(),
    ];
    TwoSets {
        publisher,
        xs,
        ys,
        _clients: [a, b, c],
    }
}

#[tokio::test]
async fn each_receiver_set_has_its_own_pool_which_only_its_members_map() {
    let d = TestDaemon::start().await;
    let TwoSets {
        publisher,
        mut xs,
        mut ys,
        ..
    } = two_sets(&d).await;
    let (mut x_pool, mut y_pool) = (None, None);
    for round in 0..10 {
        let (x, y) = (pattern(128 * 1024, round), pattern(128 * 1024, round + 1));
        publisher.publish("x", x.clone()).await.unwrap();
        publisher.publish("y", y.clone()).await.unwrap();
        for sub in &mut xs {
            let m = next(sub, "x").await;
            assert_eq!(m.payload, x, "round {round}");
            x_pool = set_pool_of(&m.payload);
        }
        for sub in &mut ys {
            let m = next(sub, "y").await;
            assert_eq!(m.payload, y, "round {round}");
            y_pool = set_pool_of(&m.payload);
        }
    }
    // Two pools, each mapped by its two members: a never maps {b, c}'s,
    // nor c {a, b}'s.
    let (x_pool, y_pool) = (x_pool.unwrap(), y_pool.unwrap());
    assert_ne!(x_pool, y_pool);
    mapped_by(x_pool, 2).await;
    mapped_by(y_pool, 2).await;
}

#[tokio::test]
async fn a_member_leaving_retires_the_pool_and_the_others_unmap_it() {
    let d = TestDaemon::start().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let stay = [
        Client::connect(&d.url(Transport::Shm)).await.unwrap(),
        Client::connect(&d.url(Transport::Shm)).await.unwrap(),
    ];
    let leaving = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut subs = Vec::new();
    for client in &stay {
        subs.push(client.subscribe("bulk").await.unwrap());
    }
    let mut leaving_sub = leaving.subscribe("bulk").await.unwrap();
    let mut old = None;
    for round in 0..5 {
        let payload = pattern(512 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        for sub in &mut subs {
            old = set_pool_of(&next(sub, "bulk").await.payload);
        }
        assert_eq!(next(&mut leaving_sub, "bulk").await.payload, payload);
    }
    let old = old.expect("a set pool");
    mapped_by(old, 3).await;
    drop(leaving_sub);
    drop(leaving);
    // The two left make another set, with another pool; the old one is
    // unmapped by both once told it is gone.
    let mut new = None;
    for round in 5..10 {
        let payload = pattern(512 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        for sub in &mut subs {
            let m = next(sub, "bulk").await;
            assert_eq!(m.payload, payload, "round {round}");
            new = set_pool_of(&m.payload);
        }
    }
    let new = new.expect("a set pool");
    assert_ne!(new, old, "another set, another pool");
    mapped_by(new, 2).await;
    mapped_by(old, 0).await;
}

#[tokio::test]
async fn a_member_holding_its_blocks_fills_the_set_pool_then_only_its_own() {
    // 1 MiB pools: 16 blocks of 64 KiB each.
    let d = TestDaemon::start_with(|c| c.limits.shm_pool_bytes = 1 << 20).await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let hoarder = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let reader = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut hoarded_sub = hoarder.subscribe("bulk").await.unwrap();
    let mut read_sub = reader.subscribe("bulk").await.unwrap();
    let mut held = Vec::new();
    for round in 0..48 {
        let payload = pattern(64 * 1024, round);
        publisher.publish("bulk", payload.clone()).await.unwrap();
        // The reader is served every message, from a pool.
        let m = next(&mut read_sub, "the reader's").await;
        assert_eq!(m.payload, payload, "round {round}");
        assert!(in_set_pool(&m.payload) || in_own_pool(&m.payload));
        let h = next(&mut hoarded_sub, "the hoarder's").await;
        assert_eq!(h.payload, payload, "round {round}: every byte, pool or not");
        held.push(h);
    }
    let in_set = held.iter().filter(|m| in_set_pool(&m.payload)).count();
    let in_own = held.iter().filter(|m| in_own_pool(&m.payload)).count();
    assert_eq!(
        (in_set, in_own),
        (16, 16),
        "the hoarder holds the set pool's 16 blocks and its own pool's 16"
    );
}

#[tokio::test]
async fn a_block_member_holding_its_blocks_is_cut_off_and_the_others_served() {
    let d = small_pools_short_timeouts().await;
    let publisher = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let hoarder = Client::builder(d.url(Transport::Shm))
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let reader = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut hoarded_sub = block_sub(&hoarder, "bulk").await;
    let mut read_sub = block_sub(&reader, "bulk").await;
    let total = 48;
    let publishing = tokio::spawn(async move {
        for round in 0..total {
            publisher
                .publish("bulk", pattern(64 * 1024, round))
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
    });
    let hoarding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(m) = hoarded_sub.next().await {
            held.push(m);
        }
        held.len()
    });
    for round in 0..total {
        let m = next(&mut read_sub, "the reader's").await;
        assert_eq!(m.payload, pattern(64 * 1024, round), "round {round}");
    }
    let held = tokio::time::timeout(Duration::from_secs(10), hoarding)
        .await
        .expect("the hoarder is cut off")
        .unwrap();
    assert!(
        held < total,
        "the hoarder got {held} of {total} before its cut"
    );
    tokio::time::timeout(Duration::from_secs(10), publishing)
        .await
        .expect("the publisher went on")
        .unwrap();
}

/// A raw shm client that asked for set pools and got a payload from one:
/// the first set pool of a fresh daemon (id 1), its first block.
async fn raw_member(d: &TestDaemon) -> (RawClient, Client, Subscriber) {
    let (mut raw, welcome) =
        RawClient::connect_hello_asking(&d.url(Transport::Shm), false, true).await;
    let Op::Welcome(welcome) = welcome else {
        panic!("{welcome:?}");
    };
    assert!(welcome.set_pools, "granted");
    raw.send(Op::Sub {
        sid: 1,
        subject: Subject::from_static("bulk"),
        queue: None,
        overflow: busd_proto::Overflow::Disconnect,
    })
    .await;
    let other = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let sub = other.subscribe("bulk").await.unwrap();
    raw.ping().await; // subscribed
    other.publish("bulk", pattern(64 * 1024, 0)).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), raw.recv())
        .await
        .expect("a delivery")
        .expect("open");
    assert!(matches!(frame.op, Op::Msg { .. }), "{frame:?}");
    assert_eq!(
        frame.payload,
        pattern(64 * 1024, 0),
        "read from the set pool"
    );
    (raw, other, sub)
}

#[tokio::test]
async fn a_member_handing_back_a_set_pool_block_twice_is_a_protocol_violation() {
    let d = TestDaemon::start().await;
    let (mut raw, other, mut sub) = raw_member(&d).await;
    let block = 1 << 32;
    raw.send(Op::Release {
        blocks: vec![block, block],
    })
    .await;
    closed_for_violation(&mut raw).await;
    // The other member is served on, through the pool's next set.
    next(&mut sub, "the first").await;
    other.publish("bulk", pattern(64 * 1024, 1)).await.unwrap();
    assert_eq!(
        next(&mut sub, "the second").await.payload,
        pattern(64 * 1024, 1)
    );
}

#[tokio::test]
async fn handing_back_blocks_of_a_set_pool_never_given_is_a_protocol_violation() {
    let d = TestDaemon::start().await;
    // A client that asked for none, and one that is no member of pool 77.
    for asked in [false, true] {
        let url = d.url(Transport::Shm);
        let (mut raw, _) = RawClient::connect_hello_asking(&url, false, asked).await;
        raw.send(Op::Release {
            blocks: vec![(77 << 32) | 4096],
        })
        .await;
        closed_for_violation(&mut raw).await;
    }
}

#[tokio::test]
async fn a_client_naming_a_set_pool_in_its_own_frame_is_refused() {
    let d = TestDaemon::start().await;
    let (mut raw, _) = RawClient::connect_hello_asking(&d.url(Transport::Shm), false, true).await;
    let publish = Op::Pub {
        subject: Subject::from_static("bulk"),
        headers: None,
    };
    let mut bytes = BytesMut::new();
    let body = Body::Pooled {
        offset: 1 << 32,
        len: 4096,
    };
    encode_head_with(&publish, body, &mut bytes).unwrap();
    raw.send_bytes(&bytes).await;
    let frames = tokio::time::timeout(Duration::from_secs(10), raw.recv_until_closed())
        .await
        .expect("the daemon closes the connection");
    assert!(RawClient::error_code(&frames).is_some(), "{frames:?}");
    // Everyone else is still served.
    let other = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    other.flush().await.unwrap();
}

#[tokio::test]
async fn payloads_held_by_members_never_change_under_them() {
    // Small pools, so blocks are lent again and again while others are
    // held: 16 blocks of 64 KiB at most.
    let d = TestDaemon::start_with(|c| c.limits.shm_pool_bytes = 1 << 20).await;
    let publisher = Client::builder(d.url(Transport::Shm))
        .shm_pool_bytes(1 << 20)
        .connect()
        .await
        .unwrap();
    const MESSAGES: usize = 3000;
    const HELD: usize = 6;
    let mut readers = Vec::new();
    for r in 0..3 {
        let client = Client::connect(&d.url(Transport::Shm)).await.unwrap();
        let mut sub = block_sub(&client, "stress").await;
        readers.push(tokio::spawn(async move {
            // Each reader holds the last few messages (a different number
            // each) and checks them again as it lets them go.
            let mut window = std::collections::VecDeque::new();
            let mut in_set = 0;
            for round in 0..MESSAGES {
                let m = next(&mut sub, "stress").await;
                let len = 16 * 1024 + round % 7 * 4096;
                assert_eq!(m.payload, pattern(len, round), "reader {r}, round {round}");
                in_set += usize::from(in_set_pool(&m.payload));
                window.push_back((round, len, m));
                if window.len() > HELD + r {
                    let (round, len, m) = window.pop_front().unwrap();
                    assert_eq!(
                        m.payload,
                        pattern(len, round),
                        "reader {r}: changed while held"
                    );
                }
            }
            drop(client);
            in_set
        }));
    }
    for round in 0..MESSAGES {
        let len = 16 * 1024 + round % 7 * 4096;
        publisher
            .publish("stress", pattern(len, round))
            .await
            .unwrap();
    }
    for reader in readers {
        let in_set = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("every reader done")
            .unwrap();
        assert!(
            in_set > MESSAGES / 2,
            "{in_set} of {MESSAGES} through the set pool"
        );
    }
}

#[tokio::test]
async fn at_the_limit_a_new_set_waits_for_the_idlest_pool_to_be_idle_a_second() {
    let d = TestDaemon::start_with(|c| c.limits.shm_set_pools = 1).await;
    let TwoSets {
        publisher,
        mut xs,
        mut ys,
        ..
    } = two_sets(&d).await;
    // Where each receiver of one publish got it: a set pool's inode, or
    // none (its own pool).
    let send = |subject: &'static str, round: usize| {
        let publisher = publisher.clone();
        async move {
            let payload = pattern(256 * 1024, round);
            publisher.publish(subject, payload).await.unwrap();
        }
    };
    async fn got(subs: &mut [Subscriber; 2], round: usize) -> Vec<Option<u64>> {
        let mut pools = Vec::new();
        for sub in subs {
            let m = next(sub, "a delivery").await;
            assert_eq!(m.payload, pattern(256 * 1024, round), "round {round}");
            assert!(in_set_pool(&m.payload) || in_own_pool(&m.payload));
            pools.push(set_pool_of(&m.payload));
        }
        pools
    }
    send("x", 0).await;
    let first = got(&mut xs, 0).await;
    let x_pool = first[0].expect("{a, b} get the one pool");
    assert_eq!(first, [Some(x_pool); 2]);
    send("y", 1).await;
    assert_eq!(
        got(&mut ys, 1).await,
        [None, None],
        "none left for {{b, c}}"
    );
    // Not a race: the pool must have been idle at least a second, and it
    // was last used before this sleep began.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send("y", 2).await;
    let second = got(&mut ys, 2).await;
    let y_pool = second[0].expect("{b, c} get a pool now");
    assert_ne!(y_pool, x_pool);
    assert_eq!(second, [Some(y_pool); 2]);
    send("x", 3).await;
    assert_eq!(
        got(&mut xs, 3).await,
        [None, None],
        "{{a, b}}'s was retired"
    );
    mapped_by(x_pool, 0).await;
}
