//! [`Client`]: the cheap, cloneable handle everything starts from.
//!
//! Its constructors, [`Client::connect`] and [`Client::builder`], are in
//! `builder`, which sits above this handle; request, serve, ctl and payload
//! buffers add their methods from their own modules.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use busd_proto::{Headers, Limits, Op, Pfn, Subject, encode_pub_head};
use tokio::sync::{mpsc, oneshot};

use crate::command::{self, Command, DELIVERY_CAPACITY, Registration};
use crate::error::Error;
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::inbox;
use crate::shared::Shared;
use crate::subject::{IntoSubject, literal_cow};
use crate::subscriber::{SubscribeOptions, Subscriber};

/// A connection to busd: publish, subscribe, request and serve.
///
/// Cloning is cheap (two reference counts) and every clone shares one
/// connection: its socket, its outgoing buffer and its tasks. The connection is closed once every
/// `Client`, [`Subscriber`] and [`Service`](crate::Service) of it is dropped. When the
/// connection is lost the client reconnects with backoff (unless turned off
/// with [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect)) and registers its subscriptions and
/// services again; calls made meanwhile wait for the new connection.
///
/// ```no_run
/// use busd_client::Client;
/// use futures::StreamExt;
///
/// # async fn demo() -> Result<(), busd_client::Error> {
/// let client = Client::connect("unix:///run/user/1000/busd/busd.sock").await?;
/// let mut sub = client.subscribe("weather.>").await?;
/// client.publish("weather.today.paris", "21").await?;
/// let message = sub.next().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) shared: Arc<Shared>,
}

impl Client {
    pub(crate) fn new(commands: mpsc::Sender<Command>, shared: Arc<Shared>) -> Self {
        Self { commands, shared }
    }

    /// Publishes `payload` to the literal `subject`.
    ///
    /// Returns once the message is queued for the connection; use
    /// [`flush`](Client::flush) to wait until the daemon has handled it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSubject`] for a malformed or wildcard subject,
    /// [`ErrorKind::FrameTooLarge`] over the daemon's `max_frame` (nothing is
    /// sent), [`ErrorKind::Closed`] if the client is gone for good.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// client.publish("weather.today.paris", "21").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(
        &self,
        subject: impl IntoSubject,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.publish_inner(subject, None, payload.as_ref(), Vec::new())
            .await
    }

    /// Publishes `payload` with open files attached: every subscriber the
    /// rules allow gets them as its own fds ([`Message::take_fds`]), with
    /// whatever access they were opened with (open them read-only to hand
    /// out read access only). They are closed here once sent. The client
    /// must have asked for fds ([`ClientBuilder::pass_fds`]); a subscriber
    /// that did not, or that is over tcp, gets the message without them,
    /// and a `busd-fds-withheld` header saying how many.
    ///
    /// [`ClientBuilder::pass_fds`]: crate::ClientBuilder::pass_fds
    ///
    /// # Errors
    /// As [`publish`](Client::publish); [`ErrorKind::Unsupported`] on a
    /// client that did not ask for fds, or over tcp (nothing is sent). The daemon refuses more fds than
    /// its `limits.max_fds_per_message` or `limits.max_fds_in_flight`
    /// with a `LimitExceeded` error on the connection (logged; a publish is
    /// not answered).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let report = std::fs::File::open("/tmp/report.pdf")?;
    /// client.publish_with_fds("reports.new", "report.pdf", vec![report.into()]).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Message::take_fds`]: crate::Message::take_fds
    pub async fn publish_with_fds(
        &self,
        subject: impl IntoSubject,
        payload: impl AsRef<[u8]>,
        fds: Vec<OwnedFd>,
    ) -> Result<(), Error> {
        self.publish_inner(subject, None, payload.as_ref(), fds)
            .await
    }

    /// Publishes `payload` with `headers` to the literal `subject`.
    ///
    /// # Errors
    /// As [`publish`](Client::publish).
    ///
    /// ```no_run
    /// use busd_client::Headers;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let mut headers = Headers::new();
    /// headers.insert("unit".into(), "celsius".into());
    /// client.publish_with_headers("weather.today.paris", headers, "21").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish_with_headers(
        &self,
        subject: impl IntoSubject,
        headers: Headers,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.publish_inner(subject, Some(headers), payload.as_ref(), Vec::new())
            .await
    }

    async fn publish_inner(
        &self,
        subject: impl IntoSubject,
        headers: Option<Headers>,
        payload: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<(), Error> {
        let subject = literal_cow(subject, "publish to")?;
        let fds = self.shared.attachable(fds)?;
        let segment = self.shared.seal(payload).await;
        if fds.is_empty() {
            return self
                .submit_pub(&subject, headers.as_ref(), payload, segment)
                .await;
        }
        let op = Op::Pub {
            subject: subject.into_owned(),
            headers,
        };
        let max = self.shared.max_frame();
        self.shared
            .submit(|state| state.write_frame_with_fds(&op, payload, segment, max, fds))
            .await
    }

    /// Queues a `Pub` to the literal `subject` whose payload is `payload`,
    /// or `segment` (a segment or pool block) if given (`payload` is then
    /// unused). The head is
    /// encoded from the borrowed subject: a stream to one subject clones
    /// nothing per message.
    pub(crate) async fn submit_pub(
        &self,
        subject: &Subject,
        headers: Option<&Headers>,
        payload: &[u8],
        segment: Option<crate::state::Outside>,
    ) -> Result<(), Error> {
        let max = self.shared.max_frame();
        self.shared
            .submit(|state| {
                state.write_with("Pub", payload, segment, max, |body, out| {
                    encode_pub_head(subject, headers, body, out)
                })
            })
            .await
    }

    /// Subscribes to `subject`, which may hold wildcards (`*`, `>`).
    ///
    /// Returns once the daemon has the subscription, so a message published
    /// after this returns is delivered to it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSubject`] for a malformed subject; the daemon's
    /// refusal (e.g. [`ErrorKind::LimitExceeded`]);
    /// [`ErrorKind::Disconnected`] if the connection was lost meanwhile;
    /// [`ErrorKind::Closed`] if the client is gone for good.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let sub = client.subscribe("weather.*.paris").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, subject: impl IntoSubject) -> Result<Subscriber, Error> {
        self.subscribe_with(subject, SubscribeOptions::default())
            .await
    }

    /// Subscribes to `subject` as a member of the queue group `queue`: each
    /// message goes to one member of the group.
    ///
    /// # Errors
    /// As [`subscribe`](Client::subscribe).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let sub = client.queue_subscribe("jobs.>", "workers").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn queue_subscribe(
        &self,
        subject: impl IntoSubject,
        queue: impl Into<String>,
    ) -> Result<Subscriber, Error> {
        let options = SubscribeOptions {
            queue: Some(queue.into()),
            ..SubscribeOptions::default()
        };
        self.subscribe_with(subject, options).await
    }

    /// Subscribes to `subject` with a queue group and an overflow policy.
    ///
    /// # Errors
    /// As [`subscribe`](Client::subscribe).
    ///
    /// ```no_run
    /// use busd_client::{Overflow, SubscribeOptions};
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let options = SubscribeOptions { queue: None, overflow: Overflow::DropOldest };
    /// let sub = client.subscribe_with("sensors.>", options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe_with(
        &self,
        subject: impl IntoSubject,
        options: SubscribeOptions,
    ) -> Result<Subscriber, Error> {
        let subject = subject.into_subject()?;
        let (messages, rx) = inbox::channel(DELIVERY_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let registration = Registration::Sub {
            subject: subject.clone(),
            queue: options.queue,
            overflow: options.overflow,
            messages,
            dropped: Arc::clone(&dropped),
        };
        let sid = self.register(registration).await?;
        Ok(Subscriber::new(
            sid,
            subject,
            rx,
            self.commands.clone(),
            dropped,
        ))
    }

    /// Sends `registration` and waits for its confirmation; returns its sid.
    pub(crate) async fn register(&self, registration: Registration) -> Result<u64, Error> {
        let sid = self.shared.next_sid.fetch_add(1, Ordering::Relaxed);
        let (done, rx) = oneshot::channel();
        let command = Command::Register {
            sid,
            registration,
            done,
        };
        command::send(&self.commands, command).await?;
        command::answer(rx).await??;
        Ok(sid)
    }

    /// Waits until the daemon has handled everything this client sent before
    /// (a Ping answered by a Pong).
    ///
    /// # Errors
    /// [`ErrorKind::Disconnected`] if the connection was lost meanwhile (what
    /// was sent before may be lost); [`ErrorKind::Closed`] if the client is
    /// gone for good.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// client.publish("weather.today.paris", "21").await?;
    /// client.flush().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&self) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.shared
            .submit(|state| {
                state.flush(done);
                Ok(())
            })
            .await?;
        command::answer(rx).await?
    }

    /// The daemon's id for the current connection (it changes on reconnect);
    /// it is what receivers see in [`Sender::client_id`](crate::Sender).
    pub fn client_id(&self) -> u64 {
        self.shared.client_id.load(Ordering::Relaxed)
    }

    /// The limits the daemon set for the current connection.
    pub fn server_limits(&self) -> Limits {
        self.shared.limits()
    }

    /// The package the daemon proved for the current connection, as its
    /// `Welcome` said; `None` for an unpackaged client. It is what receivers
    /// see in [`Sender::pfn`](crate::Sender).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("unix:///run/busd/busd.sock")
    ///     .pfn("Contoso.Weather_8wekyb3d8bbwe")
    ///     .connect()
    ///     .await?;
    /// assert_eq!(
    ///     client.pfn().map(|p| p.to_string()).as_deref(),
    ///     Some("Contoso.Weather_8wekyb3d8bbwe"),
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn pfn(&self) -> Option<Pfn> {
        self.shared.pfn()
    }
}
