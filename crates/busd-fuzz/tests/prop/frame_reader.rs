//! `busd_fuzz::frame_reader::check`: real frames (perhaps with a byte
//! changed, or cut short) or any bytes, served in reads of any size, some
//! not ready.

use busd_fuzz::{encode, frame_reader::check};
use proptest::prelude::*;

use crate::frame_codec::limit;
use crate::ops::frame;

/// Real frames, maybe with a byte changed and cut short; or any bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let real = (
        prop::collection::vec(frame(), 0..6),
        prop::option::of(any::<(prop::sample::Index, u8)>()),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(frames, flip, cut)| {
            let mut out: Vec<u8> = frames.iter().flat_map(encode).collect();
            if let (Some((at, byte)), false) = (flip, out.is_empty()) {
                let i = at.index(out.len());
                out[i] ^= byte;
            }
            if let Some(cut) = cut {
                out.truncate(cut.index(out.len() + 1));
            }
            out
        });
    prop_oneof![4 => real, 1 => prop::collection::vec(any::<u8>(), 0..64)]
}

proptest! {
    #[test]
    fn reads_of_any_size_yield_what_the_codec_decodes_at_once(
        limit in limit(),
        stream in stream(),
        // 0: not ready; 255: all that fits.
        sizes in prop::collection::vec(prop_oneof![1 => Just(0_u8), 4 => any::<u8>()], 0..16),
    ) {
        let input = [&[limit, sizes.len() as u8][..], &sizes, &stream].concat();
        check(&input);
    }
}
