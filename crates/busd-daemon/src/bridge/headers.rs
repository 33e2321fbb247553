//! Headers across the bridge: busd's (a map of strings) and NATS's (a
//! multimap with stricter names). A name NATS cannot carry is left out
//! and logged; of a NATS header given more than once, the last value.

use std::str::FromStr;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use busd_proto::Headers;

/// `headers` for NATS, with `extra` set over them.
pub(crate) fn to_nats(headers: Option<&Headers>, extra: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let given = headers.into_iter().flatten();
    let all = given
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied());
    for (name, value) in all {
        match (HeaderName::from_str(name), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => map.insert(n, v),
            _ => tracing::debug!(header = name, "a header NATS cannot carry was left out"),
        }
    }
    map
}

/// NATS `headers` for busd, `None` when there are none.
pub(crate) fn from_nats(headers: Option<&HeaderMap>) -> Option<Headers> {
    let map = headers?;
    let out: Headers = map
        .iter()
        .filter_map(|(name, values)| {
            let value = values.last()?;
            Some((name.to_string(), value.as_str().to_owned()))
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cross_both_ways_and_extras_win() {
        let mut h = Headers::new();
        h.insert("unit".into(), "celsius".into());
        h.insert("Busd-Sender".into(), "forged".into());
        h.insert("bad name:".into(), "x".into());
        let nats = to_nats(Some(&h), &[("Busd-Sender", "h1/A.B_1")]);
        let back = from_nats(Some(&nats)).expect("headers");
        assert_eq!(back.get("unit").map(String::as_str), Some("celsius"));
        assert_eq!(
            back.get("Busd-Sender").map(String::as_str),
            Some("h1/A.B_1")
        );
        assert!(!back.contains_key("bad name:"), "left out, not sent broken");
        assert_eq!(from_nats(Some(&HeaderMap::new())), None);
    }
}
