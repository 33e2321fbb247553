//! `busd_fuzz::op_header::check`: headers rmp-serde wrote for any op, or
//! plain `Pub` and `Msg` headers written by hand (so names the types would
//! refuse reach the decoders), perhaps cut or with a byte changed or
//! added; and any bytes. Several in turn, through one codec's name cache.

use busd_fuzz::op_header::{check, input};
use proptest::prelude::*;

use crate::ops::op;

/// A plain `Pub` or `Msg` header written by hand, so names the types would
/// refuse reach the decoders.
fn hand_written() -> impl Strategy<Value = Vec<u8>> {
    let subject = prop_oneof![
        "[ab.*>]{0,6}",
        "[a-z.]{30,40}",
        Just("weather.today".to_owned())
    ];
    let pfn = prop::option::of(prop_oneof![
        "[A-Za-z.]{2,4}_[0-9a-z]{12,13}",
        Just("Fabrikam.Maps_1234567890abc".to_owned()),
    ]);
    (any::<bool>(), any::<u64>(), subject, any::<u64>(), pfn).prop_map(
        |(msg, sid, subject, client, pfn)| {
            let mut h = vec![0x81];
            rmp::encode::write_str(&mut h, if msg { "Msg" } else { "Pub" }).unwrap();
            rmp::encode::write_array_len(&mut h, if msg { 4 } else { 2 }).unwrap();
            if msg {
                rmp::encode::write_uint(&mut h, sid).unwrap();
            }
            rmp::encode::write_str(&mut h, &subject).unwrap();
            if msg {
                rmp::encode::write_array_len(&mut h, 2).unwrap();
                rmp::encode::write_uint(&mut h, client).unwrap();
                match &pfn {
                    Some(p) => rmp::encode::write_str(&mut h, p).unwrap(),
                    None => rmp::encode::write_nil(&mut h).unwrap(),
                }
            }
            rmp::encode::write_nil(&mut h).unwrap();
            h
        },
    )
}

/// A header: serde's bytes of any op, or a hand-written one, either of
/// them perhaps cut or with a byte changed or appended; or any bytes.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let whole = prop_oneof![
        op().prop_map(|op| rmp_serde::to_vec(&op).expect("encodes")),
        hand_written(),
    ];
    let mutation = (0_u8..4, any::<prop::sample::Index>(), any::<u8>());
    prop_oneof![
        3 => (whole, mutation).prop_map(|(mut h, (how, at, byte))| {
            let i = at.index(h.len());
            match how {
                0 => {}
                1 => h.truncate(i),
                2 => h[i] ^= byte | 1,
                _ => h.push(byte),
            }
            // The input gives a header a length byte.
            h.truncate(255);
            h
        }),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #[test]
    fn the_codec_decodes_any_header_as_serde_does(
        headers in prop::collection::vec(header(), 1..6),
    ) {
        check(&input(&headers));
    }

    /// The same plain message header again and again (the cached names),
    /// between others.
    #[test]
    fn cached_names_decode_as_serde_does(
        repeated in hand_written(),
        others in prop::collection::vec(header(), 0..3),
    ) {
        let mut headers = vec![repeated.clone(), repeated.clone()];
        headers.extend(others);
        headers.push(repeated);
        check(&input(&headers));
    }
}
