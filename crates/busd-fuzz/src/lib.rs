//! What busd's fuzz targets check, each a function of the target's input
//! bytes: `fuzz/fuzz_targets/<target>.rs` hands libFuzzer's input to
//! `busd_fuzz::<target>::check` (nightly, `cargo fuzz`), and this crate's
//! property tests drive the same functions with proptest on stable, so
//! `cargo test` checks every invariant a fuzzer does.
//!
//! Every check calls busd's own functions (the codec, the frame reader,
//! `Subject::parse`, the router, the config loader, the shm ring) and
//! holds them to a statement written out here: a model, a second decoder
//! (rmp-serde) or a rule. A check panics on any broken invariant, which a
//! fuzzer reports as a crash.
//!
//! The seed corpora, `fuzz/corpus/<target>/`, are written by
//! `cargo run -p busd-fuzz --example seeds`; `tests/seeds.rs` runs each
//! seed through its check.

#![forbid(unsafe_code)]

pub mod config;
pub mod frame_codec;
pub mod frame_reader;
pub mod op_header;
pub mod router;
mod script;
pub mod shm_ring;
mod stream;
pub mod subject;

pub use stream::{End, FakeSegments, assert_round_trip, decode_stream, encode, max_frame};

/// A check: panics on an input that breaks an invariant.
pub type Check = fn(&[u8]);

/// Every fuzz target by name (`fuzz/fuzz_targets/<name>.rs`), with its check.
pub const TARGETS: [(&str, Check); 7] = [
    ("config", config::check),
    ("frame_codec", frame_codec::check),
    ("frame_reader", frame_reader::check),
    ("op_header", op_header::check),
    ("router", router::check),
    ("shm_ring", shm_ring::check),
    ("subject", subject::check),
];
