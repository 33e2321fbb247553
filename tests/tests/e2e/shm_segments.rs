//! Large payloads over shm without payload pools (`limits.shm_pool_bytes
//! = 0`, or a pool with no room): sealed memfds passed beside the rings,
//! mapped read-only by shm receivers, copied into the stream for the
//! others. With pools, see `shm_pools`.

use std::os::fd::AsFd;
use std::time::Duration;

use busd_client::{Client, Subscriber};
use busd_e2e::{RawClient, TestDaemon, Transport};
use busd_proto::{ErrorCode, Op, Subject};
use bytes::Bytes;
use futures::StreamExt;

/// A payload whose every byte depends on its position.
fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The `/proc/self/maps` line of the mapping holding `bytes`, if any.
fn mapping_of(bytes: &[u8]) -> Option<String> {
    let addr = bytes.as_ptr() as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .find(|line| {
            let range = line.split_whitespace().next().unwrap_or("");
            let (start, end) = range.split_once('-').unwrap_or(("0", "0"));
            let start = usize::from_str_radix(start, 16).unwrap_or(0);
            let end = usize::from_str_radix(end, 16).unwrap_or(0);
            (start..end).contains(&addr)
        })
        .map(str::to_owned)
}

/// Whether `bytes` are a view of a read-only shared mapping of a sealed
/// payload memfd (a segment), rather than a copy in ordinary memory.
fn is_segment_view(bytes: &[u8]) -> bool {
    is_view_of(bytes, "busd-payload")
}

/// Whether `bytes` are a view of a read-only shared mapping of the memfd
/// called `name`.
fn is_view_of(bytes: &[u8], name: &str) -> bool {
    mapping_of(bytes).is_some_and(|line| {
        let perms = line.split_whitespace().nth(1).unwrap_or("");
        line.contains(&format!("memfd:{name} ")) && perms == "r--s"
    })
}

/// A daemon with pools off: large payloads go as segments.
async fn segments_daemon() -> TestDaemon {
    TestDaemon::start_with(|c| c.limits.shm_pool_bytes = 0).await
}

async fn next(sub: &mut Subscriber, what: &str) -> busd_client::Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no message for {what}"))
        .unwrap_or_else(|| panic!("subscription for {what} ended"))
}

async fn shm_client(d: &TestDaemon, threshold: usize) -> Client {
    Client::builder(d.url(Transport::Shm))
        .segment_threshold(threshold)
        .connect()
        .await
        .expect("connect over shm")
}

#[tokio::test]
async fn a_large_payload_reaches_shm_receivers_as_a_read_only_segment_and_others_as_bytes() {
    let d = segments_daemon().await;
    let publisher = shm_client(&d, 4096).await;
    let mut receivers = Vec::new();
    for t in Transport::ALL {
        let client = Client::connect(&d.url(t)).await.expect("connect");
        let sub = client.subscribe("big.>").await.expect("subscribe");
        receivers.push((t, client, sub));
    }
    let big = pattern(300_000);
    publisher.publish("big.data", big.clone()).await.unwrap();
    // Under the threshold, or over it but under 64 KiB (a fresh memfd
    // costs more than the rings there): through the ring as usual.
    publisher.publish("big.small", pattern(1000)).await.unwrap();
    publisher
        .publish("big.middle", pattern(40_000))
        .await
        .unwrap();
    for (t, _client, sub) in &mut receivers {
        let m = next(sub, "big.data").await;
        assert_eq!(m.subject.as_str(), "big.data");
        assert_eq!(m.payload, big, "{t:?}: every byte as published");
        assert_eq!(m.from.client_id, publisher.client_id());
        assert_eq!(
            is_segment_view(&m.payload),
            *t == Transport::Shm,
            "{t:?}: {:?}",
            mapping_of(&m.payload)
        );
        let small = next(sub, "big.small").await;
        assert_eq!(small.payload, pattern(1000));
        assert!(
            !is_segment_view(&small.payload),
            "{t:?}: small ones go inline"
        );
        let middle = next(sub, "big.middle").await;
        assert_eq!(middle.payload, pattern(40_000));
        assert!(
            !is_segment_view(&middle.payload),
            "{t:?}: under 64 KiB, inline"
        );
    }
}

#[tokio::test]
async fn requests_and_replies_carry_segments_both_ways_and_fall_back_across_transports() {
    let d = segments_daemon().await;
    for (requester_t, responder_t) in [
        (Transport::Shm, Transport::Shm),
        (Transport::Shm, Transport::Unix),
        (Transport::Tcp, Transport::Shm),
    ] {
        let responder = match responder_t {
            Transport::Shm => shm_client(&d, 4096).await,
            t => Client::connect(&d.url(t)).await.unwrap(),
        };
        let requester = match requester_t {
            Transport::Shm => shm_client(&d, 4096).await,
            t => Client::connect(&d.url(t)).await.unwrap(),
        };
        let mut service = responder.serve("files.get").await.unwrap();
        let answering = tokio::spawn(async move {
            let request = service.next().await.expect("a request");
            let seen = (request.payload.clone(), is_segment_view(&request.payload));
            // Answer with the request reversed: a different large payload.
            let mut reply = request.payload.to_vec();
            reply.reverse();
            request.respond(reply).await.expect("respond");
            seen
        });
        let question = pattern(100_000);
        let answer = requester
            .request("files.get", question.clone())
            .await
            .expect("an answer");
        let (seen, request_was_segment) = answering.await.unwrap();
        let what = format!("{requester_t:?} → {responder_t:?}");
        assert_eq!(seen, question, "{what}: request bytes");
        assert_eq!(
            request_was_segment,
            requester_t == Transport::Shm && responder_t == Transport::Shm,
            "{what}"
        );
        let mut expected = question.to_vec();
        expected.reverse();
        assert_eq!(answer.payload, expected, "{what}: reply bytes");
        assert_eq!(
            is_segment_view(&answer.payload),
            requester_t == Transport::Shm && responder_t == Transport::Shm,
            "{what}"
        );
    }
}

/// A raw shm client, welcomed, and an SDK subscriber that must keep getting
/// messages whatever the raw one does.
async fn hostile_setup(d: &TestDaemon) -> (RawClient, Client, Subscriber) {
    let (raw, welcome) = RawClient::connect_hello(&d.url(Transport::Shm)).await;
    assert!(matches!(welcome, Op::Welcome(_)), "{welcome:?}");
    let bystander = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let sub = bystander.subscribe("bulk").await.unwrap();
    (raw, bystander, sub)
}

fn bulk() -> Op {
    Op::Pub {
        subject: Subject::from_static("bulk"),
        headers: None,
    }
}

/// A memfd holding `payload`, with `seals`.
fn memfd(payload: &[u8], seals: busd_shm::SealFlags) -> std::os::fd::OwnedFd {
    let fd = busd_shm::create_memfd("hostile", payload.len() as u64).unwrap();
    rustix::io::pwrite(&fd, payload, 0).unwrap();
    if !seals.is_empty() {
        busd_shm::seal(fd.as_fd(), seals).unwrap();
    }
    fd
}

#[tokio::test]
async fn bad_segments_close_only_their_sender() {
    use busd_shm::SealFlags;
    let d = segments_daemon().await;
    let payload = pattern(10_000);
    let all = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW;
    let cases: Vec<(&str, Option<std::os::fd::OwnedFd>, u64)> = vec![
        (
            "unsealed",
            Some(memfd(&payload, SealFlags::empty())),
            10_000,
        ),
        (
            "still writable",
            Some(memfd(&payload, SealFlags::SHRINK | SealFlags::GROW)),
            10_000,
        ),
        (
            "may shrink",
            Some(memfd(&payload, SealFlags::WRITE | SealFlags::GROW)),
            10_000,
        ),
        ("no fd passed", None, 10_000),
        ("length announced wrong", Some(memfd(&payload, all)), 20_000),
        (
            "not a memfd",
            Some(std::fs::File::open("/dev/null").unwrap().into()),
            10_000,
        ),
    ];
    for (what, fd, len) in cases {
        let (mut raw, bystander, mut sub) = hostile_setup(&d).await;
        raw.send_segment(bulk(), fd.as_ref().map(AsFd::as_fd), len)
            .await;
        let frames = raw.recv_until_closed().await;
        assert_eq!(
            RawClient::error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{what}: {frames:?}"
        );
        // Nobody else noticed.
        bystander.publish("bulk", "still here").await.unwrap();
        assert_eq!(&next(&mut sub, what).await.payload[..], b"still here");
    }

    // A well-formed segment from the raw client is delivered.
    let (mut raw, _bystander, mut sub) = hostile_setup(&d).await;
    let fd = memfd(&payload, all);
    raw.send_segment(bulk(), Some(fd.as_fd()), 10_000).await;
    let m = next(&mut sub, "a good segment").await;
    assert_eq!(m.payload, payload);
    assert!(
        is_view_of(&m.payload, "hostile"),
        "{:?}",
        mapping_of(&m.payload)
    );
}

#[tokio::test]
async fn segment_frames_are_refused_over_plain_sockets() {
    let d = segments_daemon().await;
    for t in [Transport::Tcp, Transport::Unix] {
        let (mut raw, _) = RawClient::connect_hello(&d.url(t)).await;
        raw.send_segment(bulk(), None, 10_000).await;
        let frames = raw.recv_until_closed().await;
        assert_eq!(
            RawClient::error_code(&frames),
            Some(ErrorCode::ProtocolViolation),
            "{t:?}: {frames:?}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_stops_taking_segments_pins_few_of_them_and_is_cut_off() {
    // Queues of 1 MiB: 16 segments of 64 KiB, counted by their size.
    let d = TestDaemon::start_with(|c| {
        c.limits.shm_pool_bytes = 0;
        c.limits.max_frame = 1 << 20;
        c.limits.max_pending_bytes = 1 << 20;
    })
    .await;
    let (mut stuck, _) = RawClient::connect_hello(&d.url(Transport::Shm)).await;
    stuck
        .send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("bulk"),
            queue: None,
            overflow: busd_proto::Overflow::Disconnect,
        })
        .await;
    assert!(RawClient::error_code(&stuck.ping().await).is_none());
    let publisher = shm_client(&d, 1024).await;
    // One at a time (each flushed), so the stuck client's writer keeps up
    // and passes every fd it can before its queue fills.
    for _ in 0..300 {
        publisher.publish("bulk", pattern(64 * 1024)).await.unwrap();
        publisher.flush().await.unwrap();
    }
    // Only now does the stuck client read: what reached it, then the cut.
    let frames = tokio::time::timeout(Duration::from_secs(30), stuck.recv_until_closed())
        .await
        .expect("the daemon closes the stuck client");
    let delivered = frames
        .iter()
        .filter(|f| matches!(f.op, Op::Msg { .. }))
        .count();
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::SlowConsumer),
        "{delivered} delivered"
    );
    // Segments that waited in its socket, unread: a few dozen at most (the
    // control socket's buffer), not the 300 published.
    assert!(delivered <= 64, "{delivered} delivered");
}

#[tokio::test]
async fn a_payload_written_in_place_is_sent_without_a_copy_over_shm_and_as_bytes_elsewhere() {
    let d = segments_daemon().await;
    let shm_sub = Client::connect(&d.url(Transport::Shm)).await.unwrap();
    let mut shm_messages = shm_sub.subscribe("frames.>").await.unwrap();
    let tcp_sub = Client::connect(&d.url(Transport::Tcp)).await.unwrap();
    let mut tcp_messages = tcp_sub.subscribe("frames.>").await.unwrap();
    let expected = pattern(200_000);
    for t in [Transport::Shm, Transport::Unix] {
        let publisher = Client::connect(&d.url(t)).await.unwrap();
        let mut buffer = publisher.payload_buffer(expected.len()).await.unwrap();
        buffer.copy_from_slice(&expected);
        publisher
            .publish_buffer("frames.front", None, buffer)
            .await
            .unwrap();
        let m = next(&mut shm_messages, "shm receiver").await;
        assert_eq!(m.payload, expected, "{t:?}");
        // From an shm publisher the receiver maps the publisher's own memfd.
        assert_eq!(is_segment_view(&m.payload), t == Transport::Shm, "{t:?}");
        assert_eq!(
            next(&mut tcp_messages, "tcp receiver").await.payload,
            expected
        );
        let refused = publisher.payload_buffer(0).await.unwrap_err();
        assert_eq!(refused.kind(), busd_client::ErrorKind::FrameTooLarge);
    }
}
