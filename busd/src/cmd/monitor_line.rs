//! How `busd monitor` prints an event: a line of text, or of JSON.

use std::time::{Duration, SystemTime};

use busd_client::{EventKind, MonitorEvent, Observed, Party};
use humantime_serde::re::humantime;
use serde_json::{Value, json};

use super::payload::render;

/// `12:00:01.234 pub weather.today.paris from Contoso.Weather_… (conn 7)
/// → Fabrikam.Maps_… (conn 8), DENIED Other.App_… (conn 9) 12 B`.
pub(crate) fn text_line(observed: &Observed, contents: bool) -> String {
    let (event, payload) = match observed {
        Observed::Event(event, payload) => (event, payload),
        Observed::Dropped(n) => {
            return format!("-- {n} events dropped: this monitor fell behind --");
        }
        _ => return "-- an event this busd does not know --".to_owned(),
    };
    let time = rfc3339(event.time_us);
    // The time of day of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    let mut line = format!("{} {}", &time[11..23], kind(event.kind));
    line.push(' ');
    line.push_str(event.subject.as_str());
    if let Some(call) = event.call {
        line.push_str(&format!(" #{call}"));
    }
    line.push_str(&format!(" from {} →", party(&event.from)));
    let reached = event.to.iter().map(|p| format!(" {}", party(p)));
    let denied = event.denied.iter().map(|p| format!(" DENIED {}", party(p)));
    let receivers: Vec<String> = reached.chain(denied).collect();
    match (receivers.is_empty(), event.status) {
        (true, None) => line.push_str(" nobody"),
        _ => line.push_str(&receivers.join(",")),
    }
    if let Some(status) = event.status {
        line.push_str(&format!(" {}", status.as_str()));
    }
    line.push_str(&format!(" {} B", event.size));
    if contents {
        if let Some(headers) = &event.headers {
            line.push_str(&format!(" {}", json!(headers)));
        }
        line.push('\t');
        line.push_str(&render(payload));
    }
    line
}

/// One JSON object: the event's fields, the time as RFC 3339 too, and
/// the payload rendered when the monitor shows contents.
pub(crate) fn json_line(observed: &Observed) -> String {
    let doc = match observed {
        Observed::Event(event, payload) => {
            let mut doc = event_json(event);
            if event.headers.is_some() || !payload.is_empty() {
                doc["payload"] = json!(render(payload));
            }
            doc
        }
        Observed::Dropped(n) => json!({ "dropped": n }),
        _ => json!({ "unknown": true }),
    };
    doc.to_string()
}

fn event_json(e: &MonitorEvent) -> Value {
    let parties = |list: &[Party]| list.iter().map(party_json).collect::<Vec<_>>();
    json!({
        "time": rfc3339(e.time_us),
        "time_us": e.time_us,
        "kind": kind(e.kind),
        "subject": e.subject.as_str(),
        "from": party_json(&e.from),
        "to": parties(&e.to),
        "denied": parties(&e.denied),
        "size": e.size,
        "status": e.status.map(|s| s.as_str()),
        "call": e.call,
        "headers": e.headers,
    })
}

fn party_json(p: &Party) -> Value {
    json!({
        "client_id": p.client_id,
        "pfn": p.pfn.as_ref().map(ToString::to_string),
        "uid": p.uid,
    })
}

/// `Contoso.Weather_8wekyb3d8bbwe (conn 7)`, `unpackaged uid 1000 (conn 7)`.
fn party(p: &Party) -> String {
    match (&p.pfn, p.uid) {
        (Some(pfn), _) => format!("{pfn} (conn {})", p.client_id),
        (None, Some(uid)) => format!("unpackaged uid {uid} (conn {})", p.client_id),
        (None, None) => format!("unpackaged (conn {})", p.client_id),
    }
}

fn kind(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Publish => "pub",
        EventKind::Request => "req",
        EventKind::Reply => "reply",
        _ => "other",
    }
}

/// `time_us` (microseconds since the Unix epoch) as RFC 3339, UTC, to
/// the millisecond.
fn rfc3339(time_us: u64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(time_us);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use busd_client::{Pfn, Status, Subject};
    use bytes::Bytes;

    use super::*;

    fn party_of(client_id: u64, pfn: Option<&str>) -> Party {
        Party {
            client_id,
            pfn: pfn.map(|p| Pfn::parse(p).unwrap()),
            uid: Some(1000),
        }
    }

    fn event() -> MonitorEvent {
        MonitorEvent {
            // 2024-01-02T12:00:01.234567Z
            time_us: 1_704_196_801_234_567,
            kind: EventKind::Publish,
            subject: Subject::from_static("weather.today.paris"),
            from: party_of(7, Some("Contoso.Weather_8wekyb3d8bbwe")),
            to: vec![party_of(8, None)],
            denied: vec![party_of(9, Some("Other.App_8wekyb3d8bbwe"))],
            size: 12,
            status: None,
            call: None,
            headers: None,
        }
    }

    #[test]
    fn a_publish_names_its_receivers_and_marks_the_denied() {
        let line = text_line(&Observed::Event(event(), Bytes::new()), false);
        assert_eq!(
            line,
            "12:00:01.234 pub weather.today.paris from Contoso.Weather_8wekyb3d8bbwe (conn 7) → \
             unpackaged uid 1000 (conn 8), DENIED Other.App_8wekyb3d8bbwe (conn 9) 12 B"
        );
    }

    #[test]
    fn a_request_answered_by_the_daemon_shows_its_status() {
        let e = MonitorEvent {
            kind: EventKind::Request,
            to: Vec::new(),
            denied: Vec::new(),
            status: Some(Status::NoResponders),
            ..event()
        };
        let line = text_line(&Observed::Event(e, Bytes::new()), false);
        assert!(line.ends_with("→ NoResponders 12 B"), "{line}");
    }

    #[test]
    fn json_lines_carry_every_field_and_drop_notices() {
        let line = json_line(&Observed::Event(event(), Bytes::from_static(b"sunny")));
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["kind"], "pub");
        assert_eq!(doc["time"], "2024-01-02T12:00:01.234Z");
        assert_eq!(doc["to"][0]["client_id"], 8);
        assert_eq!(doc["denied"][0]["pfn"], "Other.App_8wekyb3d8bbwe");
        assert_eq!(doc["payload"], "sunny");
        assert_eq!(json_line(&Observed::Dropped(3)), r#"{"dropped":3}"#);
    }
}
