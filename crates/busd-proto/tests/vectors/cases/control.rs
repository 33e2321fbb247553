//! `control.json` (Ping, Pong, every admin command, monitors and their
//! events), `errors.json` (an Error frame with every code) and
//! `pools.json` (Release and PoolGone).

use busd_proto::{
    CtlCommand, ErrorCode, EventKind, ExplainQuery, GrantRequest, MonitorEvent, Op, Party, Ref,
    Status,
};

use super::{Group, MAPS, WEATHER, bare, headers, inline, pfn, subject};

fn ctl(rid: u64, command: CtlCommand) -> Op {
    Op::Ctl { rid, command }
}

fn party(client_id: u64, package: Option<&str>, uid: Option<u32>) -> Party {
    Party {
        client_id,
        pfn: package.map(pfn),
        uid,
    }
}

fn event(kind: EventKind, to: Vec<Party>, status: Option<Status>, call: Option<u64>) -> Op {
    Op::Event {
        sid: 5,
        event: MonitorEvent {
            time_us: 1_700_000_000_123_456,
            kind,
            subject: subject(match kind {
                EventKind::Publish => "weather.today.paris",
                _ => "contoso.weather.forecast",
            }),
            from: party(7, Some(WEATHER), Some(1000)),
            to,
            denied: if kind == EventKind::Publish {
                vec![party(9, None, Some(1002))]
            } else {
                Vec::new()
            },
            size: 5,
            status,
            call,
            headers: (kind == EventKind::Reply).then(|| headers(&[("cache", "60")])),
        },
    }
}

pub(super) fn group() -> Group {
    let explain = ExplainQuery {
        from: WEATHER.into(),
        to: Some(MAPS.into()),
        subject: Some("weather.today.paris".into()),
        service: None,
    };
    let grant = GrantRequest {
        from: WEATHER.into(),
        to: "unpackaged:1000".into(),
        both_ways: true,
        seconds: 3600,
        reason: Some("debugging ticket 42".into()),
    };
    let mut vectors = vec![
        bare(
            "ping",
            "A unit variant: a bare string, not a map.",
            Op::Ping,
        ),
        bare("pong", "", Op::Pong),
    ];
    let commands = [
        ("ctl-stats", CtlCommand::Stats),
        ("ctl-clients", CtlCommand::Clients),
        ("ctl-subs", CtlCommand::Subs),
        ("ctl-reload", CtlCommand::Reload),
        ("ctl-services", CtlCommand::Services),
        ("ctl-explain", CtlCommand::Explain(explain)),
        ("ctl-reload-dry-run", CtlCommand::ReloadDryRun(None)),
        (
            "ctl-reload-dry-run-file",
            CtlCommand::ReloadDryRun(Some("/etc/busd/next.toml".into())),
        ),
        ("ctl-grant", CtlCommand::Grant(grant)),
        ("ctl-grants", CtlCommand::Grants),
        ("ctl-revoke", CtlCommand::Revoke(3)),
        ("ctl-bridges", CtlCommand::Bridges),
    ];
    for (rid, (name, command)) in (1..).zip(commands) {
        vectors.push(bare(name, "", ctl(rid, command)));
    }
    vectors.extend([
        bare(
            "monitor",
            "Watch everything, with headers and payloads.",
            Op::Monitor {
                sid: 5,
                subject: subject(">"),
                contents: true,
            },
        ),
        inline(
            "event-publish",
            "A publish as routed: to one connection, denied to another; the payload, because \
             the monitor asked for contents.",
            event(
                EventKind::Publish,
                vec![party(8, Some(MAPS), Some(1001))],
                None,
                None,
            ),
            b"hello",
        ),
        bare(
            "event-request",
            "A request the daemon answered at once (nobody serves it): no receiver.",
            event(
                EventKind::Request,
                Vec::new(),
                Some(Status::NoResponders),
                Some(12),
            ),
        ),
        inline(
            "event-reply",
            "A reply, paired with its request by the call id.",
            event(
                EventKind::Reply,
                vec![party(7, Some(WEATHER), None)],
                Some(Status::Success),
                Some(12),
            ),
            b"sunny",
        ),
    ]);
    Group {
        file: "control.json",
        description: "Ping and Pong, every admin command (Ctl), and monitors: Monitor and the Event \
                      frames of each kind.",
        vectors,
    }
}

pub(super) fn errors() -> Group {
    // What the daemon says for each code, with the id it belongs to where
    // it has one.
    let cases: [(&'static str, ErrorCode, &str, Option<Ref>); 15] = [
        (
            "error-protocol-violation",
            ErrorCode::ProtocolViolation,
            "expected Hello, got Pub",
            None,
        ),
        (
            "error-frame-too-large",
            ErrorCode::FrameTooLarge,
            "frame of 9000000 bytes is over the limit of 8388608 bytes",
            None,
        ),
        (
            "error-auth-failed",
            ErrorCode::AuthFailed,
            "cannot prove package Contoso.Weather_8wekyb3d8bbwe",
            None,
        ),
        (
            "error-not-authorized",
            ErrorCode::NotAuthorized,
            "busd monitor is for admins only",
            Some(Ref::Sid(5)),
        ),
        (
            "error-no-responders",
            ErrorCode::NoResponders,
            "no responders",
            Some(Ref::Rid(1)),
        ),
        (
            "error-timeout",
            ErrorCode::Timeout,
            "timed out",
            Some(Ref::Rid(2)),
        ),
        (
            "error-responder-gone",
            ErrorCode::ResponderGone,
            "the responder left",
            Some(Ref::Rid(3)),
        ),
        (
            "error-unknown-service",
            ErrorCode::UnknownService,
            "service contoso.nothing is not configured",
            Some(Ref::Rid(4)),
        ),
        (
            "error-slow-consumer",
            ErrorCode::SlowConsumer,
            "outbound queue full: the client reads too slowly",
            None,
        ),
        (
            "error-limit-exceeded",
            ErrorCode::LimitExceeded,
            "this connection already has 65536 requests in flight",
            Some(Ref::Rid(70_000)),
        ),
        (
            "error-invalid-subject",
            ErrorCode::InvalidSubject,
            "cannot publish to wildcard subject weather.*",
            None,
        ),
        (
            "error-shutting-down",
            ErrorCode::ShuttingDown,
            "the daemon is shutting down",
            None,
        ),
        (
            "error-app-unavailable",
            ErrorCode::AppUnavailable,
            "the service's process exited before it served",
            Some(Ref::Rid(6)),
        ),
        (
            "error-app-service-unavailable",
            ErrorCode::AppServiceUnavailable,
            "the service did not serve within 10s",
            Some(Ref::Rid(7)),
        ),
        (
            "error-resource-limits-exceeded",
            ErrorCode::ResourceLimitsExceeded,
            "the service is over its max_instances",
            Some(Ref::Rid(8)),
        ),
    ];
    Group {
        file: "errors.json",
        description: "An Error frame with every code, each with a message as the daemon words it \
                      and, where it has one, the subscription (Sid) or request (Rid) it refers to.",
        vectors: cases
            .into_iter()
            .map(|(name, code, message, refers)| {
                // The daemon answers these as a Resp's status; the codes
                // name the SDK's errors for them, and decode all the same.
                let note = match code {
                    ErrorCode::NoResponders | ErrorCode::Timeout | ErrorCode::ResponderGone => {
                        "The daemon sends this as a Resp status, not as an Error frame; a reader \
                         decodes the code all the same."
                    }
                    _ => "",
                };
                let op = Op::Error {
                    code,
                    message: message.to_owned(),
                    refers,
                };
                bare(name, note, op)
            })
            .collect(),
    }
}

pub(super) fn pools() -> Group {
    Group {
        file: "pools.json",
        description: "Payload pools over shm: Release hands back blocks of the peer's pool by offset \
                      (high 32 bits: the set pool's id, 0 for the connection's own pool); PoolGone \
                      retires a set pool.",
        vectors: vec![
            bare(
                "release-own-pool",
                "Two blocks of the peer's own pool.",
                Op::Release {
                    blocks: vec![0, 65_536],
                },
            ),
            bare(
                "release-set-pool",
                "Blocks 0 and 4096 of set pool 1, then block 8192 of the daemon's pool for this \
                 client.",
                Op::Release {
                    blocks: vec![1 << 32, (1 << 32) | 4096, 8192],
                },
            ),
            bare(
                "pool-gone",
                "The daemon writes no more into set pool 1.",
                Op::PoolGone { pool: 1 },
            ),
        ],
    }
}
