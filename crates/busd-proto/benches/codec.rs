//! Encode and decode of a `Pub` frame, and decode of a `Msg`: the hot
//! path of every message.
//!
//! One iteration encodes a frame into a reused buffer and decodes it
//! back: the MessagePack header both ways, the payload only copied into
//! the buffer on encode (decode slices it out without copying).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use busd_proto::{Body, Frame, FrameCodec, Op, Pfn, Sender, Subject, encode_msg_head};
use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::{Decoder, Encoder};

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_pub_round_trip");
    for size in [16_usize, 64 * 1024] {
        let frame = Frame::with_payload(
            Op::Pub {
                subject: Subject::from_static("weather.today.paris"),
                headers: None,
            },
            Bytes::from(vec![0x5a; size]),
        );
        let mut codec = FrameCodec::new(8 << 20);
        let mut buf = BytesMut::with_capacity(size + 256);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
            b.iter(|| {
                codec.encode(black_box(frame), &mut buf).expect("encode");
                let decoded = codec
                    .decode(&mut buf)
                    .expect("decode")
                    .expect("a whole frame");
                assert_eq!(decoded.payload.len(), size);
                black_box(decoded)
            });
        });
    }
    group.finish();
}

/// Decoding a `Msg` as a subscriber does, one after another from the same
/// sender on the same subject.
fn msg_decode(c: &mut Criterion) {
    let subject = Subject::from_static("weather.today.paris");
    let from = Sender {
        client_id: 42,
        pfn: Some(Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").expect("a valid pfn")),
    };
    let mut one = BytesMut::new();
    encode_msg_head(7, &subject, &from, None, Body::Inline(16), &mut one).expect("encode");
    one.extend_from_slice(&[0x5a; 16]);
    let mut codec = FrameCodec::new(8 << 20);
    let mut buf = BytesMut::with_capacity(64 * one.len());
    c.bench_function("codec_msg_decode_16", |b| {
        b.iter(|| {
            buf.extend_from_slice(&one);
            let decoded = codec
                .decode(&mut buf)
                .expect("decode")
                .expect("a whole frame");
            black_box(decoded)
        });
    });
}

/// Encoding one `Msg` head, as the daemon does per delivery.
fn msg_head_encode(c: &mut Criterion) {
    let subject = Subject::from_static("weather.today.paris");
    let from = Sender {
        client_id: 42,
        pfn: Some(Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").expect("a valid pfn")),
    };
    let mut buf = BytesMut::with_capacity(1 << 16);
    c.bench_function("codec_msg_head_encode", |b| {
        b.iter(|| {
            if buf.len() > (1 << 15) {
                buf.clear();
            }
            encode_msg_head(7, &subject, &from, None, Body::Inline(16), &mut buf).expect("encode");
        });
    });
}

criterion_group!(benches, round_trip, msg_decode, msg_head_encode);
criterion_main!(benches);
