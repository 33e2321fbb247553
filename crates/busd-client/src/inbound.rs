//! What the reader task hands out: a [`Message`] to a subscriber, an
//! [`IncomingCall`] to a service, a [`Response`] to a waiting request.
//!
//! These are plain data, built from a decoded frame and moved through the
//! delivery queues and the request table. They sit low in the crate so that
//! the registrations, the routing state and the handles can all name them
//! without reaching into each other.

use std::os::fd::OwnedFd;

use busd_proto::{Fds, Headers, MonitorEvent, Sender, Status, Subject, ValueSet, ValueSetError};
use bytes::Bytes;

/// A message delivered to a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The literal subject it was published to.
    pub subject: Subject,
    /// Who published it, as the daemon proved it.
    pub from: Sender,
    /// The publisher's headers, if any.
    pub headers: Option<Headers>,
    /// The payload, as published.
    pub payload: Bytes,
    /// The open files the publisher attached (unix and shm): take them
    /// with [`take_fds`](Self::take_fds). Closed with the message if not taken.
    pub fds: Fds,
}

impl Message {
    /// Reads the payload as a [`ValueSet`] (a MessagePack map).
    ///
    /// # Errors
    /// [`ValueSetError::Decode`] if the payload is not a MessagePack map with
    /// string keys.
    ///
    /// ```no_run
    /// # async fn demo(message: busd_client::Message) -> Result<(), Box<dyn std::error::Error>> {
    /// let values = message.value_set()?;
    /// println!("{:?}", values.get("temperature"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value_set(&self) -> Result<ValueSet, ValueSetError> {
        ValueSet::from_bytes(&self.payload)
    }

    /// Who sent it on another bus, as `HOST/PFN` (`HOST/unpackaged`), when
    /// a daemon's bridge to NATS brought it in: the `Busd-Sender` header.
    /// [`from`](Self::from) is still the proven sender here, the bridge's
    /// package; the header is that bridge's word (and the NATS cluster's),
    /// so trust it as far as you trust the package in `from`, never as a
    /// local identity. The daemon removes it from what any other client
    /// sends, so it is never a local client's claim.
    ///
    /// ```no_run
    /// # fn demo(message: busd_client::Message) {
    /// if let Some(remote) = message.relayed_for() {
    ///     println!("{remote}, relayed by {:?}", message.from.pfn);
    /// }
    /// # }
    /// ```
    pub fn relayed_for(&self) -> Option<&str> {
        let headers = self.headers.as_ref()?;
        headers.get(busd_proto::RELAYED_FOR).map(String::as_str)
    }

    /// Takes the open files attached, as this process's own fds (none when
    /// nothing was attached, or they were taken already). Each has the
    /// access its sender opened it with.
    ///
    /// # Errors
    /// Only for a clone of this value whose files are shared: the error of
    /// duplicating them (out of fds).
    ///
    /// ```no_run
    /// use std::io::Read;
    /// # fn demo(mut message: busd_client::Message) -> Result<(), Box<dyn std::error::Error>> {
    /// for fd in message.take_fds()? {
    ///     let mut text = String::new();
    ///     std::fs::File::from(fd).read_to_string(&mut text)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_fds(&mut self) -> std::io::Result<Vec<OwnedFd>> {
        std::mem::take(&mut self.fds).into_owned()
    }
}

/// A service's answer: `Success` with its result, or `Failure` with the
/// service's reason in the payload.
///
/// The daemon's own verdicts (`NoResponders`, `Timeout`, …) are errors, not
/// responses, so a `Response` always comes from the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// [`Status::Success`] or [`Status::Failure`].
    pub status: Status,
    /// The service's headers, if any.
    pub headers: Option<Headers>,
    /// The result, or why the service failed.
    pub payload: Bytes,
    /// The open files the service attached to its answer (unix and shm).
    pub fds: Fds,
}

impl Response {
    /// Whether the service answered `Success`.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let response = client.request("contoso.weather.forecast", "paris").await?;
    /// if !response.is_success() {
    ///     eprintln!("the service failed: {}", String::from_utf8_lossy(&response.payload));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }

    /// Reads the payload as a [`ValueSet`].
    ///
    /// # Errors
    /// [`ValueSetError::Decode`] if the payload is not a MessagePack map.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let response = client.request("contoso.weather.forecast", "paris").await?;
    /// println!("{:?}", response.value_set()?.get("high"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value_set(&self) -> Result<ValueSet, ValueSetError> {
        ValueSet::from_bytes(&self.payload)
    }

    /// Takes the open files attached, as this process's own fds (none when
    /// nothing was attached, or they were taken already). Each has the
    /// access its sender opened it with.
    ///
    /// # Errors
    /// Only for a clone of this value whose files are shared: the error of
    /// duplicating them (out of fds).
    pub fn take_fds(&mut self) -> std::io::Result<Vec<OwnedFd>> {
        std::mem::take(&mut self.fds).into_owned()
    }
}

/// A `Call` as the reader task hands it to a [`Service`](crate::Service).
pub(crate) struct IncomingCall {
    pub(crate) rid: u64,
    /// Which connection the call came on; an answer on another is dropped.
    pub(crate) epoch: u64,
    pub(crate) service: Subject,
    pub(crate) from: Sender,
    pub(crate) headers: Option<Headers>,
    pub(crate) payload: Bytes,
    pub(crate) fds: Fds,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_is_success() {
        let response = |status| Response {
            status,
            headers: None,
            payload: Bytes::new(),
            fds: Fds::default(),
        };
        assert!(response(Status::Success).is_success());
        assert!(!response(Status::Failure).is_success());
    }
}

/// How to monitor, for [`Client::monitor_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Whether events carry each message's headers and payload; without
    /// it they carry its size only.
    pub contents: bool,
}

/// What a [`Monitor`] yields, in the order the daemon sent it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Observed {
    /// A publish, request or reply, and its payload (empty unless
    /// [`MonitorOptions::contents`] was asked for).
    Event(MonitorEvent, Bytes),
    /// This many events were dropped, here, because the monitor fell
    /// behind (the bus itself never waits for a monitor).
    Dropped(u64),
}
