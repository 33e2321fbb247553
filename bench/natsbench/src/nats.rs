//! The NATS driver: busd bench's [`Bus`] traits over `async-nats`.
//!
//! Responders share a queue group, so a request goes to one of them, as
//! busd balances a service's responders. `flush` is async-nats's: it
//! writes the client's buffer out, but unlike busd's it does not wait for
//! the server (async-nats offers no public ping), so a NATS publisher's
//! window bounds less.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subject};
use busd_bench::{Bus, Call, Conn};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// The queue group of a service's responders.
const RESPONDERS: &str = "bench-responders";

/// NATS, with async-nats's default options.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct NatsBus;

impl Bus for NatsBus {
    type Conn = NatsConn;

    fn system(&self) -> &'static str {
        "nats"
    }

    async fn connect(&self, url: &str, name: &str) -> Result<NatsConn, NatsError> {
        let client = ConnectOptions::new()
            .name(name)
            // One reconnect, then give up: a slow-consumer disconnect shows as loss.
            .max_reconnects(1)
            .connect(url)
            .await?;
        Ok(NatsConn(client))
    }
}

/// What async-nats reports, one variant per operation's error type.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NatsError {
    #[error(transparent)]
    Connect(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error(transparent)]
    Publish(#[from] async_nats::PublishError),
    #[error(transparent)]
    Flush(#[from] async_nats::client::FlushError),
    #[error(transparent)]
    Request(#[from] async_nats::RequestError),
    #[error("request timed out")]
    Timeout,
    #[error("a request without a reply subject")]
    NoReplySubject,
}

/// An async-nats client.
#[derive(Debug, Clone)]
pub(crate) struct NatsConn(Client);

/// A request received through the responders' queue group.
#[derive(Debug)]
pub(crate) struct NatsCall {
    client: Client,
    reply: Option<Subject>,
    payload: Bytes,
}

impl Conn for NatsConn {
    type Subject = Subject;
    type Call = NatsCall;
    type Error = NatsError;

    fn subject(&self, subject: &str) -> Result<Subject, NatsError> {
        Ok(Subject::from(subject))
    }

    async fn subscribe(&self, subject: &str) -> Result<BoxStream<'static, Bytes>, NatsError> {
        let sub = self.0.subscribe(subject.to_string()).await?;
        Ok(sub.map(|m| m.payload).boxed())
    }

    async fn publish(&self, subject: &Subject, payload: Bytes) -> Result<(), NatsError> {
        Ok(self.0.publish(subject.clone(), payload).await?)
    }

    async fn flush(&self) -> Result<(), NatsError> {
        Ok(self.0.flush().await?)
    }

    async fn serve(&self, service: &str) -> Result<BoxStream<'static, NatsCall>, NatsError> {
        let sub = self
            .0
            .queue_subscribe(service.to_string(), RESPONDERS.to_string())
            .await?;
        let client = self.0.clone();
        Ok(sub
            .map(move |m| NatsCall {
                client: client.clone(),
                reply: m.reply,
                payload: m.payload,
            })
            .boxed())
    }

    async fn request(
        &self,
        service: &Subject,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, NatsError> {
        let answer = tokio::time::timeout(timeout, self.0.request(service.clone(), payload))
            .await
            .map_err(|_| NatsError::Timeout)??;
        Ok(answer.payload)
    }
}

impl Call for NatsCall {
    type Error = NatsError;

    fn payload(&self) -> &Bytes {
        &self.payload
    }

    async fn respond(self, payload: Bytes) -> Result<(), NatsError> {
        let reply = self.reply.ok_or(NatsError::NoReplySubject)?;
        Ok(self.client.publish(reply, payload).await?)
    }
}
