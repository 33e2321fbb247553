//! What handles send the connection task, and what it keeps for them.
//!
//! Handles ([`Client`](crate::Client), [`Subscriber`](crate::Subscriber),
//! [`Service`](crate::Service), [`Request`](crate::Request)) never touch the
//! socket. Registering and unregistering are [`Command`]s over one bounded
//! channel, answered on a `oneshot`; that channel also tells the connection
//! task when every handle is gone. Publishing, requests, answers and flushes
//! are appended to the shared outgoing buffer by the caller itself (see
//! [`Shared`](crate::shared::Shared)).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use busd_proto::{Op, Overflow, Subject};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::inbound::Observed;
use crate::inbound::{IncomingCall, Message};
use crate::inbox;

/// Capacity of the command channel: how many (un)registrations may wait for
/// the connection task (for instance while it reconnects) before callers wait.
pub(crate) const COMMAND_CAPACITY: usize = 2048;

/// Capacity of each subscription's and service's delivery queue (see
/// `inbox`; the receiver may hold as many more, taken at once). When one is
/// full, the reader task waits, which pushes back onto the socket and lets
/// the daemon's overflow policy decide.
pub(crate) const DELIVERY_CAPACITY: usize = 4096;

/// An instruction for the connection task: the rare calls that change what
/// is registered. The hot paths go through [`Shared`](crate::shared::Shared).
pub(crate) enum Command {
    /// Register a subscription or service under `sid`, then confirm it with
    /// Ping/Pong.
    Register {
        sid: u64,
        registration: Registration,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Remove the registration under `sid` and tell the daemon.
    Unregister {
        sid: u64,
        done: Option<oneshot::Sender<()>>,
    },
}

/// A live registration, kept across reconnects so it can be sent again.
pub(crate) enum Registration {
    /// A subscription.
    Sub {
        subject: Subject,
        queue: Option<String>,
        overflow: Overflow,
        messages: inbox::Sender<Message>,
        /// Sum of the daemon's `Dropped` notices, read by the Subscriber.
        dropped: Arc<AtomicU64>,
    },
    /// A service.
    Serve {
        service: Subject,
        require_capability: Option<String>,
        calls: inbox::Sender<IncomingCall>,
    },
    /// A monitor (admins only).
    Monitor {
        subject: Subject,
        contents: bool,
        events: inbox::Sender<Observed>,
    },
}

impl Registration {
    /// The frame that registers this with the daemon.
    pub(crate) fn op(&self, sid: u64) -> Op {
        match self {
            Self::Sub {
                subject,
                queue,
                overflow,
                ..
            } => Op::Sub {
                sid,
                subject: subject.clone(),
                queue: queue.clone(),
                overflow: *overflow,
            },
            Self::Serve {
                service,
                require_capability,
                ..
            } => Op::Serve {
                sid,
                service: service.clone(),
                require_capability: require_capability.clone(),
            },
            Self::Monitor {
                subject, contents, ..
            } => Op::Monitor {
                sid,
                subject: subject.clone(),
                contents: *contents,
            },
        }
    }
}

/// Sends `command` without waiting, for `Drop` impls: `try_send`, else a
/// spawned send when a runtime is at hand. A closed channel means the task is
/// gone and there is nothing left to undo.
pub(crate) fn send_from_drop(commands: &mpsc::Sender<Command>, command: Command) {
    match commands.try_send(command) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(command)) => {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let commands = commands.clone();
                runtime.spawn(async move {
                    let _ = commands.send(command).await;
                });
            }
        }
    }
}

/// Sends `command`, mapping a gone task to [`ErrorKind::Closed`].
pub(crate) async fn send(commands: &mpsc::Sender<Command>, command: Command) -> Result<(), Error> {
    commands.send(command).await.map_err(|_| Error::closed())
}

/// Waits for a task's answer, mapping a dropped answer to [`ErrorKind::Closed`].
pub(crate) async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, Error> {
    rx.await.map_err(|_| Error::closed())
}
