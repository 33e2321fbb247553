//! `busd ctl reload --dry-run` as lines: what the file would change.

use std::fmt::Write as _;

use serde_json::Value;

/// The report as an operator reads it: the file, then each client that
/// would be closed, each registration whose senders would change, and a
/// last line saying whether anything would be cut.
pub(crate) fn render(doc: &Value) -> String {
    let mut out = String::new();
    let count = |key: &str| doc[key].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "{}: valid: {} package(s), {} warning(s)",
        doc["file"].as_str().unwrap_or("the config"),
        doc["packages"],
        count("warnings")
    );
    for w in doc["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "warning: {}", w.as_str().unwrap_or_default());
    }
    for key in doc["need_restart"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} changes only with a restart",
            key.as_str().unwrap_or_default()
        );
    }
    let grants: Vec<String> = doc["grants_kept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    if !grants.is_empty() {
        let _ = writeln!(out, "grants kept (busd ctl grants): {}", grants.join(", "));
    }
    for c in doc["would_close"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "would close {}: its package is no longer configured",
            client(c)
        );
    }
    for change in doc["changes"].as_array().into_iter().flatten() {
        let what = format!(
            "{} {} of {} on {}",
            change["kind"].as_str().unwrap_or_default(),
            change["sid"],
            client(&change["client"]),
            change["subject"].as_str().unwrap_or_default()
        );
        for (key, verb) in [("stops_from", "stops"), ("starts_from", "starts")] {
            let from: Vec<String> = change[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(client)
                .collect();
            if !from.is_empty() {
                let _ = writeln!(out, "{what}: {verb} receiving from {}", from.join(", "));
            }
        }
    }
    let verdict = if doc["cuts"].as_bool() == Some(false) {
        "nothing would be cut"
    } else {
        "this reload would cut the above off"
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// `client ID (WHO)`.
fn client(c: &Value) -> String {
    format!(
        "client {} ({})",
        c["id"],
        c["who"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_as_lines() {
        let doc = serde_json::json!({
            "file": "busd.toml", "packages": 2, "warnings": [], "need_restart": ["limits"],
            "would_close": [{"id": 4, "who": "Gone.Away_1234567890abc"}],
            "changes": [{
                "client": {"id": 7, "who": "unpackaged:1000"}, "sid": 1,
                "kind": "subscription", "subject": "weather.>",
                "stops_from": [{"id": 9, "who": "Contoso.Weather_8wekyb3d8bbwe"}],
                "starts_from": []
            }],
            "cuts": true
        });
        assert_eq!(
            render(&doc),
            "busd.toml: valid: 2 package(s), 0 warning(s)\n\
             limits changes only with a restart\n\
             would close client 4 (Gone.Away_1234567890abc): its package is no longer configured\n\
             subscription 1 of client 7 (unpackaged:1000) on weather.>: stops receiving from \
             client 9 (Contoso.Weather_8wekyb3d8bbwe)\n\
             this reload would cut the above off\n"
        );
    }
}
