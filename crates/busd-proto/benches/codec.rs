//! Encode and decode of a `Pub` frame, the hot path of every message.
//!
//! One iteration encodes a frame into a reused buffer and decodes it
//! back: the MessagePack header both ways, the payload only copied into
//! the buffer on encode (decode slices it out without copying).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use busd_proto::{Frame, FrameCodec, Op, Subject};
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

criterion_group!(benches, round_trip);
criterion_main!(benches);
