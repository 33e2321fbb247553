//! End-to-end tests, one binary: each module drives a real daemon (in
//! process or the `busd` binary) over real sockets. One binary links once
//! and takes one test binary's disk, where fifteen took fifteen.
//! (`tests/shm_crash.rs` stays a binary of its own: it counts its
//! process's open fds, which tests running beside it would change.)

mod abuse;
mod access_matrix;
mod access_proofs;
mod access_reload;
mod access_routing;
mod access_spoofing;
mod activation;
mod attached_fds;
mod backpressure;
mod bench_smoke;
mod bridge_local;
mod budget;
mod cli;
mod cli_config;
mod cli_exec;
mod cli_monitor;
mod cli_signals;
mod cli_socket;
mod deliveries;
mod exe_proof;
mod grants;
mod hostile_frames;
mod memory_return;
mod metrics;
mod monitor;
mod overflow;
mod panic;
mod pools_common;
mod process;
mod proof_guessing;
mod protocol;
mod pubsub;
mod reconnect;
mod reqrep;
mod service_manager;
mod service_owner;
mod shm_pools;
mod shm_rings;
mod shm_segments;
mod shm_set_pools;
mod shutdown;
mod traffic;
mod typed;
