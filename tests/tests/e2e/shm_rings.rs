//! Ring sizes over shm: the client picks, the daemon's
//! `limits.shm_ring_bytes` bounds.

use busd_client::{Client, ErrorKind};
use busd_e2e::{TestDaemon, Transport};
use futures::StreamExt;

#[tokio::test]
async fn rings_up_to_the_daemons_limit_work_and_larger_ones_are_refused() {
    let d = TestDaemon::start_with(|c| c.limits.shm_ring_bytes = 64 << 10).await;
    let url = d.url(Transport::Shm);
    let refused = Client::builder(&url)
        .shm_ring_bytes(1 << 20)
        .connect()
        .await
        .expect_err("a 1 MiB ring is over the limit");
    assert_eq!(refused.kind(), ErrorKind::Connect, "{refused}");

    // Small rings still carry frames larger than themselves, in pieces.
    let small = |bytes| {
        Client::builder(&url)
            .shm_ring_bytes(bytes)
            .segment_threshold(usize::MAX)
            .connect()
    };
    let (a, b) = (
        small(64 << 10).await.unwrap(),
        small(4 << 10).await.unwrap(),
    );
    let mut sub = b.subscribe("ring.size").await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    a.publish("ring.size", payload.clone()).await.unwrap();
    let m = sub.next().await.expect("delivered");
    assert_eq!(m.payload, payload);
}
