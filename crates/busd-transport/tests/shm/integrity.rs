//! Integrity: a small ring carries every byte in order; segments are
//! checked, and mapped only when a receiver needs their bytes.

use super::hostile::blank_memfd;
use super::*;

#[tokio::test]
async fn a_small_ring_carries_every_byte_in_order() {
    let mut server = Server::start().await;
    // A 4 KiB ring: writes wrap, pad and wait for room all the time.
    let mut client = busd_transport::connect_shm(&server.path, busd_transport::MIN_SHM_RING)
        .await
        .unwrap();
    client.writer.write_all(b"ping").await.unwrap();
    let mut conn = server.next().await;
    let mut buf = [0; 4];
    conn.reader.read_exact(&mut buf).await.unwrap();
    let sent: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        let mut rest = &sent[..];
        let mut i = 0usize;
        while !rest.is_empty() {
            // Sizes from 1 byte to past the ring's quarter, alternating plain
            // and vectored writes.
            let n = (1 + (i * 7919) % 3000).min(rest.len());
            let (a, b) = rest[..n].split_at(n / 3);
            let wrote = if i % 2 == 0 {
                client.writer.write(&rest[..n]).await.unwrap()
            } else {
                client
                    .writer
                    .write_vectored(&[IoSlice::new(a), IoSlice::new(&[]), IoSlice::new(b)])
                    .await
                    .unwrap()
            };
            assert!(wrote > 0);
            rest = &rest[wrote..];
            i += 1;
        }
        client.writer.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::new();
    // Small reads too: messages are served across several of them.
    let mut small = [0u8; 777];
    loop {
        let n = conn.reader.read(&mut small).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&small[..n]);
    }
    let _client = writer.await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "bytes differ");
}

/// How many mappings of sealed payload memfds this process holds.
fn payload_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:busd-payload"))
        .count()
}

#[tokio::test]
async fn an_unmapping_decoder_checks_segments_and_maps_only_on_demand() {
    use busd_proto::{Body, Op, Subject, encode_head_with};
    use busd_transport::{Mapping, frame_codec, map_segment, seal_payload};
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    let mut server = Server::start().await;
    let (daemon, client) = server.shm_pair().await;
    let (_, client_fds) = frame_codec(client.fds, 1 << 20, Mapping::Mapped);
    let client_fds = client_fds.expect("an shm connection passes fds");
    let (codec, _) = frame_codec(daemon.fds, 1 << 20, Mapping::Unmapped);
    let mut frames = FramedRead::new(daemon.reader, codec);
    let mut writer = client.writer;
    let op = Op::Pub {
        subject: Subject::from_static("big.data"),
        headers: None,
    };
    let mut head = bytes::BytesMut::new();
    encode_head_with(&op, Body::Segment(300_000), &mut head).unwrap();
    // Both segments announced as 300,000 bytes: the fd, then the frame.
    let mut send = async |fd: BorrowedFd<'_>| {
        client_fds.send(fd).await.unwrap();
        writer.write_all(&head).await.unwrap();
        timeout(PROMPT, frames.next()).await.unwrap().unwrap()
    };

    let payload: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
    let segment = seal_payload(&payload).unwrap();
    let frame = send(segment.as_fd()).await.unwrap();
    assert_eq!(frame.op, op);
    assert!(frame.payload.is_empty(), "not mapped by the decoder");
    let received = frame.segment.expect("the segment");
    assert_eq!(received.len(), 300_000);
    assert_eq!(payload_mappings(), 0, "nothing mapped yet");
    let bytes = map_segment(&received).unwrap();
    assert_eq!(&bytes[..], &payload[..]);
    assert_eq!(payload_mappings(), 1);
    drop(bytes);
    assert_eq!(payload_mappings(), 0, "unmapped with its last view");

    // Checked all the same: an unsealed memfd is refused.
    let unsealed = blank_memfd(300_000, SealFlags::empty());
    let err = send(unsealed.as_fd()).await.unwrap_err();
    assert!(err.to_string().contains("segment refused"), "{err}");
}
