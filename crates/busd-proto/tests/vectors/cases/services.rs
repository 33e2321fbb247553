//! `services.json`: registering a responder, a request, its delivery to
//! the responder, and answers with every status.

use busd_proto::{Op, Status, ValueSet};

use super::{Group, MAPS, bare, headers, inline, sender, subject};
use crate::fields::STATUSES;

const FORECAST: &str = "contoso.weather.forecast";

/// `{"city": "Paris", "days": 3}` as a ValueSet payload (a MessagePack map).
fn question() -> Vec<u8> {
    let mut set = ValueSet::new();
    set.insert("city", busd_proto::Value::String("Paris".into()));
    set.insert("days", busd_proto::Value::Int(3));
    set.to_bytes().expect("a value set encodes").to_vec()
}

fn resp(rid: u64, status: Status) -> Op {
    Op::Resp {
        rid,
        status,
        headers: None,
    }
}

pub(super) fn group() -> Group {
    let mut vectors = vec![
        bare(
            "serve",
            "Any package the rules allow may call.",
            Op::Serve {
                sid: 10,
                service: subject(FORECAST),
                require_capability: None,
            },
        ),
        bare(
            "serve-capability",
            "Only packages granted the capability may call.",
            Op::Serve {
                sid: 11,
                service: subject(FORECAST),
                require_capability: Some("weatherData".into()),
            },
        ),
        inline(
            "req",
            "A ValueSet payload ({\"city\": \"Paris\", \"days\": 3}); the daemon answers Timeout \
             after 5000 ms.",
            Op::Req {
                rid: 1,
                service: subject(FORECAST),
                timeout_ms: 5000,
                headers: None,
            },
            &question(),
        ),
        inline(
            "req-headers",
            "A timeout past 65535 ms (uint 32).",
            Op::Req {
                rid: 2,
                service: subject(FORECAST),
                timeout_ms: 120_000,
                headers: Some(headers(&[("lang", "fr")])),
            },
            &question(),
        ),
        inline(
            "call",
            "The request, delivered to the responder registered as sid 10, under the daemon's \
             call id 9 and with the caller as the daemon proved it.",
            Op::Call {
                rid: 9,
                sid: 10,
                service: subject(FORECAST),
                from: sender(3, Some(MAPS)),
                headers: None,
            },
            &question(),
        ),
        inline(
            "call-headers",
            "",
            Op::Call {
                rid: 9,
                sid: 10,
                service: subject(FORECAST),
                from: sender(3, None),
                headers: Some(headers(&[("lang", "fr")])),
            },
            &question(),
        ),
        inline(
            "resp-headers",
            "A responder's answer with headers, to the call id.",
            Op::Resp {
                rid: 9,
                status: Status::Success,
                headers: Some(headers(&[("cache", "60")])),
            },
            b"sunny",
        ),
    ];
    // One answer per status: Success and Failure come from responders,
    // the others from the daemon.
    for (status, (name, note, payload)) in STATUSES.into_iter().zip([
        ("resp-success", "", &b"sunny"[..]),
        (
            "resp-failure",
            "The service's own failure; its payload says why.",
            &b"no forecast for Atlantis"[..],
        ),
        (
            "resp-no-responders",
            "The daemon's answer: nobody serves the service.",
            &b""[..],
        ),
        (
            "resp-not-authorized",
            "The daemon's answer; its payload says why in words that name only the caller.",
            &b"the access rules do not let Fabrikam.Maps_1234567890abc reach the responders of \
              contoso.weather.forecast"[..],
        ),
        (
            "resp-timeout",
            "The daemon's answer: no reply in time.",
            &b""[..],
        ),
        (
            "resp-responder-gone",
            "The daemon's answer: the responder left before answering.",
            &b""[..],
        ),
    ]) {
        vectors.push(inline(name, note, resp(1, status), payload));
    }
    Group {
        file: "services.json",
        description: "Services: Serve, a request (Req), its delivery to a responder (Call), and \
                      answers (Resp) with every status.",
        vectors,
    }
}
