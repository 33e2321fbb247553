//! Writes the seed corpora, `fuzz/corpus/<target>/`: real frames, headers,
//! subjects, configurations and scripts, each a meaningful start for a
//! fuzzer to mutate. The files are checked in (and `tests/seeds.rs` runs
//! each through its check); run this again after a change to the wire
//! format or to a check's input layout:
//!
//! ```sh
//! cargo run -p busd-fuzz --example seeds
//! ```

#![forbid(unsafe_code)]

use std::path::Path;

use busd_core::RouterLimits;
use busd_fuzz::router::{self, Step as Call};
use busd_fuzz::shm_ring::{Input, Liar, Step};
use busd_fuzz::{encode, op_header};
use busd_proto::{
    AuthKind, ErrorCode, Frame, Headers, Hello, Limits, Op, Overflow, Pfn, Ref, SegmentFd, Sender,
    Status, Subject, Welcome,
};
use bytes::Bytes;

/// `max_frame` selectors (`busd_fuzz::max_frame`).
const MAX_4K: u8 = 8;
const MAX_16: u8 = 0;
const MAX_1G: u8 = 0x80;

fn subject(s: &str) -> Subject {
    Subject::parse(s).expect("a valid subject")
}

fn pfn(s: &str) -> Pfn {
    Pfn::parse(s).expect("a valid package family name")
}

fn headers() -> Headers {
    Headers::from([("trace".to_owned(), "4bf92f35".to_owned())])
}

/// Named frames covering the operations a daemon reads and writes.
fn frames() -> Vec<(&'static str, Frame)> {
    let weather = pfn("Contoso.Weather_8wekyb3d8bbwe");
    let packaged = Sender {
        client_id: 300,
        pfn: Some(weather.clone()),
    };
    let payload = |b: &'static [u8]| Bytes::from_static(b);
    let hello = Op::Hello(Hello {
        version: 1,
        pfn: Some(weather),
        name: "weather".into(),
        auth: AuthKind::Token,
        fds: true,
        set_pools: false,
    });
    let sub = Op::Sub {
        sid: 7,
        subject: subject("weather.*.paris"),
        queue: Some("workers".into()),
        overflow: Overflow::Block,
    };
    let pub_plain = Op::Pub {
        subject: subject("weather.today.paris"),
        headers: None,
    };
    let pub_headers = Op::Pub {
        subject: subject("weather.week"),
        headers: Some(headers()),
    };
    let msg = Op::Msg {
        sid: 70_000,
        subject: subject("weather.today.paris"),
        from: packaged.clone(),
        headers: None,
    };
    let req = Op::Req {
        rid: 1,
        service: subject("contoso.weather.forecast"),
        timeout_ms: 5000,
        headers: None,
    };
    let call = Op::Call {
        rid: 9,
        sid: 2,
        service: subject("contoso.weather.forecast"),
        from: packaged,
        headers: Some(headers()),
    };
    let resp = Op::Resp {
        rid: 9,
        status: Status::Failure,
        headers: None,
    };
    let error = Op::Error {
        code: ErrorCode::SlowConsumer,
        message: "queue full".into(),
        refers: Some(Ref::Sid(7)),
    };
    let welcome = Op::Welcome(Welcome {
        client_id: 42,
        pfn: None,
        limits: Limits {
            max_frame: 4096,
            max_pending_msgs: 16,
            max_pending_bytes: 65536,
        },
        fds: false,
        set_pools: false,
    });
    vec![
        ("hello", Frame::new(hello)),
        ("sub-queue", Frame::new(sub)),
        (
            "pub-plain",
            Frame::with_payload(pub_plain, payload(b"sunny")),
        ),
        (
            "pub-headers",
            Frame::with_payload(pub_headers, payload(b"\x82\xa4city\xa5Paris\xa4high\x15")),
        ),
        ("msg-packaged", Frame::with_payload(msg, payload(b"sunny"))),
        ("req", Frame::with_payload(req, payload(b"paris"))),
        ("call", Frame::new(call)),
        (
            "resp-failure",
            Frame::with_payload(resp, payload(b"no such city")),
        ),
        ("error-ref", Frame::new(error)),
        ("welcome", Frame::new(welcome)),
    ]
}

fn stream() -> Vec<u8> {
    frames().iter().flat_map(|(_, f)| encode(f)).collect()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn frame_codec() {
    for (name, frame) in frames() {
        write(
            "frame_codec",
            name,
            &[&[MAX_4K, 0], &encode(&frame)[..]].concat(),
        );
    }
    write(
        "frame_codec",
        "stream",
        &[&[MAX_4K, 0], &stream()[..]].concat(),
    );
    // A segment frame: the payload's length only, the fd beside.
    let mut segment = Frame::new(Op::Pub {
        subject: subject("big.data"),
        headers: None,
    });
    let fd = std::fs::File::open("/dev/null").expect("/dev/null");
    segment.segment = Some(SegmentFd::new(fd.into(), 2000));
    write(
        "frame_codec",
        "segment",
        &[&[MAX_4K, 1], &encode(&segment)[..]].concat(),
    );
    let (_, hello) = &frames()[0];
    write(
        "frame_codec",
        "too-large",
        &[&[MAX_16, 0], &encode(hello)[..]].concat(),
    );
    // 100 MB claimed under a 1 GiB limit, 12 bytes sent.
    let claim = [
        &[MAX_1G, 0][..],
        &100_000_000_u32.to_be_bytes(),
        &[0, 0, 0, 8, 0xc0],
    ]
    .concat();
    write("frame_codec", "claims-100m", &claim);
}

fn frame_reader() {
    let stream = stream();
    // Selector, k, k read sizes (0: not ready, 255: all that fits), stream.
    write(
        "frame_reader",
        "bytewise",
        &[&[MAX_4K, 1, 1], &stream[..]].concat(),
    );
    write(
        "frame_reader",
        "pending",
        &[&[MAX_4K, 3, 0, 5, 255], &stream[..]].concat(),
    );
    let cut = &stream[..stream.len() - 3];
    write("frame_reader", "cut", &[&[MAX_4K, 2, 7, 0], cut].concat());
    let claim = [
        &[MAX_1G, 1, 0][..],
        &1_000_000_000_u32.to_be_bytes(),
        &[0; 40],
    ]
    .concat();
    write("frame_reader", "claims-1g", &claim);
}

fn op_header() {
    let header = |op: &Op| rmp_serde::to_vec(op).expect("encodes");
    let frames = frames();
    let ops = [
        "hello",
        "sub-queue",
        "pub-plain",
        "pub-headers",
        "msg-packaged",
        "call",
    ];
    for (name, frame) in frames.iter().filter(|(name, _)| ops.contains(name)) {
        write("op_header", name, &op_header::input(&[header(&frame.op)]));
    }
    // The same sender and subject again (the decoder's cache), then another.
    let msg = |client_id, pfn: Option<&str>, s| Op::Msg {
        sid: 1,
        subject: subject(s),
        from: Sender {
            client_id,
            pfn: pfn.map(self::pfn),
        },
        headers: None,
    };
    let a = header(&msg(5, Some("Fabrikam.Maps_1234567890abc"), "maps.tile"));
    let b = header(&msg(6, None, "maps.tile"));
    let c = header(&msg(5, Some("Fabrikam.Maps_1234567890abc"), "maps.route"));
    write(
        "op_header",
        "msg-cached",
        &op_header::input(&[a.clone(), a, b, c]),
    );
}

fn subject_seeds() {
    let seeds: [(&str, &str); 4] = [
        (
            "wildcards",
            "weather.today.paris\nweather.*.paris\nweather.>\n>\n*.today.*\nweather.today",
        ),
        ("tokens", "a.b.c\na.*\na.>\na\n*\n*.*.c\nb.b.b.b"),
        ("invalid", "a..b\n.a\na.\na b\na.>.c\nb*\n>.a\n\n\tx"),
        (
            "unicode",
            "météo.paris\nx\u{a0}y\nz\u{85}\n東京.天気\n*.paris",
        ),
    ];
    for (name, text) in seeds {
        write("subject", name, text.as_bytes());
    }
}

fn router() {
    let limits = |max_connections, max_subscriptions| RouterLimits {
        max_connections,
        max_subscriptions,
        ..RouterLimits::default()
    };
    let sub = |conn, sid, pattern: &str, queue| Call::Subscribe {
        conn,
        sid,
        pattern: subject(pattern),
        queue,
        overflow: Overflow::Disconnect,
    };
    let (alice, nobody) = (router::UIDS[0], router::UIDS[2]);
    let scripts = [
        (
            "wildcards",
            limits(4, 8),
            vec![
                Call::Connect(alice),
                Call::Connect(alice),
                sub(0, 0, "a.*.c", None),
                sub(1, 1, "a.>", None),
                Call::Publish(0, subject("a.b.c")),
                Call::Publish(1, subject("a")), // no `>` match
                sub(1, 1, "b", None),           // sid in use
            ],
        ),
        (
            "routes",
            limits(4, 8),
            vec![
                Call::Connect(alice),
                Call::Connect(alice),
                sub(1, 0, "a.b", None),
                Call::Route(0, subject("a.b")),
                Call::Route(0, subject("a.b")), // reused
                Call::Unsubscribe(1, 0),        // the route goes stale
                Call::Route(0, subject("a.b")),
                Call::Disconnect(1),
                Call::Route(0, subject("a.b")),
            ],
        ),
        (
            "groups-and-uids",
            limits(4, 7),
            vec![
                Call::Connect(alice),
                Call::Connect(router::UIDS[1]),
                Call::Connect(alice),
                Call::Connect(nobody),
                sub(1, 0, "c", Some(0)),
                sub(2, 0, "c", Some(0)),
                sub(3, 0, "*", Some(1)),
                sub(0, 3, "c", None),
                Call::Publish(0, subject("c")),
                Call::Publish(0, subject("c")),
                Call::Route(1, subject("c")),
                Call::Publish(3, subject("c")), // no uid: everything denied
            ],
        ),
        (
            "limits",
            limits(1, 1),
            vec![
                Call::Connect(alice),
                Call::Connect(alice), // one connection per user
                Call::Connect(nobody),
                sub(0, 0, "a", None),
                sub(0, 1, "b", None), // one subscription per user
                Call::Disconnect(0),
                Call::Connect(alice),
                sub(0, 1, "b", None),
            ],
        ),
    ];
    for (name, limits, calls) in scripts {
        write("router", name, &router::input(limits, &calls));
    }
}

fn config() {
    write("config", "default", busd_daemon::DEFAULT_CONFIG.as_bytes());
    let packages = r#"[daemon]
unpackaged = "open"
tcp = "[::1]:4271"
unix = "/run/busd/busd.sock"

[limits]
max_frame = 65536
max_pending_bytes = 65536
max_preauth_frame = 1024
shm_ring_bytes = 4096

[[package]]
pfn = "Contoso.Weather_8wekyb3d8bbwe"
loopback = true
uids = [1000]
in = ["Fabrikam.Maps_1234567890abc"]
out = ["Fabrikam.Maps_1234567890abc"]
exempt_out = true
capabilities = ["contoso.hsa"]

[[package]]
pfn = "Fabrikam.Maps_1234567890abc"
loopback = true
uids = [1000]
exe = ["/usr/bin/maps"]
in = ["Contoso.Weather_8wekyb3d8bbwe"]
out = ["Contoso.Weather_8wekyb3d8bbwe"]
exempt_in = true
"#;
    write("config", "packages", packages.as_bytes());
    write(
        "config",
        "bad-values",
        b"[daemon]\ntcp = \"0.0.0.0:1\"\nbusy_poll = \"1h\"\n[limits]\nmax_frame = \"big\"\nauth_timeout = \"0s\"\n",
    );
    write(
        "config",
        "bad-package",
        b"[[package]]\npfn = \"no-publisher\"\ntoken_file = \"missing.key\"\nin = [\"x\"]\nmystery = 1\n",
    );
}

fn shm_ring() {
    let ring = |capacity, steps| Input::Ring {
        capacity,
        max_message: 0,
        steps,
    };
    let seeds = [
        // 64 bytes: records wrap, with padding, and pops into short buffers.
        (
            "wraps",
            ring(
                2,
                vec![
                    Step::Push(20),
                    Step::Push(20),
                    Step::Pop,
                    Step::Push(20),
                    Step::Pop,
                    Step::Pop,
                    Step::Push(30),
                    Step::PopInto(10),
                    Step::PopInto(40),
                    Step::Arm(40),
                ],
            ),
        ),
        (
            "garbage-tail",
            ring(3, vec![Step::Push(5), Step::Set(0, 0xffff), Step::Pop]),
        ),
        (
            "nudged-positions",
            ring(
                3,
                vec![
                    Step::Push(9),
                    Step::Nudge(0, 1),
                    Step::Nudge(1, -1),
                    Step::Pop,
                    Step::Arm(8),
                ],
            ),
        ),
        (
            "length-at-head",
            ring(
                2,
                vec![
                    Step::Push(40),
                    Step::Pop,
                    Step::Push(20),
                    Step::Length(None, 60),
                    Step::Pop,
                ],
            ),
        ),
        (
            "length-anywhere",
            Input::Ring {
                capacity: 4,
                max_message: 8,
                steps: vec![Step::Push(8), Step::Length(Some(0), u32::MAX), Step::Pop],
            },
        ),
        (
            "poked-data",
            ring(
                1,
                vec![
                    Step::Push(3),
                    Step::Poke(192, vec![0xff; 4]),
                    Step::PopInto(4),
                ],
            ),
        ),
        (
            "liar-size",
            Input::Liar {
                capacity: 3,
                liar: Liar {
                    size: Some(20),
                    seals: 2,
                    pokes: vec![],
                },
            },
        ),
        (
            "liar-capacity",
            Input::Liar {
                capacity: 3,
                liar: Liar {
                    size: None,
                    seals: 2,
                    pokes: vec![(8, vec![0, 1])],
                },
            },
        ),
        (
            "liar-unsealed",
            Input::Liar {
                capacity: 0,
                liar: Liar {
                    size: None,
                    seals: 1,
                    pokes: vec![],
                },
            },
        ),
    ];
    for (name, input) in seeds {
        write("shm_ring", name, &input.to_bytes());
    }
}

fn main() {
    frame_codec();
    frame_reader();
    op_header();
    subject_seeds();
    router();
    config();
    shm_ring();
}
