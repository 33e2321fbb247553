//! The busd SDK: connect to the local message bus, publish, subscribe, make
//! requests and serve them.
//!
//! A [`Client`] is a cheap handle to one connection (over loopback TCP, a
//! Unix socket, or shared-memory rings: `shm://`, where large payloads go as
//! sealed memfds; see [`ClientBuilder::segment_threshold`] and
//! [`Client::payload_buffer`]): calls append their frames to its outgoing buffer, a writer
//! task writes it, and a reader task routes what arrives to subscribers,
//! services and waiting requests. A [`Subscriber`] is a
//! [`Stream`](futures::Stream) of [`Message`]s and unsubscribes when dropped;
//! a [`Service`] is a stream of [`Request`]s to answer. When the daemon
//! restarts, the client reconnects with backoff and registers its
//! subscriptions and services again.
//!
//! [`Client::call`] and [`Client::serve_typed`] take and give any serde
//! type, as MessagePack maps ([`ValueSet`]s) for structs, so typed Rust
//! code talks to `busd req --json` and to clients in other languages.
//!
//! A client is unpackaged unless it claims a package family name with
//! [`ClientBuilder::pfn`]; the daemon then checks the claim by the socket's
//! peer credentials or, with [`ClientBuilder::token_file`], by an HMAC
//! challenge under the package's token. The access rules of the daemon's
//! config decide what a package may send and receive.
//!
//! ```no_run
//! use busd_client::Client;
//! use futures::StreamExt;
//!
//! # async fn demo() -> Result<(), busd_client::Error> {
//! let client = Client::connect("tcp://127.0.0.1:4223").await?;
//!
//! let mut forecasts = client.serve("contoso.weather.forecast").await?;
//! tokio::spawn(async move {
//!     while let Some(request) = forecasts.next().await {
//!         let _ = request.respond("sunny").await;
//!     }
//! });
//!
//! let response = client.request("contoso.weather.forecast", "paris").await?;
//! assert!(response.is_success());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod buffer;
mod builder;
mod client;
mod command;
mod connection;
mod ctl;
mod dial;
mod dispatch;
mod error;
mod handshake;
mod identity;
mod inbound;
mod inbox;
mod lock;
mod monitor;
mod request;
mod service;
mod session;
mod shared;
mod state;
mod subject;
mod subscriber;
mod target;
mod typed;
mod typed_service;

pub use buffer::PayloadBuffer;
pub use builder::{ClientBuilder, DEFAULT_SEGMENT_THRESHOLD, SEGMENTS_FROM};
pub use busd_proto::{
    CtlCommand, EventKind, ExplainQuery, Fds, GrantRequest, Headers, Limits, MonitorEvent,
    Overflow, Party, Pfn, PfnError, RELAYED_FOR, Sender, Status, Subject, SubjectError, Value,
    ValueSet, ValueSetError,
};
pub use client::Client;
pub use dial::PairDialer;
pub use error::{Error, ErrorKind};
pub use identity::IntoPfn;
pub use inbound::{Message, Response};
pub use inbound::{MonitorOptions, Observed};
pub use monitor::Monitor;
pub use request::RequestOptions;
pub use service::{Request, ServeOptions, Service};
pub use subject::IntoSubject;
pub use subscriber::{SubscribeOptions, Subscriber};
pub use typed_service::{TYPED_CONCURRENCY, TypedCallerHandler, TypedHandler, TypedService};
