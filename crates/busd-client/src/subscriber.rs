//! Subscriptions: a [`Subscriber`] is a [`Stream`] of [`Message`]s that
//! unsubscribes when dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use busd_proto::{Overflow, Subject};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::command::{self, Command};
use crate::error::Error;
use crate::inbound::Message;
use crate::inbox;

/// How to subscribe, for [`Client::subscribe_with`](crate::Client::subscribe_with).
///
/// ```
/// use busd_client::{Overflow, SubscribeOptions};
/// let options = SubscribeOptions {
///     queue: Some("workers".into()),
///     overflow: Overflow::DropOldest,
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Queue group: each message goes to one member of the group.
    pub queue: Option<String>,
    /// What the daemon does when this subscriber falls behind.
    pub overflow: Overflow,
}

/// A live subscription: a [`Stream`] of the [`Message`]s that match it.
///
/// Messages arrive in publish order per publisher. The stream ends when the
/// client is gone for good or the daemon ended the subscription. Dropping the
/// subscriber unsubscribes; it survives reconnects (it is registered again).
///
/// Up to 8192 messages wait here for the consumer (4096 queued, and as
/// many more taken from the queue at once). Past that the client stops
/// reading the connection until there is room (it never drops a message
/// itself), so the daemon's [`Overflow`] policy for this subscription decides
/// what happens; everything else arriving on the same connection, answers to
/// requests included, waits too. Keep consuming, or use a separate client for
/// requests made while handling messages.
///
/// ```no_run
/// use futures::StreamExt;
/// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
/// let mut sub = client.subscribe("weather.*.paris").await?;
/// while let Some(message) = sub.next().await {
///     println!("{}: {:?}", message.subject, message.payload);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Subscriber {
    sid: u64,
    subject: Subject,
    messages: inbox::Receiver<Message>,
    commands: mpsc::Sender<Command>,
    /// Sum of the daemon's `Dropped` notices, written by the reader task.
    dropped: Arc<AtomicU64>,
    /// Whether `Unsub` was sent already, so `Drop` need not send it.
    unsubscribed: bool,
}

impl Subscriber {
    pub(crate) fn new(
        sid: u64,
        subject: Subject,
        messages: inbox::Receiver<Message>,
        commands: mpsc::Sender<Command>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            sid,
            subject,
            messages,
            commands,
            dropped,
            unsubscribed: false,
        }
    }

    /// The subject (or pattern) subscribed to.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// How many messages the daemon dropped for this subscription (the sum of
    /// its `Dropped` notices; only [`Overflow::DropOldest`] drops).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Unsubscribes and waits until the client has told the daemon.
    /// Messages already delivered to this subscriber are discarded.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) if the client's
    /// connection task is gone (the subscription is gone with it).
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let sub = client.subscribe("weather.>").await?;
    /// sub.unsubscribe().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        self.unsubscribed = true;
        let (done, rx) = oneshot::channel();
        let sid = self.sid;
        command::send(
            &self.commands,
            Command::Unregister {
                sid,
                done: Some(done),
            },
        )
        .await?;
        command::answer(rx).await
    }
}

impl Stream for Subscriber {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.messages.poll_recv(cx)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if !self.unsubscribed {
            let sid = self.sid;
            command::send_from_drop(&self.commands, Command::Unregister { sid, done: None });
        }
    }
}
