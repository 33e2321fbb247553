//! The JSON of the values inside an op's fields (names, enums, nested
//! structs), and the readers of a parsed vector file, for `meaning`.

use busd_proto::{
    AuthKind, CtlCommand, EventKind, ExplainQuery, GrantRequest, Headers, Limits, MonitorEvent,
    Overflow, Party, Pfn, Ref, Sender, Status, Subject,
};
use serde_json::{Map, Value};

use crate::json::Json;

pub(crate) fn pfn(p: Option<&Pfn>) -> Json {
    Json::opt(p, |p| Json::str(p.as_str()))
}

pub(crate) fn pfn_from(v: &Value) -> Pfn {
    Pfn::parse(text(v)).expect("a package family name")
}

pub(crate) fn subject(v: &Value) -> Subject {
    Subject::parse(text(v)).expect("a subject")
}

pub(crate) fn auth_name(auth: AuthKind) -> &'static str {
    match auth {
        AuthKind::None => "None",
        AuthKind::Token => "Token",
        AuthKind::Peer => "Peer",
    }
}

pub(crate) fn auth_from(name: &str) -> AuthKind {
    match name {
        "None" => AuthKind::None,
        "Token" => AuthKind::Token,
        "Peer" => AuthKind::Peer,
        other => panic!("unknown auth kind {other:?}"),
    }
}

pub(crate) fn overflow_name(overflow: Overflow) -> &'static str {
    match overflow {
        Overflow::Disconnect => "Disconnect",
        Overflow::DropOldest => "DropOldest",
        Overflow::Block => "Block",
    }
}

pub(crate) fn overflow_from(name: &str) -> Overflow {
    match name {
        "Disconnect" => Overflow::Disconnect,
        "DropOldest" => Overflow::DropOldest,
        "Block" => Overflow::Block,
        other => panic!("unknown overflow policy {other:?}"),
    }
}

/// Every status, by its stable name.
pub(crate) const STATUSES: [Status; 6] = [
    Status::Success,
    Status::Failure,
    Status::NoResponders,
    Status::NotAuthorized,
    Status::Timeout,
    Status::ResponderGone,
];

pub(crate) fn status_from(name: &str) -> Status {
    STATUSES
        .into_iter()
        .find(|s| s.as_str() == name)
        .unwrap_or_else(|| panic!("unknown status {name:?}"))
}

pub(crate) fn limits_to_json(l: &Limits) -> Json {
    Json::obj([
        ("max_frame", Json::Int(l.max_frame.into())),
        ("max_pending_msgs", Json::Int(l.max_pending_msgs.into())),
        ("max_pending_bytes", Json::Int(l.max_pending_bytes)),
    ])
}

pub(crate) fn limits_from(f: &Map<String, Value>) -> Limits {
    Limits {
        max_frame: u32::try_from(int(&f["max_frame"])).expect("a u32"),
        max_pending_msgs: u32::try_from(int(&f["max_pending_msgs"])).expect("a u32"),
        max_pending_bytes: int(&f["max_pending_bytes"]),
    }
}

pub(crate) fn sender_to_json(s: &Sender) -> Json {
    Json::obj([
        ("client_id", Json::Int(s.client_id)),
        ("pfn", pfn(s.pfn.as_ref())),
    ])
}

pub(crate) fn sender_from(f: &Map<String, Value>) -> Sender {
    Sender {
        client_id: int(&f["client_id"]),
        pfn: opt(&f["pfn"], pfn_from),
    }
}

pub(crate) fn headers_to_json(h: Option<&Headers>) -> Json {
    Json::opt(h, |h| {
        Json::Obj(h.iter().map(|(k, v)| (k.clone(), Json::str(v))).collect())
    })
}

pub(crate) fn headers_from(v: &Value) -> Headers {
    object(v)
        .iter()
        .map(|(k, v)| (k.clone(), text(v).to_owned()))
        .collect()
}

pub(crate) fn ref_to_json(r: &Ref) -> Json {
    match r {
        Ref::Sid(sid) => Json::obj([("Sid", Json::Int(*sid))]),
        Ref::Rid(rid) => Json::obj([("Rid", Json::Int(*rid))]),
    }
}

pub(crate) fn ref_from(v: &Value) -> Ref {
    let (tag, value) = tagged(v);
    match tag {
        "Sid" => Ref::Sid(int(value)),
        "Rid" => Ref::Rid(int(value)),
        other => panic!("unknown ref {other:?}"),
    }
}

/// A unit variant as its name, any other as `{name: value}`.
pub(crate) fn ctl_to_json(c: &CtlCommand) -> Json {
    let unit = |name: &str| Json::str(name);
    let wrap = |name: &str, value: Json| Json::Obj(vec![(name.to_owned(), value)]);
    match c {
        CtlCommand::Stats => unit("Stats"),
        CtlCommand::Clients => unit("Clients"),
        CtlCommand::Subs => unit("Subs"),
        CtlCommand::Reload => unit("Reload"),
        CtlCommand::Services => unit("Services"),
        CtlCommand::Explain(q) => wrap(
            "Explain",
            Json::obj([
                ("from", Json::str(&q.from)),
                ("to", Json::opt(q.to.as_ref(), Json::str)),
                ("subject", Json::opt(q.subject.as_ref(), Json::str)),
                ("service", Json::opt(q.service.as_ref(), Json::str)),
            ]),
        ),
        CtlCommand::ReloadDryRun(file) => wrap("ReloadDryRun", Json::opt(file.as_ref(), Json::str)),
        CtlCommand::Grant(g) => wrap(
            "Grant",
            Json::obj([
                ("from", Json::str(&g.from)),
                ("to", Json::str(&g.to)),
                ("both_ways", Json::Bool(g.both_ways)),
                ("seconds", Json::Int(g.seconds)),
                ("reason", Json::opt(g.reason.as_ref(), Json::str)),
            ]),
        ),
        CtlCommand::Grants => unit("Grants"),
        CtlCommand::Revoke(id) => wrap("Revoke", Json::Int(*id)),
        CtlCommand::Bridges => unit("Bridges"),
        other => panic!("no JSON meaning for {other:?}: add it to the vectors"),
    }
}

pub(crate) fn ctl_from(v: &Value) -> CtlCommand {
    if let Value::String(name) = v {
        return match name.as_str() {
            "Stats" => CtlCommand::Stats,
            "Clients" => CtlCommand::Clients,
            "Subs" => CtlCommand::Subs,
            "Reload" => CtlCommand::Reload,
            "Services" => CtlCommand::Services,
            "Grants" => CtlCommand::Grants,
            "Bridges" => CtlCommand::Bridges,
            other => panic!("unknown ctl command {other:?}"),
        };
    }
    let (tag, value) = tagged(v);
    match tag {
        "Explain" => {
            let q = object(value);
            CtlCommand::Explain(ExplainQuery {
                from: text(&q["from"]).to_owned(),
                to: opt(&q["to"], |v| text(v).to_owned()),
                subject: opt(&q["subject"], |v| text(v).to_owned()),
                service: opt(&q["service"], |v| text(v).to_owned()),
            })
        }
        "ReloadDryRun" => CtlCommand::ReloadDryRun(opt(value, |v| text(v).to_owned())),
        "Grant" => {
            let g = object(value);
            CtlCommand::Grant(GrantRequest {
                from: text(&g["from"]).to_owned(),
                to: text(&g["to"]).to_owned(),
                both_ways: flag(&g["both_ways"]),
                seconds: int(&g["seconds"]),
                reason: opt(&g["reason"], |v| text(v).to_owned()),
            })
        }
        "Revoke" => CtlCommand::Revoke(int(value)),
        other => panic!("unknown ctl command {other:?}"),
    }
}

pub(crate) fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Publish => "Publish",
        EventKind::Request => "Request",
        EventKind::Reply => "Reply",
        other => panic!("no JSON meaning for {other:?}: add it to the vectors"),
    }
}

pub(crate) fn event_kind_from(name: &str) -> EventKind {
    match name {
        "Publish" => EventKind::Publish,
        "Request" => EventKind::Request,
        "Reply" => EventKind::Reply,
        other => panic!("unknown event kind {other:?}"),
    }
}

pub(crate) fn party_to_json(p: &Party) -> Json {
    Json::obj([
        ("client_id", Json::Int(p.client_id)),
        ("pfn", pfn(p.pfn.as_ref())),
        ("uid", Json::opt(p.uid, |u| Json::Int(u.into()))),
    ])
}

pub(crate) fn party_from(v: &Value) -> Party {
    let f = object(v);
    Party {
        client_id: int(&f["client_id"]),
        pfn: opt(&f["pfn"], pfn_from),
        uid: opt(&f["uid"], |v| u32::try_from(int(v)).expect("a u32")),
    }
}

pub(crate) fn event_to_json(e: &MonitorEvent) -> Json {
    let parties = |ps: &[Party]| Json::Arr(ps.iter().map(party_to_json).collect());
    Json::obj([
        ("time_us", Json::Int(e.time_us)),
        ("kind", Json::str(event_kind_name(e.kind))),
        ("subject", Json::str(e.subject.as_str())),
        ("from", party_to_json(&e.from)),
        ("to", parties(&e.to)),
        ("denied", parties(&e.denied)),
        ("size", Json::Int(e.size)),
        ("status", Json::opt(e.status, |s| Json::str(s.as_str()))),
        ("call", Json::opt(e.call, Json::Int)),
        ("headers", headers_to_json(e.headers.as_ref())),
    ])
}

pub(crate) fn event_from(f: &Map<String, Value>) -> MonitorEvent {
    MonitorEvent {
        time_us: int(&f["time_us"]),
        kind: event_kind_from(text(&f["kind"])),
        subject: subject(&f["subject"]),
        from: party_from(&f["from"]),
        to: array(&f["to"]).iter().map(party_from).collect(),
        denied: array(&f["denied"]).iter().map(party_from).collect(),
        size: int(&f["size"]),
        status: opt(&f["status"], |v| status_from(text(v))),
        call: opt(&f["call"], int),
        headers: opt(&f["headers"], headers_from),
    }
}

// Readers of the parsed file: each panics, naming what it wanted, on a
// value of another type (a broken vector file is a failed test).

pub(crate) fn int(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

pub(crate) fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

pub(crate) fn flag(v: &Value) -> bool {
    v.as_bool()
        .unwrap_or_else(|| panic!("expected a boolean, got {v}"))
}

pub(crate) fn object(v: &Value) -> &Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("expected an object, got {v}"))
}

pub(crate) fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

pub(crate) fn opt<T>(v: &Value, f: impl FnOnce(&Value) -> T) -> Option<T> {
    if v.is_null() { None } else { Some(f(v)) }
}

/// The one `{tag: value}` entry of an externally tagged enum value.
pub(crate) fn tagged(v: &Value) -> (&str, &Value) {
    let map = object(v);
    assert_eq!(map.len(), 1, "expected one tag, got {v}");
    let (tag, value) = map.iter().next().expect("one entry");
    (tag.as_str(), value)
}

/// Every field of `v` is one this vector format knows: a stray field in
/// a file would otherwise go unchecked.
pub(crate) fn only_keys(v: &Map<String, Value>, known: &[&str]) {
    for key in v.keys() {
        assert!(known.contains(&key.as_str()), "unknown key {key:?}");
    }
}
