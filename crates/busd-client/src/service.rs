//! Serving: a [`Service`] is a [`Stream`] of [`Request`]s to answer; each
//! request is answered once, by value.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::os::fd::OwnedFd;

use busd_proto::{Fds, Headers, Op, Sender, Status, Subject, ValueSet, ValueSetError};
use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::command::{self, Command, DELIVERY_CAPACITY, Registration};
use crate::error::{Error, ErrorKind};
use crate::inbound::IncomingCall;
use crate::inbox;
use crate::shared::Shared;
use crate::subject::{IntoSubject, literal};

/// Options of a service registration, for [`Client::serve_with`].
///
/// ```
/// use busd_client::ServeOptions;
/// let options = ServeOptions {
///     require_capability: Some("contoso.hsa".into()),
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeOptions {
    /// Only packages granted this custom capability (`capabilities` in the
    /// daemon's config) may call the service; the daemon answers anyone else
    /// `NotAuthorized`. `None`: the access rules alone decide.
    pub require_capability: Option<String>,
}

impl Client {
    /// Registers as a responder of `service`, a literal subject.
    ///
    /// Returns once the daemon has the registration.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let service = client.serve("contoso.weather.forecast").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve(&self, service: impl IntoSubject) -> Result<Service, Error> {
        self.serve_with(service, ServeOptions::default()).await
    }

    /// Registers as a responder of `service` with options, e.g. a capability
    /// its callers need. The options are kept, and sent again when the client
    /// reconnects.
    ///
    /// Returns once the daemon has the registration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSubject`] for a malformed or wildcard name; the
    /// daemon's refusal (e.g. [`ErrorKind::NotAuthorized`]);
    /// [`ErrorKind::Disconnected`] if the connection was lost meanwhile;
    /// [`ErrorKind::Closed`] if the client is gone for good.
    ///
    /// ```no_run
    /// use busd_client::ServeOptions;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let options = ServeOptions { require_capability: Some("contoso.hsa".into()) };
    /// let service = client.serve_with("contoso.hsa.telemetry", options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_with(
        &self,
        service: impl IntoSubject,
        options: ServeOptions,
    ) -> Result<Service, Error> {
        let service = literal(service, "serve")?;
        self.serve_subject(service, options).await
    }

    /// Registers as a relay for every service name matching `pattern`
    /// (wildcards allowed) that nobody serves by name and no package
    /// configures; [`Request::service`] says which name was called. Only a
    /// daemon's own bridge may relay; anyone else is refused with
    /// [`ErrorKind::InvalidSubject`], as for any wildcard service name.
    ///
    /// # Errors
    /// As [`serve_with`](Client::serve_with), wildcards aside.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let relay = client.serve_relay("svc.remote.>").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_relay(&self, pattern: impl IntoSubject) -> Result<Service, Error> {
        let pattern = pattern.into_subject_cow()?.into_owned();
        self.serve_subject(pattern, ServeOptions::default()).await
    }

    async fn serve_subject(
        &self,
        service: Subject,
        options: ServeOptions,
    ) -> Result<Service, Error> {
        let (calls, rx) = inbox::channel(DELIVERY_CAPACITY);
        let registration = Registration::Serve {
            service: service.clone(),
            require_capability: options.require_capability,
            calls,
        };
        let sid = self.register(registration).await?;
        Ok(Service::new(
            sid,
            service,
            rx,
            self.commands.clone(),
            Arc::clone(&self.shared),
        ))
    }
}

/// A registration as a responder of a service: a [`Stream`] of the
/// [`Request`]s the daemon routes to it.
///
/// The daemon balances requests round robin over every responder of a
/// service. The registration survives reconnects; dropping the `Service`
/// ends it. Requests already received but not yet answered fail at the
/// requester with `ResponderGone` or `Timeout`, as the daemon decides.
///
/// ```no_run
/// use futures::StreamExt;
/// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
/// let mut service = client.serve("contoso.weather.forecast").await?;
/// while let Some(request) = service.next().await {
///     let city = String::from_utf8_lossy(&request.payload).into_owned();
///     request.respond(format!("sunny in {city}")).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Service {
    sid: u64,
    service: Subject,
    calls: inbox::Receiver<IncomingCall>,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Service {
    pub(crate) fn new(
        sid: u64,
        service: Subject,
        calls: inbox::Receiver<IncomingCall>,
        commands: mpsc::Sender<Command>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            sid,
            service,
            calls,
            commands,
            shared,
        }
    }

    /// The service name.
    pub fn name(&self) -> &Subject {
        &self.service
    }
}

impl Stream for Service {
    type Item = Request;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        self.calls.poll_recv(cx).map(|call| {
            call.map(|call| Request {
                service: call.service,
                from: call.from,
                headers: call.headers,
                payload: call.payload,
                fds: call.fds,
                rid: call.rid,
                epoch: call.epoch,
                _alive: self.commands.clone(),
                shared: Arc::clone(&self.shared),
            })
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let sid = self.sid;
        command::send_from_drop(&self.commands, Command::Unregister { sid, done: None });
    }
}

/// A request to a service this client serves. Answer it once with
/// [`respond`](Request::respond), [`respond_failure`](Request::respond_failure)
/// or [`respond_with`](Request::respond_with).
#[derive(Debug)]
pub struct Request {
    /// The service called.
    pub service: Subject,
    /// Who calls, as the daemon proved it.
    pub from: Sender,
    /// The requester's headers, if any.
    pub headers: Option<Headers>,
    /// The request's payload.
    pub payload: Bytes,
    /// The open files the requester attached (unix and shm).
    fds: Fds,
    rid: u64,
    epoch: u64,
    /// Keeps the connection open until the request is answered or dropped.
    _alive: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Request {
    /// Reads the payload as a [`ValueSet`].
    ///
    /// # Errors
    /// [`ValueSetError::Decode`] if the payload is not a MessagePack map.
    ///
    /// ```no_run
    /// # fn demo(request: &busd_client::Request) -> Result<(), busd_client::ValueSetError> {
    /// let args = request.value_set()?;
    /// println!("{:?}", args.get("city"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value_set(&self) -> Result<ValueSet, ValueSetError> {
        ValueSet::from_bytes(&self.payload)
    }

    /// Who calls from another bus, as `HOST/PFN`, when a daemon's bridge to
    /// NATS relays the call: as [`Message::relayed_for`](crate::Message::relayed_for),
    /// [`from`](Self::from) is the bridge, the proven caller here.
    pub fn relayed_for(&self) -> Option<&str> {
        let headers = self.headers.as_ref()?;
        headers.get(crate::RELAYED_FOR).map(String::as_str)
    }

    /// Takes the open files the requester attached, as this process's own
    /// fds (none when nothing was attached, or they were taken already).
    /// Each has the access its sender opened it with.
    ///
    /// # Errors
    /// Never in practice: a request is not cloned, so its files are moved
    /// out; the error of duplicating them otherwise.
    pub fn take_fds(&mut self) -> std::io::Result<Vec<OwnedFd>> {
        std::mem::take(&mut self.fds).into_owned()
    }

    /// Answers with status `Success` and `payload`.
    ///
    /// # Errors
    /// As [`respond_with`](Request::respond_with).
    ///
    /// ```no_run
    /// # async fn demo(request: busd_client::Request) -> Result<(), busd_client::Error> {
    /// request.respond("21 °C").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn respond(self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.respond_with(Status::Success, None, payload).await
    }

    /// Answers with status `Failure`: the service could not do what was
    /// asked, and `payload` says why.
    ///
    /// # Errors
    /// As [`respond_with`](Request::respond_with).
    ///
    /// ```no_run
    /// # async fn demo(request: busd_client::Request) -> Result<(), busd_client::Error> {
    /// request.respond_failure("unknown city").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn respond_failure(self, payload: impl AsRef<[u8]>) -> Result<(), Error> {
        self.respond_with(Status::Failure, None, payload).await
    }

    /// Answers with `status` (`Success` or `Failure`), `headers` and `payload`.
    ///
    /// # Errors
    /// - [`ErrorKind::Protocol`] for a status other than `Success` or
    ///   `Failure` (the others are the daemon's to give);
    /// - [`ErrorKind::FrameTooLarge`] if the answer is over the daemon's
    ///   `max_frame`: it is not sent, and the requester gets `Failure` with
    ///   a sentence saying so instead;
    /// - [`ErrorKind::Disconnected`] if the request came on a connection that
    ///   has since been lost (the requester got `ResponderGone`);
    /// - [`ErrorKind::Closed`] if the client is gone.
    ///
    /// ```no_run
    /// use busd_client::{Headers, Status};
    /// # async fn demo(request: busd_client::Request) -> Result<(), busd_client::Error> {
    /// let mut headers = Headers::new();
    /// headers.insert("unit".into(), "celsius".into());
    /// request.respond_with(Status::Success, Some(headers), "21").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn respond_with(
        self,
        status: Status,
        headers: Option<Headers>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.respond_with_fds(status, headers, payload, Vec::new())
            .await
    }

    /// Answers as [`respond_with`](Request::respond_with), with open files
    /// attached for the requester ([`Response::take_fds`]); they are closed
    /// here once sent.
    ///
    /// # Errors
    /// As [`respond_with`](Request::respond_with);
    /// [`ErrorKind::Unsupported`] on a client that did not ask for fds
    /// ([`ClientBuilder::pass_fds`](crate::ClientBuilder::pass_fds)), or
    /// over tcp (nothing is sent).
    /// Past the daemon's fd limits the requester gets `LimitExceeded`.
    ///
    /// ```no_run
    /// use busd_client::Status;
    /// # async fn demo(request: busd_client::Request) -> Result<(), Box<dyn std::error::Error>> {
    /// let log = std::fs::File::open("/var/log/contoso.log")?;
    /// request.respond_with_fds(Status::Success, None, "log", vec![log.into()]).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Response::take_fds`]: crate::Response::take_fds
    pub async fn respond_with_fds(
        self,
        status: Status,
        headers: Option<Headers>,
        payload: impl AsRef<[u8]>,
        fds: Vec<OwnedFd>,
    ) -> Result<(), Error> {
        let fds = self.shared.attachable(fds)?;
        if !matches!(status, Status::Success | Status::Failure) {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("a service answers Success or Failure, not {status}"),
            ));
        }
        let payload = payload.as_ref();
        let op = Op::Resp {
            rid: self.rid,
            status,
            headers,
        };
        let max = self.shared.max_frame();
        let segment = self.shared.seal(payload).await;
        let (epoch, service) = (self.epoch, &self.service);
        let sent = self
            .shared
            .submit(|state| {
                if state.epoch != epoch {
                    return Err(Error::disconnected(&format!(
                        "the request to {service} came on an earlier connection and cannot be answered"
                    )));
                }
                state.write_frame_with_fds(&op, payload, segment, max, fds)
            })
            .await;
        match sent {
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                // The requester hears why instead of waiting for its timeout.
                let why = format!(
                    "service {service} could not answer: its answer ({} bytes) is over the daemon's max_frame ({max})",
                    payload.len()
                );
                let failure = Op::Resp {
                    rid: self.rid,
                    status: Status::Failure,
                    headers: None,
                };
                let told = self.shared.submit(|state| {
                    if state.epoch != epoch {
                        return Ok(());
                    }
                    state.write_frame(&failure, why.as_bytes(), None, max)
                });
                if let Err(e) = told.await {
                    tracing::debug!(cause = %e, "cannot tell the requester its answer was too large");
                }
                Err(e)
            }
            sent => sent,
        }
    }
}
