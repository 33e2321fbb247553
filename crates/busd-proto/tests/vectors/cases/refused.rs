//! `invalid.json`: frames every reader must refuse, whatever the
//! connection passes beside its stream, and the code it refuses them with.

use busd_proto::{ErrorCode, FDS_FLAG, Op, POOL_FLAG, SEGMENT_FLAG};
use rmp::encode as mp;

use super::{VIOLATION, subject};

/// One frame to refuse.
pub(crate) struct Refused {
    pub(crate) name: &'static str,
    pub(crate) note: &'static str,
    pub(crate) bytes: Vec<u8>,
    /// The reader's frame limit.
    pub(crate) max_frame: u32,
    pub(crate) code: ErrorCode,
}

/// The frame limit of most of these vectors.
const MAX_FRAME: u32 = 1 << 20;

/// Both length words, `header` (its length or'ed with `flags`), then `tail`.
fn frame(header: &[u8], flags: u32, tail: &[u8]) -> Vec<u8> {
    let len = u32::try_from(4 + header.len() + tail.len()).expect("a short frame");
    let word = u32::try_from(header.len()).expect("a short header") | flags;
    [
        &len.to_be_bytes()[..],
        &word.to_be_bytes()[..],
        header,
        tail,
    ]
    .concat()
}

/// `{name: [fields…]}`, the fields written by `fields`.
fn op(name: &str, len: u32, fields: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    mp::write_map_len(&mut out, 1).expect("vec write");
    mp::write_str(&mut out, name).expect("vec write");
    mp::write_array_len(&mut out, len).expect("vec write");
    fields(&mut out);
    out
}

fn header_of(op: &Op) -> Vec<u8> {
    rmp_serde::to_vec(op).expect("an op encodes")
}

fn publish() -> Vec<u8> {
    header_of(&Op::Pub {
        subject: subject("a.b"),
        headers: None,
    })
}

fn refused(name: &'static str, note: &'static str, bytes: Vec<u8>) -> Refused {
    Refused {
        name,
        note,
        bytes,
        max_frame: MAX_FRAME,
        code: VIOLATION,
    }
}

fn too_large(name: &'static str, note: &'static str, bytes: Vec<u8>) -> Refused {
    Refused {
        name,
        note,
        bytes,
        max_frame: 1024,
        code: ErrorCode::FrameTooLarge,
    }
}

/// Every refused frame.
pub(crate) fn refused_cases() -> Vec<Refused> {
    let w = |r: Result<(), rmp::encode::ValueWriteError>| r.expect("vec write");
    let str_field = |s: &'static str| move |o: &mut Vec<u8>| w(mp::write_str(o, s));
    vec![
        refused(
            "length-below-header-word",
            "A length under 4 leaves no room for the header-length word.",
            vec![0, 0, 0, 3, 0, 0, 0],
        ),
        too_large(
            "length-over-max-frame",
            "Refused from the length alone (limit 1024 here), before anything else is read or \
             any buffer is allocated.",
            vec![0, 0, 0x04, 0x01],
        ),
        refused(
            "header-longer-than-frame",
            "",
            [&[0u8, 0, 0, 8, 0, 0, 0, 100][..], &[0u8; 4][..]].concat(),
        ),
        refused(
            "not-messagepack",
            "0xc1 is never valid.",
            frame(&[0xc1], 0, &[]),
        ),
        refused(
            "bytes-after-op",
            "A Ping followed by a nil inside the header length: a header is one op and nothing \
             more.",
            frame(&[header_of(&Op::Ping), vec![0xc0]].concat(), 0, &[]),
        ),
        refused(
            "unknown-unit-op",
            "An op this daemon does not know: the frame is refused, not skipped.",
            frame(
                &{
                    let mut o = Vec::new();
                    w(mp::write_str(&mut o, "Shutdown"));
                    o
                },
                0,
                &[],
            ),
        ),
        refused(
            "unknown-op",
            "",
            frame(
                &op("Frobnicate", 1, |o| w(mp::write_uint(o, 1).map(|_| ()))),
                0,
                &[],
            ),
        ),
        refused(
            "extra-field",
            "Unsub with a second field: an array longer than the op's fields is refused.",
            frame(
                &op("Unsub", 2, |o| {
                    w(mp::write_uint(o, 1).map(|_| ()));
                    w(mp::write_uint(o, 2).map(|_| ()));
                }),
                0,
                &[],
            ),
        ),
        refused(
            "hello-with-a-third-flag",
            "A Hello of seven fields (a flag this daemon does not know, up): refused like any \
             extra field.",
            frame(
                &op("Hello", 7, |o| {
                    w(mp::write_uint(o, 1).map(|_| ()));
                    mp::write_nil(o).expect("vec write");
                    w(mp::write_str(o, "app"));
                    w(mp::write_str(o, "None"));
                    for _ in 0..3 {
                        mp::write_bool(o, true).expect("vec write");
                    }
                }),
                0,
                &[],
            ),
        ),
        refused(
            "missing-field",
            "Unsub without its sid.",
            frame(&op("Unsub", 0, |_| {}), 0, &[]),
        ),
        refused(
            "wrong-type",
            "Unsub with a string for its sid.",
            frame(&op("Unsub", 1, str_field("1")), 0, &[]),
        ),
        refused(
            "negative-integer",
            "Unsub with sid -1 (negative fixint 0xff): ids are unsigned.",
            frame(
                &op("Unsub", 1, |o| w(mp::write_sint(o, -1).map(|_| ()))),
                0,
                &[],
            ),
        ),
        refused(
            "invalid-subject",
            "An empty token.",
            frame(
                &op("Pub", 2, |o| {
                    w(mp::write_str(o, "a..b"));
                    mp::write_nil(o).expect("vec write");
                }),
                0,
                &[],
            ),
        ),
        refused(
            "subject-too-long",
            "1025 bytes: subjects are at most 1024.",
            frame(
                &op("Pub", 2, |o| {
                    w(mp::write_str(o, &"x".repeat(1025)));
                    mp::write_nil(o).expect("vec write");
                }),
                0,
                &[],
            ),
        ),
        refused(
            "invalid-pfn",
            "A Msg whose sender's package family name has no publisher id.",
            frame(
                &op("Msg", 4, |o| {
                    w(mp::write_uint(o, 1).map(|_| ()));
                    w(mp::write_str(o, "a.b"));
                    mp::write_array_len(o, 2).expect("vec write");
                    w(mp::write_uint(o, 7).map(|_| ()));
                    w(mp::write_str(o, "NoSeparator"));
                    mp::write_nil(o).expect("vec write");
                }),
                0,
                &[],
            ),
        ),
        refused(
            "unknown-overflow",
            "A Sub whose overflow policy this daemon does not know.",
            frame(
                &op("Sub", 4, |o| {
                    w(mp::write_uint(o, 1).map(|_| ()));
                    w(mp::write_str(o, "a.b"));
                    mp::write_nil(o).expect("vec write");
                    w(mp::write_str(o, "Sometimes"));
                }),
                0,
                &[],
            ),
        ),
        refused(
            "unknown-error-code",
            "",
            frame(
                &op("Error", 3, |o| {
                    w(mp::write_str(o, "Oops"));
                    w(mp::write_str(o, "?"));
                    mp::write_nil(o).expect("vec write");
                }),
                0,
                &[],
            ),
        ),
        refused(
            "fd-count-zero",
            "FDS_FLAG with a count of 0: a frame without fds does not set the flag.",
            frame(&publish(), FDS_FLAG, &[0, 0]),
        ),
        refused(
            "fd-count-over-253",
            "",
            frame(&publish(), FDS_FLAG, &[0, 254]),
        ),
        refused(
            "fd-count-cut-short",
            "FDS_FLAG and one byte after the header.",
            frame(&publish(), FDS_FLAG, &[1]),
        ),
        refused(
            "fds-on-ping",
            "Only Pub, Msg, Req, Call and Resp carry fds.",
            frame(&header_of(&Op::Ping), FDS_FLAG, &[0, 1]),
        ),
        refused(
            "segment-and-pooled",
            "A payload is in a segment or in a pool, not both.",
            frame(&publish(), SEGMENT_FLAG | POOL_FLAG, &[0; 16]),
        ),
        refused(
            "segment-length-cut-short",
            "Seven bytes where a segment frame carries eight.",
            frame(&publish(), SEGMENT_FLAG, &[0, 0, 0, 0, 0, 0, 1]),
        ),
        refused(
            "segment-empty",
            "A segment of 0 bytes.",
            frame(&publish(), SEGMENT_FLAG, &0u64.to_be_bytes()),
        ),
        too_large(
            "segment-over-max-frame",
            "A segment counts against the frame limit (1024 here), as if it were in the stream.",
            frame(&publish(), SEGMENT_FLAG, &1025u64.to_be_bytes()),
        ),
        refused(
            "pooled-ref-cut-short",
            "Fifteen bytes where a pooled frame carries sixteen.",
            frame(&publish(), POOL_FLAG, &[0; 15]),
        ),
        too_large(
            "pooled-over-max-frame",
            "A pooled payload counts against the frame limit (1024 here).",
            frame(
                &publish(),
                POOL_FLAG,
                &[0u64.to_be_bytes(), 1025u64.to_be_bytes()].concat(),
            ),
        ),
    ]
}
