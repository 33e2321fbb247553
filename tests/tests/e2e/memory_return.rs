//! Memory comes back: what a flood made the daemon hold goes back to the
//! system soon after the flood ends (busd runs on jemalloc, which purges
//! freed pages within a second; glibc's malloc kept most of what small
//! allocations had taken), so a daemon attacked once does not stay large.

use std::time::Duration;

use busd_e2e::{DaemonProcess, RawClient, resident_memory};
use busd_proto::{Frame, Op, Subject};

const MIB: u64 = 1 << 20;

/// `requesters` connections with `each` requests pending for an hour on
/// a service whose responder takes the calls and answers none: many small
/// entries in the daemon's call tables, the kind an allocator keeps.
async fn flood(url: &str, requesters: usize, each: u64) -> Vec<RawClient> {
    let service = Subject::from_static("flood.silent");
    let (mut responder, _) = RawClient::connect_hello(url).await;
    responder
        .send(Op::Serve {
            sid: 1,
            service: service.clone(),
            require_capability: None,
        })
        .await;
    assert!(responder.ping().await.is_empty());
    // It reads every call, so its queue holds none of them.
    let reading = tokio::spawn(async move { while responder.recv().await.is_some() {} });
    let mut held = Vec::new();
    for _ in 0..requesters {
        let (mut c, _) = RawClient::connect_hello(url).await;
        for rid in 0..each {
            let op = Op::Req {
                rid,
                service: service.clone(),
                timeout_ms: 3_600_000,
                headers: None,
            };
            c.send_frame(Frame::with_payload(op, RawClient::payload(64)))
                .await;
        }
        assert!(c.ping().await.is_empty());
        held.push(c);
    }
    reading.abort();
    held
}

#[tokio::test]
async fn memory_a_flood_of_pending_requests_took_is_returned_when_it_ends() {
    let d = DaemonProcess::spawn(&[]);
    let pid = d.child.id();
    let (baseline, _) = resident_memory(pid);
    let held = flood(&d.unix_url, 3, 60_000).await;
    let (_, peak) = resident_memory(pid);
    let grew = peak.saturating_sub(baseline);
    assert!(grew > 20 * MIB, "the flood took only {} MiB", grew / MIB);
    drop(held);
    // Back to within half of what the flood took, in a few seconds
    // (closing connections linger up to 1 s): about a fifth stays (thread
    // caches, the router's maps at their smallest). glibc's malloc, and
    // call tables that kept their room, kept all of it and more.
    let bound = baseline + grew / 2;
    let mut rss = u64::MAX;
    for _ in 0..100 {
        rss = resident_memory(pid).0;
        if rss <= bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "RSS: {} MiB before, {} MiB at the peak, {} MiB after",
        baseline / MIB,
        peak / MIB,
        rss / MIB
    );
    assert!(rss <= bound, "{} MiB still resident", rss / MIB);
}
