//! The bus a benchmark drives, as a trait, and its busd implementation.
//!
//! The workloads are written once against [`Bus`] and [`Conn`]; busd's
//! driver is here, and `bench/natsbench` implements the same traits over
//! `async-nats`, so both systems run exactly the same workload code and
//! report in the same shape.

use std::future::Future;
use std::time::Duration;

use busd_client::{
    Client, Message, Overflow, Request, RequestOptions, Status, Subject, SubjectError,
    SubscribeOptions,
};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Payloads up to this size are built on the stack (larger ones on the heap).
const STACK_PAYLOAD: usize = 1024;

/// A message bus to benchmark: how to connect to it.
///
/// It is serialised into each worker's spec, so a worker process connects
/// with the same options as the runner.
pub trait Bus: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// A connection.
    type Conn: Conn;
    /// The system's name in reports (`busd`, `nats`).
    fn system(&self) -> &'static str;
    /// Connects to `url`, announcing `name`; the connection must not
    /// reconnect silently, so a disconnect shows as loss.
    fn connect(
        &self,
        url: &str,
        name: &str,
    ) -> impl Future<Output = Result<Self::Conn, <Self::Conn as Conn>::Error>> + Send;
}

/// One connection to the bus.
pub trait Conn: Clone + Send + Sync + 'static {
    /// A parsed subject, reused for every publish.
    type Subject: Clone + Send + Sync + 'static;
    /// A call to answer.
    type Call: Call;
    /// What the system's client reports.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Parses a literal subject.
    ///
    /// # Errors
    /// When the subject is malformed.
    fn subject(&self, subject: &str) -> Result<Self::Subject, Self::Error>;
    /// Subscribes; the stream yields payloads and ends if the subscription does.
    fn subscribe(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<BoxStream<'static, Bytes>, Self::Error>> + Send;
    /// Publishes one message.
    fn publish(
        &self,
        subject: &Self::Subject,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Publishes a message of `len` bytes that `fill` writes: into a buffer
    /// then published, unless the bus can give memory to write it in place.
    fn publish_filled(
        &self,
        subject: &Self::Subject,
        len: usize,
        fill: impl FnOnce(&mut [u8]) + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.publish(subject, filled(len, fill))
    }
    /// Waits until the server has handled what was published before (as far
    /// as the system offers such a round trip).
    fn flush(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Serves `service`; the stream ends if the registration does.
    fn serve(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<BoxStream<'static, Self::Call>, Self::Error>> + Send;
    /// Calls `service` and returns the response payload.
    fn request(
        &self,
        service: &Self::Subject,
        payload: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;
}

/// A payload of `len` bytes that `fill` wrote, in a buffer of its own.
fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Bytes {
    let mut buf = bytes::BytesMut::zeroed(len);
    fill(&mut buf);
    buf.freeze()
}

/// A request received by a responder.
pub trait Call: Send + 'static {
    /// What the system's client reports.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Its payload.
    fn payload(&self) -> &Bytes;
    /// Answers it.
    fn respond(self, payload: Bytes) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// busd over its SDK, with the overflow policy the subscriptions ask for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BusdBus {
    /// What the daemon does when a subscriber falls behind.
    pub overflow: Overflow,
    /// Over shm, payloads of at least this many bytes go as sealed
    /// segments (`ClientBuilder::segment_threshold`).
    pub segment_threshold: usize,
    /// Such payloads are written in place in a payload buffer
    /// (`Client::payload_buffer`), not built and then copied into one.
    #[serde(default)]
    pub in_place: bool,
}

impl Bus for BusdBus {
    type Conn = BusdConn;

    fn system(&self) -> &'static str {
        "busd"
    }

    async fn connect(&self, url: &str, name: &str) -> Result<BusdConn, BusdError> {
        let client = Client::builder(url)
            .name(name)
            .reconnect(false)
            .segment_threshold(self.segment_threshold)
            .connect()
            .await?;
        Ok(BusdConn {
            client,
            overflow: self.overflow,
            in_place_from: if self.in_place {
                self.segment_threshold
            } else {
                usize::MAX
            },
        })
    }
}

/// What busd's driver reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusdError {
    /// The SDK's error.
    #[error(transparent)]
    Client(#[from] busd_client::Error),
    /// A subject the bench was given is malformed.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The service answered, with a status that is not `Success`.
    #[error("the service answered {0}")]
    Answered(Status),
}

/// A busd SDK client.
#[derive(Debug, Clone)]
pub struct BusdConn {
    client: Client,
    overflow: Overflow,
    /// Payloads at least this large are written in place.
    in_place_from: usize,
}

impl Conn for BusdConn {
    type Subject = Subject;
    type Call = Request;
    type Error = BusdError;

    fn subject(&self, subject: &str) -> Result<Subject, BusdError> {
        Ok(Subject::parse(subject)?)
    }

    async fn subscribe(&self, subject: &str) -> Result<BoxStream<'static, Bytes>, BusdError> {
        let options = SubscribeOptions {
            queue: None,
            overflow: self.overflow,
        };
        let sub = self.client.subscribe_with(subject, options).await?;
        Ok(sub.map(|m: Message| m.payload).boxed())
    }

    async fn publish(&self, subject: &Subject, payload: Bytes) -> Result<(), BusdError> {
        Ok(self.client.publish(subject, payload).await?)
    }

    async fn publish_filled(
        &self,
        subject: &Subject,
        len: usize,
        fill: impl FnOnce(&mut [u8]) + Send,
    ) -> Result<(), BusdError> {
        if len >= self.in_place_from {
            // `fill` writes every byte, so the block need not be zeroed.
            let mut buf = self.client.payload_buffer_unzeroed(len).await?;
            fill(&mut buf);
            return Ok(self.client.publish_buffer(subject, None, buf).await?);
        }
        // The SDK copies what it is given (async-nats keeps the `Bytes`
        // it is handed), so a busd publisher needs no buffer of its own
        // per message: a small payload is built on the stack.
        let mut buf: SmallVec<[u8; STACK_PAYLOAD]> = SmallVec::from_elem(0, len);
        fill(&mut buf);
        Ok(self.client.publish(subject, &buf[..]).await?)
    }

    async fn flush(&self) -> Result<(), BusdError> {
        Ok(self.client.flush().await?)
    }

    async fn serve(&self, service: &str) -> Result<BoxStream<'static, Request>, BusdError> {
        Ok(self.client.serve(service).await?.boxed())
    }

    async fn request(
        &self,
        service: &Subject,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusdError> {
        let options = RequestOptions {
            timeout: Some(timeout),
            headers: None,
        };
        let response = self.client.request_with(service, payload, options).await?;
        if !response.is_success() {
            return Err(BusdError::Answered(response.status));
        }
        Ok(response.payload)
    }
}

impl Call for Request {
    type Error = BusdError;

    fn payload(&self) -> &Bytes {
        &self.payload
    }

    async fn respond(self, payload: Bytes) -> Result<(), BusdError> {
        Ok(Request::respond(self, payload).await?)
    }
}
