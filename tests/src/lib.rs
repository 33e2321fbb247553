//! Test harness for busd: starts a real daemon on 127.0.0.1 port 0 and a
//! unix socket in a temp dir, cleaned up on drop; a raw protocol client for
//! tests that must send what the SDK never would; the `busd` binary
//! for tests that need a real process; helpers for access-control
//! scenarios (packages written from code, proven clients, bounded waits);
//! and a capture of the daemon's audit log. For tests spanning machines,
//! [`netlab`] makes hosts on one machine from network namespaces (as root),
//! and [`nats_cluster`] runs a real nats-server cluster on them.

#![forbid(unsafe_code)]

pub mod access;
mod audit_log;
pub mod bridge_rules;
mod daemon;
pub mod nats_cluster;
pub mod netlab;
mod process;
mod raw;

pub use access::Package;
pub use audit_log::AuditLog;
pub use daemon::{TestDaemon, Transport};
pub use process::{DaemonProcess, busd_bin, resident_memory};
pub use raw::RawClient;
