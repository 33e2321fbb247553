//! `busd_fuzz::frame_codec::check` on real frames (whole, with a byte
//! changed, cut short) and on any bytes, under small limits and a 1 GiB
//! one.

use busd_fuzz::{encode, frame_codec::check};
use proptest::prelude::*;

use crate::ops::frame;

/// A `max_frame` selector: 16 B to 4 KiB, or 1 GiB.
pub(crate) fn limit() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0_u8..9, 1 => Just(0x80)]
}

fn input(limit: u8, segments: bool, stream: &[u8]) -> Vec<u8> {
    [&[limit, u8::from(segments)], stream].concat()
}

proptest! {
    #[test]
    fn any_bytes(
        limit in limit(),
        segments in any::<bool>(),
        stream in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        check(&input(limit, segments, &stream));
    }

    #[test]
    fn real_frames_whole_changed_and_cut(
        frames in prop::collection::vec(frame(), 1..5),
        limit in limit(),
        segments in any::<bool>(),
        flip in any::<(prop::sample::Index, u8)>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(encode).collect();
        check(&input(limit, segments, &stream));
        let mut flipped = stream.clone();
        flipped[flip.0.index(stream.len())] ^= flip.1;
        check(&input(limit, segments, &flipped));
        check(&input(limit, segments, &stream[..cut.index(stream.len())]));
    }
}
