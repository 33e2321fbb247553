//! busd's router, sans-IO.
//!
//! [`Router`] holds subscriptions (a token trie with a result
//! cache), queue groups, services and the table of requests in flight, and
//! asks the [`Policy`](busd_policy::Policy) on every delivery. It opens no
//! socket, spawns nothing and reads no clock: the daemon passes time in and
//! acts on what the router returns, so every routing rule is tested here
//! without I/O (as `quinn-proto` is kept apart from `quinn-udp`).
//!
//! [`Session`] is one connection's protocol as a state machine: what the
//! client may send next (nothing but `Hello`, then `Auth` if challenged,
//! before `Welcome`), the identity proofs, the checks on each operation
//! (literal subjects and service names, a responder's status) and each
//! request's deadline (its timeout clamped). It returns a [`Step`] for the
//! daemon to carry out with the router and the connection's [`Outbox`].
//!
//! `H` is the daemon's handle to a connection (its outbound queue); the
//! router only clones and returns it.
//!
//! Modules, from the bottom up: `error`, `audit`, `stats`, `trie`,
//! `queue`, `route`, `ledger`, `calls`, `matched`, `proof`,
//! `failed_proofs` (when a uid's claims are judged after failed proofs); then
//! `router` ([`Router`]: connections, subscriptions, publishes), which
//! `services` (requests) and `introspect` (`busd ctl` views) extend;
//! `session` stands beside them. None imports from one above it.

#![forbid(unsafe_code)]

mod audit;
mod calls;
mod error;
mod failed_proofs;
mod introspect;
mod ledger;
mod matched;
mod proof;
mod queue;
mod rehearse;
mod route;
mod router;
mod services;
mod session;
mod stats;
mod trie;

pub use calls::{Routed, Unanswered};
pub use error::{ProtocolError, RequestError, RouterError};
pub use failed_proofs::{
    FAILURES_FORGOTTEN_AFTER, FIRST_PROOF_DELAY, FailedProofs, MAX_PROOF_DELAY, proof_failure_delay,
};
pub use introspect::{ClientInfo, Registration};
pub use ledger::{Owner, RouterLimits};
pub use proof::{NONCE_LEN, Peer};
pub use queue::{Beside, OutFrame, Outbox, Outgoing, Pushed};
pub use rehearse::{Change, Rehearsal};
pub use route::{Route, RouteEpoch, Target};
pub use router::Router;
pub use session::{MAX_REQUEST_TIMEOUT, Session, Step};
pub use stats::{ServiceCounts, Stats};
