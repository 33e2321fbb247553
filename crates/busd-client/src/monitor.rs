//! `busd monitor` from the SDK: a [`Monitor`] is a [`Stream`] of what
//! happens on the bus, for admin connections, and stops when dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use busd_proto::Subject;
use futures::Stream;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::command::{self, Command, DELIVERY_CAPACITY, Registration};
use crate::error::Error;
use crate::inbound::{MonitorOptions, Observed};
use crate::inbox;
use crate::subject::IntoSubject;

/// A running monitor: a [`Stream`] of [`Observed`] events. It ends when
/// the client is gone for good; dropping it stops the monitor. It is
/// started again after a reconnect (events meanwhile are not seen).
#[derive(Debug)]
pub struct Monitor {
    sid: u64,
    events: inbox::Receiver<Observed>,
    commands: mpsc::Sender<Command>,
}

impl Stream for Monitor {
    type Item = Observed;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Observed>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let sid = self.sid;
        command::send_from_drop(&self.commands, Command::Unregister { sid, done: None });
    }
}

impl Client {
    /// Watches every publish, request and reply whose subject (or
    /// service) matches `subject` (wildcards allowed; `>` for all), as
    /// the daemon routes it: sender, receivers, receivers the access rules
    /// denied, size. Admin connections only (the daemon's uid or one in
    /// `[daemon] admin_uids`). Returns once the daemon has started it.
    ///
    /// # Errors
    /// [`ErrorKind::NotAuthorized`](crate::ErrorKind::NotAuthorized) for a
    /// client that is not an admin; otherwise as
    /// [`subscribe`](Client::subscribe).
    ///
    /// ```no_run
    /// use busd_client::Observed;
    /// use futures::StreamExt;
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// let mut monitor = client.monitor(">").await?;
    /// while let Some(Observed::Event(event, _)) = monitor.next().await {
    ///     println!("{:?} {} from {}", event.kind, event.subject, event.from.client_id);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn monitor(&self, subject: impl IntoSubject) -> Result<Monitor, Error> {
        self.monitor_with(subject, MonitorOptions::default()).await
    }

    /// As [`monitor`](Client::monitor), with options.
    ///
    /// # Errors
    /// As [`monitor`](Client::monitor).
    pub async fn monitor_with(
        &self,
        subject: impl IntoSubject,
        options: MonitorOptions,
    ) -> Result<Monitor, Error> {
        let subject: Subject = subject.into_subject()?;
        let (events, rx) = inbox::channel(DELIVERY_CAPACITY);
        let registration = Registration::Monitor {
            subject,
            contents: options.contents,
            events,
        };
        let sid = self.register(registration).await?;
        Ok(Monitor {
            sid,
            events: rx,
            commands: self.commands.clone(),
        })
    }
}
