//! busd's router, sans-IO.
//!
//! [`Router`] holds subscriptions (a token [trie](trie) with a result
//! cache), queue groups, services and the table of requests in flight, and
//! asks the [`Policy`](busd_policy::Policy) on every delivery. It opens no
//! socket, spawns nothing and reads no clock: the daemon passes time in and
//! acts on what the router returns, so every routing rule is tested here
//! without I/O (as `quinn-proto` is kept apart from `quinn-udp`).
//!
//! `H` is the daemon's handle to a connection (its outbound queue); the
//! router only clones and returns it.

mod queue;
mod requests;
mod route;
mod router;
mod stats;
mod trie;

pub use queue::{OutFrame, Outbox, Outgoing, Pushed};
pub use requests::{Routed, Unanswered};
pub use route::{Route, RouteEpoch};
pub use router::{ClientInfo, Registration, Router, RouterLimits, SubscribeError, Target};
pub use stats::Stats;
