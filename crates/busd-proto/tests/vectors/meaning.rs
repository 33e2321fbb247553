//! What a vector's bytes mean, as JSON: an op's name and fields, written
//! by hand here rather than by serde, so that a change of the wire
//! encoding shows as a difference instead of changing both sides at once.
//! The mapping is the one `docs/PROTOCOL.md` ("Test vectors") documents.

use busd_proto::{ErrorCode, Hello, Op, Welcome};
use serde_bytes::ByteBuf;
use serde_json::{Map, Value};

use crate::fields::{
    array, auth_from, auth_name, ctl_from, ctl_to_json, event_from, event_to_json, flag,
    headers_from, headers_to_json, int, limits_from, limits_to_json, object, opt, overflow_from,
    overflow_name, pfn, pfn_from, ref_from, ref_to_json, sender_from, sender_to_json, status_from,
    subject, text,
};
use crate::json::{Json, unhex};

/// One frame: its op, what carries its payload, and how many fds it
/// announces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meaning {
    pub(crate) op: Op,
    pub(crate) payload: Payload,
    pub(crate) fds: usize,
}

/// Where a frame's payload travels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// In the stream, after the header.
    Inline(Vec<u8>),
    /// In a sealed memfd of this many bytes, passed beside the stream.
    Segment(u64),
    /// In the sender's payload pool (or a set pool: the offset's high bits).
    Pooled { offset: u64, len: u64 },
}

impl Meaning {
    /// A frame with an inline payload and no fds.
    pub(crate) fn inline(op: Op, payload: &[u8]) -> Self {
        Self {
            op,
            payload: Payload::Inline(payload.to_vec()),
            fds: 0,
        }
    }

    /// A frame without payload.
    pub(crate) fn bare(op: Op) -> Self {
        Self::inline(op, &[])
    }

    /// The vector's fields for this frame: `op`, `fields`, `body`, `fds`.
    pub(crate) fn to_json(&self) -> Vec<(String, Json)> {
        let (name, fields) = op_to_json(&self.op);
        let body = match &self.payload {
            Payload::Inline(bytes) => {
                Json::obj([("kind", Json::str("inline")), ("payload", Json::hex(bytes))])
            }
            Payload::Segment(len) => {
                Json::obj([("kind", Json::str("segment")), ("len", Json::Int(*len))])
            }
            Payload::Pooled { offset, len } => Json::obj([
                ("kind", Json::str("pooled")),
                ("offset", Json::Int(*offset)),
                ("len", Json::Int(*len)),
            ]),
        };
        vec![
            ("op".to_owned(), Json::str(name)),
            ("fields".to_owned(), fields),
            ("body".to_owned(), body),
            ("fds".to_owned(), Json::Int(self.fds as u64)),
        ]
    }

    /// The frame a vector describes.
    pub(crate) fn from_json(vector: &Value) -> Self {
        let name = text(&vector["op"]);
        let op = op_from_json(name, object(&vector["fields"]));
        let body = object(&vector["body"]);
        let payload = match text(&body["kind"]) {
            "inline" => Payload::Inline(unhex(text(&body["payload"]))),
            "segment" => Payload::Segment(int(&body["len"])),
            "pooled" => Payload::Pooled {
                offset: int(&body["offset"]),
                len: int(&body["len"]),
            },
            other => panic!("unknown body kind {other:?}"),
        };
        Self {
            op,
            payload,
            fds: usize::try_from(int(&vector["fds"])).expect("an fd count"),
        }
    }
}

/// The op's name and its fields as a JSON object, in wire order.
pub(crate) fn op_to_json(op: &Op) -> (&'static str, Json) {
    let fields = match op {
        Op::Hello(h) => Json::obj([
            ("version", Json::Int(h.version.into())),
            ("pfn", pfn(h.pfn.as_ref())),
            ("name", Json::str(&h.name)),
            ("auth", Json::str(auth_name(h.auth))),
            ("fds", Json::Bool(h.fds)),
            ("set_pools", Json::Bool(h.set_pools)),
        ]),
        Op::Challenge { nonce } => Json::obj([("nonce", Json::hex(nonce))]),
        Op::Auth { hmac } => Json::obj([("hmac", Json::hex(hmac))]),
        Op::Welcome(w) => Json::obj([
            ("client_id", Json::Int(w.client_id)),
            ("pfn", pfn(w.pfn.as_ref())),
            ("limits", limits_to_json(&w.limits)),
            ("fds", Json::Bool(w.fds)),
            ("set_pools", Json::Bool(w.set_pools)),
        ]),
        Op::Sub {
            sid,
            subject,
            queue,
            overflow,
        } => Json::obj([
            ("sid", Json::Int(*sid)),
            ("subject", Json::str(subject.as_str())),
            ("queue", Json::opt(queue.as_ref(), Json::str)),
            ("overflow", Json::str(overflow_name(*overflow))),
        ]),
        Op::Unsub { sid } => Json::obj([("sid", Json::Int(*sid))]),
        Op::Pub { subject, headers } => Json::obj([
            ("subject", Json::str(subject.as_str())),
            ("headers", headers_to_json(headers.as_ref())),
        ]),
        Op::Msg {
            sid,
            subject,
            from,
            headers,
        } => Json::obj([
            ("sid", Json::Int(*sid)),
            ("subject", Json::str(subject.as_str())),
            ("from", sender_to_json(from)),
            ("headers", headers_to_json(headers.as_ref())),
        ]),
        Op::Serve {
            sid,
            service,
            require_capability,
        } => Json::obj([
            ("sid", Json::Int(*sid)),
            ("service", Json::str(service.as_str())),
            (
                "require_capability",
                Json::opt(require_capability.as_ref(), Json::str),
            ),
        ]),
        Op::Req {
            rid,
            service,
            timeout_ms,
            headers,
        } => Json::obj([
            ("rid", Json::Int(*rid)),
            ("service", Json::str(service.as_str())),
            ("timeout_ms", Json::Int((*timeout_ms).into())),
            ("headers", headers_to_json(headers.as_ref())),
        ]),
        Op::Call {
            rid,
            sid,
            service,
            from,
            headers,
        } => Json::obj([
            ("rid", Json::Int(*rid)),
            ("sid", Json::Int(*sid)),
            ("service", Json::str(service.as_str())),
            ("from", sender_to_json(from)),
            ("headers", headers_to_json(headers.as_ref())),
        ]),
        Op::Resp {
            rid,
            status,
            headers,
        } => Json::obj([
            ("rid", Json::Int(*rid)),
            ("status", Json::str(status.as_str())),
            ("headers", headers_to_json(headers.as_ref())),
        ]),
        Op::Ping | Op::Pong => Json::Obj(Vec::new()),
        Op::Error {
            code,
            message,
            refers,
        } => Json::obj([
            ("code", Json::str(code.as_str())),
            ("message", Json::str(message)),
            ("refers", Json::opt(refers.as_ref(), ref_to_json)),
        ]),
        Op::Ctl { rid, command } => {
            Json::obj([("rid", Json::Int(*rid)), ("command", ctl_to_json(command))])
        }
        Op::Dropped { sid, count } => {
            Json::obj([("sid", Json::Int(*sid)), ("count", Json::Int(*count))])
        }
        Op::Monitor {
            sid,
            subject,
            contents,
        } => Json::obj([
            ("sid", Json::Int(*sid)),
            ("subject", Json::str(subject.as_str())),
            ("contents", Json::Bool(*contents)),
        ]),
        Op::Event { sid, event } => {
            Json::obj([("sid", Json::Int(*sid)), ("event", event_to_json(event))])
        }
        Op::Release { blocks } => Json::obj([(
            "blocks",
            Json::Arr(blocks.iter().map(|&b| Json::Int(b)).collect()),
        )]),
        Op::PoolGone { pool } => Json::obj([("pool", Json::Int((*pool).into()))]),
        other => panic!("no JSON meaning for {other:?}: add it to the vectors"),
    };
    (op.name(), fields)
}

/// The op named `name` with `fields`.
pub(crate) fn op_from_json(name: &str, f: &Map<String, Value>) -> Op {
    match name {
        "Hello" => Op::Hello(Hello {
            version: u16::try_from(int(&f["version"])).expect("a u16"),
            pfn: opt(&f["pfn"], pfn_from),
            name: text(&f["name"]).to_owned(),
            auth: auth_from(text(&f["auth"])),
            fds: flag(&f["fds"]),
            set_pools: flag(&f["set_pools"]),
        }),
        "Challenge" => Op::Challenge {
            nonce: ByteBuf::from(unhex(text(&f["nonce"]))),
        },
        "Auth" => Op::Auth {
            hmac: ByteBuf::from(unhex(text(&f["hmac"]))),
        },
        "Welcome" => Op::Welcome(Welcome {
            client_id: int(&f["client_id"]),
            pfn: opt(&f["pfn"], pfn_from),
            limits: limits_from(object(&f["limits"])),
            fds: flag(&f["fds"]),
            set_pools: flag(&f["set_pools"]),
        }),
        "Sub" => Op::Sub {
            sid: int(&f["sid"]),
            subject: subject(&f["subject"]),
            queue: opt(&f["queue"], |v| text(v).to_owned()),
            overflow: overflow_from(text(&f["overflow"])),
        },
        "Unsub" => Op::Unsub {
            sid: int(&f["sid"]),
        },
        "Pub" => Op::Pub {
            subject: subject(&f["subject"]),
            headers: opt(&f["headers"], headers_from),
        },
        "Msg" => Op::Msg {
            sid: int(&f["sid"]),
            subject: subject(&f["subject"]),
            from: sender_from(object(&f["from"])),
            headers: opt(&f["headers"], headers_from),
        },
        "Serve" => Op::Serve {
            sid: int(&f["sid"]),
            service: subject(&f["service"]),
            require_capability: opt(&f["require_capability"], |v| text(v).to_owned()),
        },
        "Req" => Op::Req {
            rid: int(&f["rid"]),
            service: subject(&f["service"]),
            timeout_ms: u32::try_from(int(&f["timeout_ms"])).expect("a u32"),
            headers: opt(&f["headers"], headers_from),
        },
        "Call" => Op::Call {
            rid: int(&f["rid"]),
            sid: int(&f["sid"]),
            service: subject(&f["service"]),
            from: sender_from(object(&f["from"])),
            headers: opt(&f["headers"], headers_from),
        },
        "Resp" => Op::Resp {
            rid: int(&f["rid"]),
            status: status_from(text(&f["status"])),
            headers: opt(&f["headers"], headers_from),
        },
        "Ping" => Op::Ping,
        "Pong" => Op::Pong,
        "Error" => Op::Error {
            code: text(&f["code"])
                .parse::<ErrorCode>()
                .expect("an error code"),
            message: text(&f["message"]).to_owned(),
            refers: opt(&f["refers"], ref_from),
        },
        "Ctl" => Op::Ctl {
            rid: int(&f["rid"]),
            command: ctl_from(&f["command"]),
        },
        "Dropped" => Op::Dropped {
            sid: int(&f["sid"]),
            count: int(&f["count"]),
        },
        "Monitor" => Op::Monitor {
            sid: int(&f["sid"]),
            subject: subject(&f["subject"]),
            contents: flag(&f["contents"]),
        },
        "Event" => Op::Event {
            sid: int(&f["sid"]),
            event: event_from(object(&f["event"])),
        },
        "Release" => Op::Release {
            blocks: array(&f["blocks"]).iter().map(int).collect(),
        },
        "PoolGone" => Op::PoolGone {
            pool: u32::try_from(int(&f["pool"])).expect("a u32"),
        },
        other => panic!("unknown op {other:?}"),
    }
}
