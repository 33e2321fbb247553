//! The `busd` command: `busd run` (the daemon, from `busd-daemon`), the
//! client commands (on `busd-client`) and `busd bench` (`busd-bench`).
//!
//! It is a library as well as `main.rs` so that the end-to-end test
//! package builds the very same command as a binary of its own (cargo
//! builds a package's binaries before its integration tests, not another
//! package's); every subcommand lives in [`cmd`].

#![forbid(unsafe_code)]

pub mod cmd;

/// jemalloc, for the daemon above all: glibc's malloc keeps much of what a
/// flood freed (70 of 390 MiB of queued messages, 25 of 31 MiB of pending
/// requests stayed resident after one ended); jemalloc, as configured in
/// `.cargo/config.toml` and with the background thread `busd run` starts,
/// returns it within about a second.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
