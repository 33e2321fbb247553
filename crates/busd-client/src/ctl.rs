//! Administrative commands: [`Client::ctl`], what `busd ctl` runs.
//!
//! The daemon answers a `Ctl` with `Resp{rid}` whose payload is a JSON
//! document, or with status `NotAuthorized` when the client's identity is not
//! an admin one. Ctl ids share the request id space, so the reader task
//! routes their answers like any request's.

use std::sync::atomic::Ordering;

use busd_proto::{CtlCommand, Fds, Op, Status};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::inbound::Response;
use crate::target::{Target, ctl_name};

impl Client {
    /// Runs an administrative command and returns the daemon's answer, a
    /// JSON document (`Null` when the daemon sends an empty one).
    ///
    /// Only an admin identity may do this (a uid in the daemon's
    /// `admin_uids`). The answer waits at most the client's request timeout.
    ///
    /// # Errors
    /// - [`ErrorKind::NotAuthorized`] when this client is not an admin;
    /// - [`ErrorKind::Protocol`] when the answer is not JSON, or a failure
    ///   the daemon reports as such (its reason in the message);
    /// - the daemon's error for the command otherwise (e.g. a rejected
    ///   reload);
    /// - [`ErrorKind::Timeout`], [`ErrorKind::Disconnected`] and
    ///   [`ErrorKind::Closed`] as for a request.
    ///
    /// ```no_run
    /// use busd_client::{Client, CtlCommand};
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = Client::connect("unix:///run/busd/busd.sock").await?;
    /// let stats = client.ctl(CtlCommand::Stats).await?;
    /// println!("{}", stats["connections"]);
    /// client.ctl(CtlCommand::Reload).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ctl(&self, command: CtlCommand) -> Result<serde_json::Value, Error> {
        let rid = self.shared.next_rid.fetch_add(1, Ordering::Relaxed);
        let op = Op::Ctl {
            rid,
            command: command.clone(),
        };
        let timeout = self.shared.request_timeout;
        let response = self
            .exchange(
                rid,
                Target::Ctl(command.clone()),
                &op,
                (&[], Fds::default()),
                timeout,
            )
            .await?;
        document(&command, &response)
    }
}

/// Why the daemon refused: its `{"error": "…"}` document says, as a
/// sentence (the raw payload only if it is not that document).
fn refusal(name: &str, response: &Response) -> Error {
    let why = serde_json::from_slice::<serde_json::Value>(&response.payload)
        .ok()
        .and_then(|doc| doc.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&response.payload).into_owned());
    Error::new(
        ErrorKind::Refused,
        format!("busd refused ctl {name}: {why}"),
    )
}

/// The JSON document in a ctl answer.
fn document(command: &CtlCommand, response: &Response) -> Result<serde_json::Value, Error> {
    let name = ctl_name(command);
    if response.status != Status::Success {
        return Err(refusal(&name, response));
    }
    if response.payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&response.payload).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("busd answered ctl {name} with a document that is not JSON: {e}"),
        )
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn response(status: Status, payload: &'static str) -> Response {
        Response {
            status,
            headers: None,
            payload: Bytes::from_static(payload.as_bytes()),
            fds: Fds::default(),
        }
    }

    #[test]
    fn success_carries_json() {
        let answer = response(Status::Success, r#"{"connections": 3}"#);
        let doc = document(&CtlCommand::Stats, &answer).unwrap();
        assert_eq!(doc["connections"], 3);
        let empty = response(Status::Success, "");
        assert_eq!(
            document(&CtlCommand::Reload, &empty).unwrap(),
            serde_json::Value::Null
        );
        let garbage = response(Status::Success, "{not json");
        let err = document(&CtlCommand::Subs, &garbage).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("ctl subs"), "{err}");
    }

    #[test]
    fn a_document_that_is_not_json_keeps_the_parse_error() {
        let garbage = response(Status::Success, "{not json");
        let err = document(&CtlCommand::Subs, &garbage).unwrap_err();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<serde_json::Error>(), "{source:?}");
    }

    #[test]
    fn a_failure_says_why() {
        let answer = response(Status::Failure, "busd.toml:3: unknown key");
        let err = document(&CtlCommand::Reload, &answer).unwrap_err();
        assert!(err.to_string().contains("busd.toml:3"), "{err}");
    }
}
