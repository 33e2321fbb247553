//! Pooled frames (`POOL_FLAG`): a payload's place in the sender's pool
//! travels in the stream, and the decoder asks its source for the payload.

use std::sync::{Arc, Mutex};

use busd_proto::{
    Body, CodecError, Frame, FrameCodec, Lease, LeaseSource, Op, POOL_REF_FIELD, SegmentFd,
    SegmentSource, Subject, encode_head_with,
};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// A pool of 64 KiB holding `7`s, which records the blocks handed back.
#[derive(Debug, Default)]
struct FakePool {
    released: Mutex<Vec<u64>>,
}

impl LeaseSource for FakePool {
    fn copy_to(&self, _offset: u64, dst: &mut [u8]) {
        dst.fill(7);
    }

    fn release(&self, offset: u64) {
        self.released.lock().unwrap().push(offset);
    }
}

/// Lends from a [`FakePool`], checking ranges as a real source does.
struct Source(Arc<FakePool>);

impl SegmentSource for Source {
    fn take(&mut self, _len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        Err(CodecError::Malformed("no segments".into()))
    }

    fn take_pooled(&mut self, offset: u64, len: u64) -> Result<(Bytes, Option<Lease>), CodecError> {
        if offset.checked_add(len).is_none_or(|end| end > 64 * 1024) {
            return Err(CodecError::Malformed("outside the pool".into()));
        }
        let pool: Arc<dyn LeaseSource> = self.0.clone();
        Ok((Bytes::new(), Some(Lease::new(offset, len, pool))))
    }
}

fn pub_op() -> Op {
    Op::Pub {
        subject: Subject::from_static("big.data"),
        headers: None,
    }
}

fn pooled(offset: u64, len: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_head_with(&pub_op(), Body::Pooled { offset, len }, &mut buf).unwrap();
    buf
}

#[test]
fn a_pooled_frame_decodes_to_a_lease_that_hands_its_block_back() {
    let pool = Arc::new(FakePool::default());
    let mut codec = FrameCodec::with_segments(1 << 20, Box::new(Source(pool.clone())));
    let mut buf = pooled(8192, 5000);
    let frame: Frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame.op, pub_op());
    assert!(frame.payload.is_empty() && frame.segment.is_none());
    let lease = frame.lease.clone().expect("a lease");
    assert_eq!(lease.len(), 5000);
    assert!(lease.to_vec().iter().all(|&b| b == 7));
    drop(frame);
    assert!(
        pool.released.lock().unwrap().is_empty(),
        "a copy still holds it"
    );
    drop(lease);
    assert_eq!(*pool.released.lock().unwrap(), [8192]);
}

#[test]
fn a_pooled_frame_is_refused_without_a_pool_outside_it_or_malformed() {
    let err = FrameCodec::new(1 << 20)
        .decode(&mut pooled(0, 10))
        .unwrap_err();
    assert!(err.to_string().contains("shm"), "{err}");

    let pool = Arc::new(FakePool::default());
    let mut codec = FrameCodec::with_segments(1 << 20, Box::new(Source(pool.clone())));
    let err = codec.decode(&mut pooled(u64::MAX, 2)).unwrap_err();
    assert!(err.to_string().contains("outside the pool"), "{err}");

    // Longer than max_frame, whatever the pool says.
    let mut small = FrameCodec::with_segments(1024, Box::new(Source(pool.clone())));
    assert!(matches!(
        small.decode(&mut pooled(0, 4096)),
        Err(CodecError::FrameTooLarge { .. })
    ));

    // A pool reference cut short.
    let mut short = pooled(0, 10);
    short.truncate(short.len() - 1);
    let len = u32::try_from(short.len() - 4).unwrap();
    short[..4].copy_from_slice(&len.to_be_bytes());
    let err = codec.decode(&mut short).unwrap_err();
    assert!(
        err.to_string().contains(&POOL_REF_FIELD.to_string()),
        "{err}"
    );
    assert!(pool.released.lock().unwrap().is_empty(), "nothing was lent");
}
