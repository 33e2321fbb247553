//! Messages with fds for receivers that cannot take fds (tcp): they get
//! the message without its files, and a header saying how many were
//! withheld, so that they know they missed something rather than getting
//! a reference to files they cannot open. Dropping the message instead
//! would lose it silently; telling the sender would tell it who listens.

use busd_proto::{Headers, Op};

/// The header a receiver without fd passing finds on a message, request
/// or reply whose fds it did not get: their number.
pub(crate) const FDS_WITHHELD: &str = "busd-fds-withheld";

/// `headers` plus the note that `count` fds were withheld.
pub(crate) fn headers(headers: Option<&Headers>, count: usize) -> Headers {
    let mut headers = headers.cloned().unwrap_or_default();
    headers.insert(FDS_WITHHELD.to_owned(), count.to_string());
    headers
}

/// `op` (a `Call` or `Resp`) with the note that `count` fds were withheld.
pub(crate) fn op(op: &Op, count: usize) -> Op {
    let mut op = op.clone();
    if let Op::Call { headers: h, .. } | Op::Resp { headers: h, .. } = &mut op {
        *h = Some(headers(h.as_ref(), count));
    }
    op
}

#[cfg(test)]
mod tests {
    use busd_proto::Status;

    use super::*;

    #[test]
    fn the_note_joins_the_senders_headers() {
        let mut own = Headers::new();
        own.insert("k".into(), "v".into());
        let noted = headers(Some(&own), 2);
        assert_eq!(noted.get("k").map(String::as_str), Some("v"));
        assert_eq!(noted.get(FDS_WITHHELD).map(String::as_str), Some("2"));
        let resp = Op::Resp {
            rid: 1,
            status: Status::Success,
            headers: None,
        };
        let Op::Resp {
            headers: Some(h), ..
        } = op(&resp, 1)
        else {
            panic!("a Resp with headers");
        };
        assert_eq!(h.get(FDS_WITHHELD).map(String::as_str), Some("1"));
        let ping = op(&Op::Ping, 1);
        assert_eq!(ping, Op::Ping, "ops without headers are left alone");
    }
}
