//! The fuzz targets' checks (`busd_fuzz::<target>::check`), driven by
//! proptest on stable: inputs built from real frames, headers, subjects,
//! files and scripts, then cut or mutated, so `cargo test` reaches what a
//! fuzzer would take a while to find. Each property runs proptest's
//! default 256 cases (about 1.5 s in all); `PROPTEST_CASES=20000` runs
//! more, and a fuzzer (`.ci/fuzz`) runs the same checks millions of times.

/// Strategies: operations, frames, names.
mod ops;

mod config;
mod frame_codec;
mod frame_reader;
mod op_header;
mod router;
mod shm_ring;
mod subject;
