//! The bus a benchmark drives, as a trait, and its busd implementation.
//!
//! The workloads are written once against [`Bus`] and [`Conn`]; busd's
//! driver is here, and `bench/natsbench` implements the same traits over
//! `async-nats`, so both systems run exactly the same workload code and
//! report in the same shape.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use busd_client::{Client, Message, Overflow, Request, RequestOptions, Subject, SubscribeOptions};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    ) -> impl Future<Output = anyhow::Result<Self::Conn>> + Send;
}

/// One connection to the bus.
pub trait Conn: Clone + Send + Sync + 'static {
    /// A parsed subject, reused for every publish.
    type Subject: Clone + Send + Sync + 'static;
    /// A call to answer.
    type Call: Call;
    /// Parses a literal subject.
    ///
    /// # Errors
    /// When the subject is malformed.
    fn subject(&self, subject: &str) -> anyhow::Result<Self::Subject>;
    /// Subscribes; the stream yields payloads and ends if the subscription does.
    fn subscribe(
        &self,
        subject: &str,
    ) -> impl Future<Output = anyhow::Result<BoxStream<'static, Bytes>>> + Send;
    /// Publishes one message.
    fn publish(
        &self,
        subject: &Self::Subject,
        payload: Bytes,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Waits until the server has handled what was published before (as far
    /// as the system offers such a round trip).
    fn flush(&self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Serves `service`; the stream ends if the registration does.
    fn serve(
        &self,
        service: &str,
    ) -> impl Future<Output = anyhow::Result<BoxStream<'static, Self::Call>>> + Send;
    /// Calls `service` and returns the response payload.
    fn request(
        &self,
        service: &Self::Subject,
        payload: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = anyhow::Result<Bytes>> + Send;
}

/// A request received by a responder.
pub trait Call: Send + 'static {
    /// Its payload.
    fn payload(&self) -> &Bytes;
    /// Answers it.
    fn respond(self, payload: Bytes) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// busd over its SDK, with the overflow policy the subscriptions ask for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct BusdBus {
    /// What the daemon does when a subscriber falls behind.
    pub overflow: Overflow,
    /// Over shm, payloads of at least this many bytes go as sealed
    /// segments (`ClientBuilder::segment_threshold`).
    pub segment_threshold: usize,
}

impl Bus for BusdBus {
    type Conn = BusdConn;

    fn system(&self) -> &'static str {
        "busd"
    }

    async fn connect(&self, url: &str, name: &str) -> anyhow::Result<BusdConn> {
        let client = Client::builder(url)
            .name(name)
            .reconnect(false)
            .segment_threshold(self.segment_threshold)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(BusdConn {
            client,
            overflow: self.overflow,
        })
    }
}

/// A busd SDK client.
#[derive(Debug, Clone)]
pub struct BusdConn {
    client: Client,
    overflow: Overflow,
}

impl Conn for BusdConn {
    type Subject = Subject;
    type Call = Request;

    fn subject(&self, subject: &str) -> anyhow::Result<Subject> {
        Ok(Subject::parse(subject)?)
    }

    async fn subscribe(&self, subject: &str) -> anyhow::Result<BoxStream<'static, Bytes>> {
        let options = SubscribeOptions {
            queue: None,
            overflow: self.overflow,
        };
        let sub = self.client.subscribe_with(subject, options).await?;
        Ok(sub.map(|m: Message| m.payload).boxed())
    }

    async fn publish(&self, subject: &Subject, payload: Bytes) -> anyhow::Result<()> {
        Ok(self.client.publish(subject, payload).await?)
    }

    async fn flush(&self) -> anyhow::Result<()> {
        Ok(self.client.flush().await?)
    }

    async fn serve(&self, service: &str) -> anyhow::Result<BoxStream<'static, Request>> {
        Ok(self.client.serve(service).await?.boxed())
    }

    async fn request(
        &self,
        service: &Subject,
        payload: Bytes,
        timeout: Duration,
    ) -> anyhow::Result<Bytes> {
        let options = RequestOptions {
            timeout: Some(timeout),
            headers: None,
        };
        let response = self.client.request_with(service, payload, options).await?;
        anyhow::ensure!(
            response.is_success(),
            "service answered {}",
            response.status
        );
        Ok(response.payload)
    }
}

impl Call for Request {
    fn payload(&self) -> &Bytes {
        &self.payload
    }

    async fn respond(self, payload: Bytes) -> anyhow::Result<()> {
        Ok(Request::respond(self, payload).await?)
    }
}
