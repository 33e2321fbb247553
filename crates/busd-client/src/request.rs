//! Requests to services: [`RequestOptions`] going out, [`Response`] coming back.
//!
//! The daemon times every request out itself and answers `Timeout`; the
//! client only keeps a guard timer (the timeout plus [`GUARD_MARGIN`]) in
//! case the daemon dies without answering.

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::os::fd::OwnedFd;

use busd_proto::{Fds, Headers, Op};
use tokio::sync::oneshot;

use crate::client::Client;
use crate::command;
use crate::error::{Error, ErrorKind};
use crate::inbound::Response;
use crate::state::PendingRequest;
use crate::subject::{IntoSubject, literal};
use crate::target::Target;

/// How much longer than the request's timeout the client waits on its own.
const GUARD_MARGIN: Duration = Duration::from_secs(1);

/// Options of one request, for [`Client::request_with`](crate::Client::request_with).
///
/// ```
/// use std::time::Duration;
/// use busd_client::RequestOptions;
/// let options = RequestOptions {
///     timeout: Some(Duration::from_millis(250)),
///     ..RequestOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// How long the daemon waits for an answer; `None` uses the client's
    /// default (see [`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)).
    pub timeout: Option<Duration>,
    /// Headers for the service.
    pub headers: Option<Headers>,
}

impl Client {
    /// Calls `service` with `payload` and waits for its answer, at most the
    /// client's request timeout (5 s unless set on the builder).
    ///
    /// # Errors
    /// As [`request_with`](Client::request_with).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let response = client.request("contoso.weather.forecast", "paris").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request(
        &self,
        service: impl IntoSubject,
        payload: impl AsRef<[u8]>,
    ) -> Result<Response, Error> {
        self.request_with(service, payload, RequestOptions::default())
            .await
    }

    /// Calls `service` with `payload`, headers and a timeout of its own.
    ///
    /// A `Failure` answer is a [`Response`] (the service's own failure); the
    /// daemon's verdicts are errors.
    ///
    /// # Errors
    /// [`ErrorKind::NoResponders`], [`ErrorKind::NotAuthorized`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::ResponderGone`] as the daemon
    /// answers; [`ErrorKind::InvalidSubject`] and [`ErrorKind::FrameTooLarge`]
    /// locally; [`ErrorKind::Disconnected`] if the connection is lost before
    /// the answer; [`ErrorKind::Closed`] if the client is gone for good.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use busd_client::RequestOptions;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let options = RequestOptions { timeout: Some(Duration::from_millis(300)), headers: None };
    /// let response = client.request_with("contoso.weather.forecast", "paris", options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request_with(
        &self,
        service: impl IntoSubject,
        payload: impl AsRef<[u8]>,
        options: RequestOptions,
    ) -> Result<Response, Error> {
        self.request_with_fds(service, payload, options, Vec::new())
            .await
    }

    /// Calls `service` with `payload` and open files attached (the service
    /// gets them from [`Request::take_fds`](crate::Request::take_fds), with
    /// the access they were opened with); they are closed here once sent.
    /// A responder that did not ask for fds, or is over tcp, gets the
    /// request without them and a `busd-fds-withheld` header.
    ///
    /// # Errors
    /// As [`request_with`](Client::request_with);
    /// [`ErrorKind::Unsupported`] on a client that did not ask for fds
    /// ([`ClientBuilder::pass_fds`](crate::ClientBuilder::pass_fds)), or
    /// over tcp (nothing is sent);
    /// [`ErrorKind::LimitExceeded`] past the daemon's
    /// `limits.max_fds_per_message` or `limits.max_fds_in_flight` (the
    /// message names the key).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let photo = std::fs::File::open("/tmp/photo.jpg")?;
    /// let options = busd_client::RequestOptions::default();
    /// let response = client
    ///     .request_with_fds("contoso.photos.print", "photo.jpg", options, vec![photo.into()])
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request_with_fds(
        &self,
        service: impl IntoSubject,
        payload: impl AsRef<[u8]>,
        options: RequestOptions,
        fds: Vec<OwnedFd>,
    ) -> Result<Response, Error> {
        let fds = self.shared.attachable(fds)?;
        let service = literal(service, "call")?;
        let timeout = options.timeout.unwrap_or(self.shared.request_timeout);
        let payload = payload.as_ref();
        let rid = self.shared.next_rid.fetch_add(1, Ordering::Relaxed);
        let op = Op::Req {
            rid,
            service: service.clone(),
            timeout_ms: timeout_ms(timeout),
            headers: options.headers,
        };
        let target = Target::Service(service);
        self.exchange(rid, target, &op, (payload, fds), timeout)
            .await
    }

    /// Appends a request's frame (`op`, `payload` and the fds attached,
    /// under `rid`) and waits
    /// for its answer: at most `timeout` plus [`GUARD_MARGIN`], in case the
    /// daemon dies without answering.
    pub(crate) async fn exchange(
        &self,
        rid: u64,
        target: Target,
        op: &Op,
        (payload, fds): (&[u8], Fds),
        timeout: Duration,
    ) -> Result<Response, Error> {
        let (reply, rx) = oneshot::channel();
        let max = self.shared.max_frame();
        let segment = self.shared.seal(payload).await;
        let exchange = async {
            self.shared
                .submit(|state| {
                    state.write_frame_with_fds(op, payload, segment, max, fds)?;
                    state.requests.insert(rid, PendingRequest { target, reply });
                    Ok(())
                })
                .await?;
            command::answer(rx).await?
        };
        match tokio::time::timeout(timeout.saturating_add(GUARD_MARGIN), exchange).await {
            Ok(result) => result,
            Err(_) => {
                let what = self
                    .shared
                    .with(|state| state.requests.remove(&rid))
                    .map_or_else(|| format!("request {rid}"), |p| p.target.to_string());
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("{what} got no answer within {timeout:?}, not even from busd"),
                ))
            }
        }
    }
}

/// The `timeout_ms` sent to the daemon: whole milliseconds, at least 1, at
/// most `u32::MAX` (49 days).
pub(crate) fn timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped_to_the_wire_range() {
        assert_eq!(timeout_ms(Duration::from_secs(5)), 5000);
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
