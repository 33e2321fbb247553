//! The NATS bridge between hosts: busd daemons in network namespaces of
//! their own, bridged to a real three-node nats-server cluster.
//!
//! As root only, with nats-server installed: `#[ignore]`d, run by
//! `.ci/run`. The harness blocks (std::process, polling), so the tests run
//! on a multi-threaded runtime.

mod credentials;
mod crossing;
mod failover;
mod figures;
mod fleet;
mod outage;
