//! `handshake.json`: Hello with each combination of flags and proofs,
//! Challenge, Auth, Welcome with each combination of flags.

use busd_proto::{AuthKind, Hello, Op, PROTOCOL_VERSION, Welcome, auth_mac};
use serde_bytes::ByteBuf;

use super::{Group, MAPS, TOKEN, WEATHER, bare, default_limits, pfn};
use crate::cases::auth::NONCE;

fn hello(package: Option<&str>, name: &str, auth: AuthKind, (fds, set_pools): (bool, bool)) -> Op {
    Op::Hello(Hello {
        version: PROTOCOL_VERSION,
        pfn: package.map(pfn),
        name: name.to_owned(),
        auth,
        fds,
        set_pools,
    })
}

fn welcome(client_id: u64, package: Option<&str>, (fds, set_pools): (bool, bool)) -> Op {
    Op::Welcome(Welcome {
        client_id,
        pfn: package.map(pfn),
        limits: default_limits(),
        fds,
        set_pools,
    })
}

pub(super) fn group() -> Group {
    let hmac = auth_mac(TOKEN, &NONCE, &pfn(WEATHER));
    Group {
        file: "handshake.json",
        description: "The handshake: the client's Hello (each proof, each combination of the fds and \
                      set_pools flags), the daemon's Challenge, the client's Auth (the HMAC of auth.json's \
                      first vector), and the daemon's Welcome (each combination of flags).",
        vectors: vec![
            bare(
                "hello-unpackaged",
                "No package claimed, no proof: what `busd pub` sends without --pfn. No flag is true, so \
                 the array has four fields.",
                hello(None, "busd pub", AuthKind::None, (false, false)),
            ),
            bare(
                "hello-token",
                "A package claimed with a token proof: the daemon answers with a Challenge.",
                hello(
                    Some(WEATHER),
                    "weather-app",
                    AuthKind::Token,
                    (false, false),
                ),
            ),
            bare(
                "hello-peer-fds",
                "A package claimed by peer credentials, asking for fd passing: five fields.",
                hello(Some(MAPS), "maps", AuthKind::Peer, (true, false)),
            ),
            bare(
                "hello-set-pools",
                "Only set_pools is true: fds is sent (false) because a later flag is true.",
                hello(None, "viewer", AuthKind::None, (false, true)),
            ),
            bare(
                "hello-fds-set-pools",
                "Both flags true: six fields.",
                hello(Some(WEATHER), "weather-app", AuthKind::Token, (true, true)),
            ),
            bare(
                "challenge",
                "32 random bytes, as MessagePack bin 8.",
                Op::Challenge {
                    nonce: ByteBuf::from(NONCE.to_vec()),
                },
            ),
            bare(
                "auth",
                "HMAC-SHA256 of the challenge above for Contoso.Weather_8wekyb3d8bbwe under the \
                 token of auth.json.",
                Op::Auth {
                    hmac: ByteBuf::from(hmac.to_vec()),
                },
            ),
            bare(
                "welcome-unpackaged",
                "No flag true: three fields, as older clients know it.",
                welcome(1, None, (false, false)),
            ),
            bare(
                "welcome-fds",
                "The proven package, fd passing granted.",
                welcome(42, Some(MAPS), (true, false)),
            ),
            bare(
                "welcome-set-pools",
                "Set pools granted, fds not: fds is sent (false) because a later flag is true.",
                welcome(300, None, (false, true)),
            ),
            bare(
                "welcome-fds-set-pools",
                "Both granted; a client id past 65535 (MessagePack uint 32).",
                welcome(70_000, Some(WEATHER), (true, true)),
            ),
        ],
    }
}
