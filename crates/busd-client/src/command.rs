//! What handles send the connection task, and the state they share with it.
//!
//! Handles ([`Client`](crate::Client), [`Subscriber`](crate::Subscriber),
//! [`Service`](crate::Service), [`Request`](crate::Request)) never touch the
//! socket: they send a [`Command`] over one bounded channel and, where they
//! need an answer, wait on a `oneshot`. Frames a caller can build alone
//! (`Pub`, `Req`, `Resp`) are encoded by the caller, so the size check against
//! `max_frame` fails in the caller's hands and the single connection task only
//! copies bytes.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busd_proto::{
    CtlCommand, Headers, LENGTH_PREFIX, Limits, Op, Overflow, Pfn, Sender, Status, Subject,
    Welcome, encode_head,
};
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, ErrorKind, Message, Response};

/// Capacity of the command channel: how many commands may wait for the
/// connection task (for instance while it reconnects) before callers wait.
pub(crate) const COMMAND_CAPACITY: usize = 2048;

/// Capacity of each subscription's and service's delivery channel. When one
/// is full, the connection task waits, which pushes back onto the socket and
/// lets the daemon's overflow policy decide.
pub(crate) const DELIVERY_CAPACITY: usize = 8192;

/// An instruction for the connection task.
pub(crate) enum Command {
    /// Write an encoded frame head and its payload (`Pub`).
    Publish { head: Bytes, payload: Bytes },
    /// Write the answer to a call received on connection `epoch`.
    Respond {
        epoch: u64,
        head: Bytes,
        payload: Bytes,
    },
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
    /// Send a request (`head` is its encoded `Req` or `Ctl`) and route its answer.
    Request {
        rid: u64,
        target: Target,
        head: Bytes,
        payload: Bytes,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    /// The caller gave up on request `rid`: forget it.
    ForgetRequest { rid: u64 },
    /// Answer once the daemon has handled everything sent before.
    Flush {
        done: oneshot::Sender<Result<(), Error>>,
    },
}

/// A live registration, kept across reconnects so it can be sent again.
pub(crate) enum Registration {
    /// A subscription.
    Sub {
        subject: Subject,
        queue: Option<String>,
        overflow: Overflow,
        messages: mpsc::Sender<Message>,
        /// Sum of the daemon's `Dropped` notices, read by the Subscriber.
        dropped: Arc<AtomicU64>,
    },
    /// A service.
    Serve {
        service: Subject,
        require_capability: Option<String>,
        calls: mpsc::Sender<IncomingCall>,
    },
}

/// What a request id was sent to: names it in errors.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A `Req` to a service.
    Service(Subject),
    /// A `Ctl` command.
    Ctl(CtlCommand),
}

impl Target {
    /// The error for an answer with `status`, if it is not an answer.
    pub(crate) fn error_for(&self, status: Status) -> Option<Error> {
        match self {
            Self::Service(service) => Error::from_status(status, service.as_str()),
            Self::Ctl(command) => crate::ctl::status_error(status, *command),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(service) => write!(f, "request to service {service}"),
            Self::Ctl(command) => write!(f, "ctl command {}", crate::ctl::name(*command)),
        }
    }
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
        }
    }
}

/// A `Call` as the connection task hands it to a [`Service`](crate::Service).
pub(crate) struct IncomingCall {
    pub(crate) rid: u64,
    /// Which connection the call came on; an answer on another is dropped.
    pub(crate) epoch: u64,
    pub(crate) service: Subject,
    pub(crate) from: Sender,
    pub(crate) headers: Option<Headers>,
    pub(crate) payload: Bytes,
}

/// State shared by every handle of one client and its connection task.
///
/// Only counters and the current `Welcome`'s facts live here; everything the
/// task routes by (sids, rids, Pong waiters) is owned by the task alone.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Next subscription or service id; ids stay valid across reconnects.
    pub(crate) next_sid: AtomicU64,
    /// Next request id; unique per client, hence per connection.
    pub(crate) next_rid: AtomicU64,
    /// The current connection's id, from its `Welcome`.
    pub(crate) client_id: AtomicU64,
    /// `limits.max_frame` of the current connection, read on every publish.
    pub(crate) max_frame: AtomicU32,
    /// All limits of the current connection. A std mutex: held for a copy only.
    pub(crate) limits: Mutex<Limits>,
    /// The package the daemon proved for the current connection. A std
    /// mutex: held for a clone only.
    pub(crate) pfn: Mutex<Option<Pfn>>,
    /// The live connection's number (counting from 1), or 0 while
    /// disconnected: a call's answer must go back on its own connection.
    pub(crate) epoch: AtomicU64,
    /// Default timeout of `request`.
    pub(crate) request_timeout: Duration,
}

impl Shared {
    /// Shared state for a client whose first connection got `welcome`.
    pub(crate) fn new(welcome: &Welcome, request_timeout: Duration) -> Self {
        Self {
            next_sid: AtomicU64::new(1),
            next_rid: AtomicU64::new(1),
            client_id: AtomicU64::new(welcome.client_id),
            max_frame: AtomicU32::new(welcome.limits.max_frame),
            limits: Mutex::new(welcome.limits),
            pfn: Mutex::new(welcome.pfn.clone()),
            epoch: AtomicU64::new(0),
            request_timeout,
        }
    }

    /// Records the `Welcome` facts of connection number `epoch`.
    pub(crate) fn welcome(&self, epoch: u64, welcome: &Welcome) {
        self.client_id.store(welcome.client_id, Ordering::Relaxed);
        self.max_frame
            .store(welcome.limits.max_frame, Ordering::Relaxed);
        match self.limits.lock() {
            Ok(mut current) => *current = welcome.limits,
            Err(poisoned) => *poisoned.into_inner() = welcome.limits,
        }
        match self.pfn.lock() {
            Ok(mut current) => current.clone_from(&welcome.pfn),
            Err(poisoned) => poisoned.into_inner().clone_from(&welcome.pfn),
        }
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Records that the connection is lost.
    pub(crate) fn disconnected(&self) {
        self.epoch.store(0, Ordering::Release);
    }

    /// The limits of the current connection.
    pub(crate) fn limits(&self) -> Limits {
        match self.limits.lock() {
            Ok(limits) => *limits,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The package of the current connection.
    pub(crate) fn pfn(&self) -> Option<Pfn> {
        match self.pfn.lock() {
            Ok(pfn) => pfn.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Encodes the head of a frame carrying `payload_len` bytes, refusing it
    /// locally when the whole frame would exceed the daemon's `max_frame`.
    pub(crate) fn encode(&self, op: &Op, payload_len: usize) -> Result<Bytes, Error> {
        let mut head = BytesMut::with_capacity(64);
        encode_head(op, payload_len, &mut head).map_err(|e| match e {
            busd_proto::CodecError::FrameTooLarge { .. } => {
                frame_too_large(op, u64::MAX, self.max_frame.load(Ordering::Relaxed))
            }
            other => Error::new(
                ErrorKind::Protocol,
                format!("cannot encode {}: {other}", op.name()),
            ),
        })?;
        let len = (head.len() - LENGTH_PREFIX) as u64 + payload_len as u64;
        let max = self.max_frame.load(Ordering::Relaxed);
        if len > u64::from(max) {
            return Err(frame_too_large(op, len, max));
        }
        Ok(head.freeze())
    }
}

fn frame_too_large(op: &Op, len: u64, max: u32) -> Error {
    let what = if len == u64::MAX {
        "more than 4 GiB".to_owned()
    } else {
        format!("{len} bytes")
    };
    Error::new(
        ErrorKind::FrameTooLarge,
        format!(
            "{} frame of {what} is over the daemon's limit of {max} bytes; it was not sent",
            op.name()
        ),
    )
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
