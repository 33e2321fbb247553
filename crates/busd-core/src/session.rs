//! One connection's protocol, sans-IO: what the client may send next, the
//! checks on each operation, and what the daemon must do about it.
//!
//! The daemon's tokio session reads a frame, hands its [`Op`] to
//! [`Session::on_handshake`] (with the policy and what the transport
//! proved of the peer) until `Welcome`, then to [`Session::on_op`], and
//! carries out the [`Step`] it gets back with the router and the
//! connection's queue; it keeps only the bytes and the timers (the
//! handshake's deadline, the request timer). Every rule here is therefore
//! tested without a socket.
//!
//! ```text
//! Hello ──(unpackaged, or peer proof)──────────────▶ Open ──(fatal error)──▶ Closed
//!   └──(token claim)──▶ Challenging ──▶ Authenticating ──(HMAC ok)──┘
//! ```

use std::time::{Duration, Instant};

use busd_policy::{Identity, Policy};
use busd_proto::{
    AuthKind, CtlCommand, Headers, Op, Overflow, PROTOCOL_VERSION, Pfn, Status, Subject,
};

use crate::error::ProtocolError;
use crate::proof::{self, NONCE_LEN, Peer, refused};

/// The longest timeout a request may ask for; longer ones are cut to it.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the daemon must do for one operation of its client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// Make a nonce of [`NONCE_LEN`] random bytes and give it to
    /// [`Session::challenge`], which says what to send.
    Challenge,
    /// The identity is proven: register the connection and send `Welcome`.
    Welcome(Identity),
    /// Route a publish (the subject is literal).
    Publish {
        /// Where to.
        subject: Subject,
        /// Its headers.
        headers: Option<Headers>,
    },
    /// Register a subscription.
    Subscribe {
        /// The client's id for it.
        sid: u64,
        /// The pattern.
        subject: Subject,
        /// Its queue group.
        queue: Option<String>,
        /// What to do when the client reads too slowly.
        overflow: Overflow,
    },
    /// Register a responder of a service.
    Serve {
        /// The client's id for it.
        sid: u64,
        /// The service name.
        service: Subject,
        /// The capability callers need.
        require_capability: Option<String>,
    },
    /// Remove a subscription or service.
    Unsubscribe {
        /// Which.
        sid: u64,
    },
    /// Route a request (the service name is literal) due by `deadline`.
    Request {
        /// The client's id for it.
        rid: u64,
        /// The service asked.
        service: Subject,
        /// When it was read, for its latency.
        received: Instant,
        /// When the daemon answers `Timeout` if no reply came.
        deadline: Instant,
        /// Its headers.
        headers: Option<Headers>,
    },
    /// Pass a responder's answer back (its status is `Success` or `Failure`).
    Respond {
        /// The daemon's id of the call it answers.
        call_id: u64,
        /// The service's status.
        status: Status,
        /// Its headers.
        headers: Option<Headers>,
    },
    /// Run an admin command (the daemon checks who asks).
    Ctl {
        /// The client's id for it.
        rid: u64,
        /// What to run.
        command: CtlCommand,
    },
    /// Start a monitor (the daemon checks who asks).
    Monitor {
        /// The client's id for it.
        sid: u64,
        /// What to watch.
        subject: Subject,
        /// Whether its events carry headers and payloads.
        contents: bool,
    },
    /// Answer a `Ping` with a `Pong`.
    Pong,
    /// Nothing to do (a `Pong`, or an error the client reports).
    Nothing,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for `Hello`.
    Hello,
    /// A token claim: waiting for the daemon's nonce.
    Challenging(Pfn),
    /// Waiting for the client's `Auth` over `nonce`.
    Authenticating { pfn: Pfn, nonce: [u8; NONCE_LEN] },
    /// After `Welcome`.
    Open,
    /// A fatal error was found; nothing more is accepted.
    Closed,
}

/// One connection's protocol state, from `Hello` to close: the handshake
/// phases, then each operation's checks, as [`Step`]s to carry out.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    /// The last operation was a request or a reply, so the answer or the
    /// next request is likely to come soon.
    exchanging: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new connection, waiting for `Hello`.
    pub fn new() -> Self {
        Self {
            phase: Phase::Hello,
            exchanging: false,
        }
    }

    /// Whether the handshake is over and the client may use the bus.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the last operation was a request or a reply: the daemon
    /// then polls for the next frame a little before it sleeps.
    pub fn is_exchanging(&self) -> bool {
        self.exchanging
    }

    /// Takes the client's next operation during the handshake, under
    /// `policy`, from `peer`.
    ///
    /// # Errors
    /// A [`ProtocolError`]; every one is fatal here: the session is closed
    /// for good (later calls fail with [`ProtocolError::Closed`]).
    pub fn on_handshake(
        &mut self,
        op: Op,
        policy: &Policy,
        peer: &Peer<'_>,
    ) -> Result<Step, ProtocolError> {
        let step = match &self.phase {
            Phase::Hello => self.hello(op, policy, peer),
            Phase::Authenticating { .. } => self.auth(op, policy, peer),
            Phase::Challenging(_) => Err(ProtocolError::Unexpected {
                expected: "nothing before the Challenge",
                got: op.name(),
            }),
            Phase::Open => Err(ProtocolError::NotAfterWelcome(op.name())),
            Phase::Closed => Err(ProtocolError::Closed),
        };
        self.check(step)
    }

    /// Takes the client's next operation after `Welcome`; `now` reads the
    /// daemon's clock, only for a request's deadline (the common frames
    /// read no clock).
    ///
    /// # Errors
    /// A [`ProtocolError`]: a fatal one closes the session for good (later
    /// calls fail with [`ProtocolError::Closed`]); the others are
    /// answered and the session goes on.
    pub fn on_op(&mut self, op: Op, now: impl FnOnce() -> Instant) -> Result<Step, ProtocolError> {
        let step = match &self.phase {
            Phase::Open => self.open(op, now),
            _ => Err(self.not_open(op.name())),
        };
        self.check(step)
    }

    /// A `Pub` to `subject`, checked where it lies: the verdict
    /// [`on_op`](Self::on_op) gives an `Op::Pub` (`Ok` for
    /// [`Step::Publish`]), for the daemon's hot path, which then moves
    /// neither the op nor a [`Step`] (a tenth of its time per small
    /// message when it did).
    ///
    /// # Errors
    /// As [`on_op`](Self::on_op).
    #[inline]
    pub fn on_publish(&mut self, subject: &Subject) -> Result<(), ProtocolError> {
        if matches!(self.phase, Phase::Open) && !subject.has_wildcards() {
            self.exchanging = false;
            return Ok(());
        }
        self.refuse_publish(subject)
    }

    /// Why a `Pub` to `subject` is refused (out of the hot path).
    #[cold]
    fn refuse_publish(&mut self, subject: &Subject) -> Result<(), ProtocolError> {
        let refused = match self.phase {
            Phase::Open => {
                self.exchanging = false;
                publishable(subject)
            }
            _ => Err(self.not_open("Pub")),
        };
        self.check(refused.map(|()| Step::Nothing)).map(|_| ())
    }

    /// The error for `op` (named) before `Welcome` or after a fatal error.
    fn not_open(&self, op: &'static str) -> ProtocolError {
        match self.phase {
            Phase::Hello => ProtocolError::Unexpected {
                expected: "Hello",
                got: op,
            },
            Phase::Challenging(_) | Phase::Authenticating { .. } => ProtocolError::Unexpected {
                expected: "Auth",
                got: op,
            },
            Phase::Open | Phase::Closed => ProtocolError::Closed,
        }
    }

    /// Closes the session on a fatal error.
    fn check(&mut self, step: Result<Step, ProtocolError>) -> Result<Step, ProtocolError> {
        if let Err(e) = &step {
            if e.is_fatal() {
                self.phase = Phase::Closed;
            }
        }
        step
    }

    /// After [`Step::Challenge`]: the `Challenge` to send with `nonce`, or
    /// with `None` (no randomness to be had) the refusal.
    ///
    /// # Errors
    /// [`ProtocolError::AuthFailed`] without a nonce;
    /// [`ProtocolError::Closed`] when no challenge is due.
    pub fn challenge(&mut self, nonce: Option<[u8; NONCE_LEN]>) -> Result<Op, ProtocolError> {
        let Phase::Challenging(pfn) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return Err(ProtocolError::Closed);
        };
        let Some(nonce) = nonce else {
            return Err(refused(pfn, None, "the daemon cannot make a challenge"));
        };
        self.phase = Phase::Authenticating { pfn, nonce };
        Ok(Op::Challenge {
            nonce: nonce.to_vec().into(),
        })
    }

    fn hello(&mut self, op: Op, policy: &Policy, peer: &Peer<'_>) -> Result<Step, ProtocolError> {
        let hello = match op {
            Op::Hello(h) => h,
            other => {
                return Err(ProtocolError::Unexpected {
                    expected: "Hello",
                    got: other.name(),
                });
            }
        };
        if hello.version != PROTOCOL_VERSION {
            return Err(ProtocolError::Version(hello.version));
        }
        tracing::debug!(name = %hello.name, uid = ?peer.uid, pid = ?peer.pid, "hello");
        // A connection the daemon made for a service it started is that
        // service's package, whatever proof the Hello names; it may claim
        // no other.
        if let Some(granted) = peer.granted {
            return match hello.pfn {
                Some(pfn) if pfn != *granted => Err(refused(
                    pfn,
                    Some(peer),
                    "a connection made for another package",
                )),
                _ => Ok(self.proven(granted.clone(), peer, AuthKind::None)),
            };
        }
        let pfn = match (hello.pfn, hello.auth) {
            (None, AuthKind::None) => {
                self.phase = Phase::Open;
                return Ok(Step::Welcome(Identity::unpackaged(peer.uid)));
            }
            (None, auth) => return Err(ProtocolError::AuthWithoutPackage(auth)),
            (Some(pfn), _) => pfn,
        };
        match hello.auth {
            AuthKind::Peer => match proof::by_peer(policy, &pfn, peer) {
                Ok(()) => Ok(self.proven(pfn, peer, AuthKind::Peer)),
                Err(reason) => Err(refused(pfn, Some(peer), reason)),
            },
            // Challenged whether or not the package exists or has a token:
            // refused at once, an unknown name would be told apart from a
            // wrong secret (the proof fails at `Auth`, as a wrong one does).
            AuthKind::Token => {
                self.phase = Phase::Challenging(pfn);
                Ok(Step::Challenge)
            }
            _ => Err(refused(
                pfn,
                Some(peer),
                "a package claim needs a proof: peer credentials or a token",
            )),
        }
    }

    fn auth(&mut self, op: Op, policy: &Policy, peer: &Peer<'_>) -> Result<Step, ProtocolError> {
        let Phase::Authenticating { pfn, nonce } =
            std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return Err(ProtocolError::Closed);
        };
        let mac = match op {
            Op::Auth { hmac } => hmac,
            other => {
                return Err(ProtocolError::Unexpected {
                    expected: "Auth",
                    got: other.name(),
                });
            }
        };
        match proof::by_token(policy, &pfn, &nonce, &mac) {
            Ok(()) => Ok(self.proven(pfn, peer, AuthKind::Token)),
            Err(reason) => Err(refused(pfn, Some(peer), reason)),
        }
    }

    fn proven(&mut self, pfn: Pfn, peer: &Peer<'_>, auth: AuthKind) -> Step {
        tracing::info!(target: "busd::audit", %pfn, uid = ?peer.uid, pid = ?peer.pid, ?auth, "package proven");
        self.phase = Phase::Open;
        Step::Welcome(Identity::package(pfn, peer.uid))
    }

    fn open(&mut self, op: Op, now: impl FnOnce() -> Instant) -> Result<Step, ProtocolError> {
        self.exchanging = matches!(op, Op::Req { .. } | Op::Resp { .. });
        Ok(match op {
            Op::Pub { subject, headers } => {
                publishable(&subject)?;
                Step::Publish { subject, headers }
            }
            Op::Sub {
                sid,
                subject,
                queue,
                overflow,
            } => Step::Subscribe {
                sid,
                subject,
                queue,
                overflow,
            },
            Op::Serve {
                sid,
                service,
                require_capability,
            } => Step::Serve {
                sid,
                service,
                require_capability,
            },
            Op::Unsub { sid } => Step::Unsubscribe { sid },
            Op::Req {
                rid,
                service,
                timeout_ms,
                headers,
            } => request(rid, service, timeout_ms, headers, now)?,
            Op::Resp {
                rid,
                status,
                headers,
            } => {
                if !matches!(status, Status::Success | Status::Failure) {
                    return Err(ProtocolError::ResponseStatus {
                        call_id: rid,
                        status,
                    });
                }
                Step::Respond {
                    call_id: rid,
                    status,
                    headers,
                }
            }
            Op::Ctl { rid, command } => Step::Ctl { rid, command },
            Op::Monitor {
                sid,
                subject,
                contents,
            } => Step::Monitor {
                sid,
                subject,
                contents,
            },
            Op::Ping => Step::Pong,
            Op::Pong => Step::Nothing,
            Op::Error { code, message, .. } => {
                tracing::debug!(%code, %message, "client reported an error");
                Step::Nothing
            }
            other => return Err(ProtocolError::NotAfterWelcome(other.name())),
        })
    }
}

/// A publish's subject must be literal.
fn publishable(subject: &Subject) -> Result<(), ProtocolError> {
    if subject.has_wildcards() {
        return Err(ProtocolError::WildcardPublish(subject.clone()));
    }
    Ok(())
}

/// A request's step: its service name literal, its timeout at least 1 ms
/// and at most [`MAX_REQUEST_TIMEOUT`].
fn request(
    rid: u64,
    service: Subject,
    timeout_ms: u32,
    headers: Option<Headers>,
    now: impl FnOnce() -> Instant,
) -> Result<Step, ProtocolError> {
    if service.has_wildcards() {
        return Err(ProtocolError::WildcardRequest { rid, service });
    }
    let timeout = Duration::from_millis(u64::from(timeout_ms.max(1))).min(MAX_REQUEST_TIMEOUT);
    let received = now();
    Ok(Step::Request {
        rid,
        service,
        received,
        deadline: received + timeout,
        headers,
    })
}
