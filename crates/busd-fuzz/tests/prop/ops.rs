//! Strategies for the wire's values: every `Op`, with names valid by
//! construction, and frames carrying them.

use busd_proto::{
    AuthKind, CtlCommand, ErrorCode, Frame, Headers, Hello, Limits, Op, Overflow, Pfn, Ref, Sender,
    Status, Subject, Welcome,
};
use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::select;

/// A subject of one to four tokens; with `wildcards`, `*` tokens and a
/// last `>` too.
pub(crate) fn subject(wildcards: bool) -> impl Strategy<Value = Subject> {
    let token = select(if wildcards {
        vec!["a", "b", "weather", "météo", "*"]
    } else {
        vec!["a", "b", "weather", "météo"]
    });
    (prop::collection::vec(token, 1..5), any::<bool>()).prop_map(move |(mut tokens, rest)| {
        if wildcards && rest {
            tokens.push(">");
        }
        Subject::parse(tokens.join(".")).expect("a valid subject")
    })
}

pub(crate) fn pfn() -> impl Strategy<Value = Pfn> {
    "[A-Za-z0-9.-]{3,12}_[0-9a-hjkmnp-tv-z]{13}".prop_map(|s| Pfn::parse(s).expect("a valid pfn"))
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::btree_map("[a-z]{1,4}", "\\PC{0,6}", 0..3)
}

fn sender() -> impl Strategy<Value = Sender> {
    (any::<u64>(), prop::option::of(pfn())).prop_map(|(client_id, pfn)| Sender { client_id, pfn })
}

fn bytes(max: usize) -> impl Strategy<Value = serde_bytes::ByteBuf> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(serde_bytes::ByteBuf::from)
}

/// Any operation; the two of every message (`Pub` and `Msg`, plain or
/// with headers) more often than the rest.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    let hello = (
        any::<u16>(),
        prop::option::of(pfn()),
        "\\PC{0,8}",
        0..3_u8,
        any::<(bool, bool)>(),
    )
        .prop_map(|(version, pfn, name, auth, (fds, set_pools))| {
            let auth = [AuthKind::None, AuthKind::Token, AuthKind::Peer][usize::from(auth)];
            Op::Hello(Hello {
                version,
                pfn,
                name,
                auth,
                fds,
                set_pools,
            })
        });
    let welcome = (
        any::<u64>(),
        prop::option::of(pfn()),
        any::<(u32, u32, u64)>(),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(
                client_id,
                pfn,
                (max_frame, max_pending_msgs, max_pending_bytes),
                (fds, set_pools),
            )| {
                Op::Welcome(Welcome {
                    client_id,
                    pfn,
                    limits: Limits {
                        max_frame,
                        max_pending_msgs,
                        max_pending_bytes,
                    },
                    fds,
                    set_pools,
                })
            },
        );
    let overflow = select(vec![
        Overflow::Disconnect,
        Overflow::DropOldest,
        Overflow::Block,
    ]);
    let status = select(vec![
        Status::Success,
        Status::Failure,
        Status::NoResponders,
        Status::NotAuthorized,
        Status::Timeout,
        Status::ResponderGone,
    ]);
    let command = select(vec![
        CtlCommand::Stats,
        CtlCommand::Clients,
        CtlCommand::Subs,
        CtlCommand::Reload,
    ]);
    let refers = prop::option::of(prop_oneof![
        any::<u64>().prop_map(Ref::Sid),
        any::<u64>().prop_map(Ref::Rid)
    ]);
    prop_oneof![
        4 => (subject(false), prop::option::of(headers()))
            .prop_map(|(subject, headers)| Op::Pub { subject, headers }),
        4 => (any::<u64>(), subject(false), sender(), prop::option::of(headers())).prop_map(
            |(sid, subject, from, headers)| Op::Msg { sid, subject, from, headers }
        ),
        1 => hello,
        1 => bytes(40).prop_map(|nonce| Op::Challenge { nonce }),
        1 => bytes(40).prop_map(|hmac| Op::Auth { hmac }),
        1 => welcome,
        1 => (any::<u64>(), subject(true), prop::option::of("[a-z]{1,6}"), overflow).prop_map(
            |(sid, subject, queue, overflow)| Op::Sub { sid, subject, queue, overflow }
        ),
        1 => any::<u64>().prop_map(|sid| Op::Unsub { sid }),
        1 => (any::<u64>(), subject(false), prop::option::of("[a-z.]{1,8}")).prop_map(
            |(sid, service, require_capability)| Op::Serve { sid, service, require_capability }
        ),
        1 => (any::<u64>(), subject(false), any::<u32>(), prop::option::of(headers())).prop_map(
            |(rid, service, timeout_ms, headers)| Op::Req { rid, service, timeout_ms, headers }
        ),
        1 => (any::<(u64, u64)>(), subject(false), sender(), prop::option::of(headers())).prop_map(
            |((rid, sid), service, from, headers)| Op::Call { rid, sid, service, from, headers }
        ),
        1 => (any::<u64>(), status, prop::option::of(headers()))
            .prop_map(|(rid, status, headers)| Op::Resp { rid, status, headers }),
        1 => Just(Op::Ping),
        1 => Just(Op::Pong),
        1 => (select(ErrorCode::ALL.to_vec()), "\\PC{0,12}", refers)
            .prop_map(|(code, message, refers)| Op::Error { code, message, refers }),
        1 => (any::<u64>(), command).prop_map(|(rid, command)| Op::Ctl { rid, command }),
        1 => any::<(u64, u64)>().prop_map(|(sid, count)| Op::Dropped { sid, count }),
        1 => prop::collection::vec(any::<u64>(), 0..4).prop_map(|blocks| Op::Release { blocks }),
        1 => any::<u32>().prop_map(|pool| Op::PoolGone { pool }),
    ]
}

/// A frame with a short payload.
pub(crate) fn frame() -> impl Strategy<Value = Frame> {
    (op(), prop::collection::vec(any::<u8>(), 0..48))
        .prop_map(|(op, payload)| Frame::with_payload(op, Bytes::from(payload)))
}
