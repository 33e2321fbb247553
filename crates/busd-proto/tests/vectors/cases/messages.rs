//! `pubsub.json` (subscriptions, publishes, deliveries) and `bodies.json`
//! (every way a payload travels, with and without attached fds).

use busd_proto::{Op, Overflow};

use super::{Group, WEATHER, bare, carried, headers, inline, sender, subject};
use crate::meaning::Payload;

fn sub(sid: u64, pattern: &str, queue: Option<&str>, overflow: Overflow) -> Op {
    Op::Sub {
        sid,
        subject: subject(pattern),
        queue: queue.map(str::to_owned),
        overflow,
    }
}

fn publish(to: &str, pairs: Option<&[(&str, &str)]>) -> Op {
    Op::Pub {
        subject: subject(to),
        headers: pairs.map(headers),
    }
}

fn msg(sid: u64, to: &str, from: (u64, Option<&str>), pairs: Option<&[(&str, &str)]>) -> Op {
    Op::Msg {
        sid,
        subject: subject(to),
        from: sender(from.0, from.1),
        headers: pairs.map(headers),
    }
}

const PARIS: &str = "weather.today.paris";

pub(super) fn pubsub() -> Group {
    let json = br#"{"temp":21.5}"#;
    let long = "weather.forecast.europe.france.ile-de-france.paris";
    Group {
        file: "pubsub.json",
        description: "Subscriptions (each overflow policy), publishes and deliveries, with and without \
                      headers, and integers of every MessagePack width.",
        vectors: vec![
            bare(
                "sub",
                "Overflow Disconnect, the default; no queue group.",
                sub(1, PARIS, None, Overflow::Disconnect),
            ),
            bare(
                "sub-queue-drop-oldest",
                "Wildcards, a queue group, overflow DropOldest.",
                sub(2, "weather.*.>", Some("workers"), Overflow::DropOldest),
            ),
            bare(
                "sub-block",
                "Overflow Block; a sid of 300 (MessagePack uint 16).",
                sub(300, ">", None, Overflow::Block),
            ),
            bare("unsub", "", Op::Unsub { sid: 2 }),
            inline(
                "pub-minimal",
                "The example of docs/PROTOCOL.md, section 3.1.",
                publish("a.b", None),
                b"hi",
            ),
            inline("pub", "No headers: nil.", publish(PARIS, None), b"hello"),
            inline(
                "pub-headers",
                "Header keys in ascending byte order, as the map is written.",
                publish(
                    PARIS,
                    Some(&[("content-type", "application/json"), ("busd-trace", "7f3a")]),
                ),
                json,
            ),
            inline(
                "pub-empty-headers",
                "Headers present but empty (an empty map, not nil), and an empty payload.",
                publish(PARIS, Some(&[])),
                b"",
            ),
            inline(
                "pub-long-subject",
                "A subject of 32 bytes or more: MessagePack str 8.",
                publish(long, None),
                b"x",
            ),
            inline(
                "msg-unpackaged-sender",
                "A delivery from an unpackaged client: the sender's pfn is nil.",
                msg(1, PARIS, (7, None), None),
                b"hello",
            ),
            inline(
                "msg-package-sender",
                "The sender as the daemon proved it.",
                msg(1, PARIS, (42, Some(WEATHER)), None),
                b"hello",
            ),
            inline(
                "msg-headers",
                "",
                msg(
                    2,
                    PARIS,
                    (42, Some(WEATHER)),
                    Some(&[("content-type", "application/json")]),
                ),
                json,
            ),
            inline(
                "msg-wide-ids",
                "A sid of 2^32 (uint 64) and a client id of 2^64-1: integers past 2^53.",
                msg(1 << 32, PARIS, (u64::MAX, None), None),
                b"",
            ),
            inline(
                "msg-uint8-uint32-ids",
                "A sid of 200 (uint 8) and a client id of 65536 (uint 32).",
                msg(200, long, (65_536, Some(WEATHER)), None),
                b"x",
            ),
            bare(
                "dropped",
                "Drop-oldest subscription 2 lost 17 messages since the last notice.",
                Op::Dropped { sid: 2, count: 17 },
            ),
        ],
    }
}

pub(super) fn bodies() -> Group {
    let req = Op::Req {
        rid: 5,
        service: subject("contoso.files.open"),
        timeout_ms: 2000,
        headers: None,
    };
    let call = Op::Call {
        rid: 11,
        sid: 3,
        service: subject("contoso.files.open"),
        from: sender(8, Some(WEATHER)),
        headers: None,
    };
    let resp = Op::Resp {
        rid: 11,
        status: busd_proto::Status::Success,
        headers: None,
    };
    let big = Payload::Segment(1 << 20);
    Group {
        file: "bodies.json",
        description: "Each way a payload travels: in the stream (inline), in a sealed memfd (segment, \
                      shm only), in a payload pool (pooled, shm only; an offset's high 32 bits name a \
                      set pool), each with and without attached fds (unix and shm).",
        vectors: vec![
            bare(
                "inline-empty",
                "No payload: the frame ends with its header.",
                publish(PARIS, None),
            ),
            inline(
                "inline-binary",
                "The payload is raw bytes after the header, never encoded.",
                publish(PARIS, None),
                &[0x00, 0xff, 0xc1, 0x0a],
            ),
            carried(
                "segment-pub",
                "A 1 MiB payload in a sealed memfd passed beside the stream; the frame carries its \
                 length (u64) after the header.",
                publish("camera.frames", None),
                big.clone(),
                0,
            ),
            carried(
                "segment-msg",
                "",
                msg(4, "camera.frames", (9, None), None),
                big.clone(),
                0,
            ),
            carried(
                "pooled-own",
                "A payload at offset 65536 of the sender's own pool: offset and length (u64 each) \
                 after the header.",
                publish("camera.frames", None),
                Payload::Pooled {
                    offset: 65_536,
                    len: 20_000,
                },
                0,
            ),
            carried(
                "pooled-set",
                "A delivery in set pool 3 at offset 8192 within it: the offset on the wire is \
                 3 << 32 | 8192.",
                msg(4, "camera.frames", (9, None), None),
                Payload::Pooled {
                    offset: (3 << 32) | 8192,
                    len: 100_000,
                },
                0,
            ),
            carried(
                "fds-inline-pub",
                "Two fds attached: FDS_FLAG set, a u16 count after the header, then the payload.",
                publish("logs.rotate", None),
                Payload::Inline(b"log".to_vec()),
                2,
            ),
            carried(
                "fds-segment-req",
                "A request with a segment and one fd: the count comes before the segment's length.",
                req,
                big,
                1,
            ),
            carried(
                "fds-pooled-msg",
                "A pooled delivery with three fds: the count comes before offset and length.",
                msg(4, "camera.frames", (9, Some(WEATHER)), None),
                Payload::Pooled {
                    offset: 0,
                    len: 16_384,
                },
                3,
            ),
            carried(
                "fds-call",
                "",
                call,
                Payload::Inline(b"/tmp/report.pdf".to_vec()),
                1,
            ),
            carried(
                "fds-resp",
                "The largest count the kernel passes in one message.",
                resp,
                Payload::Inline(Vec::new()),
                253,
            ),
        ],
    }
}
