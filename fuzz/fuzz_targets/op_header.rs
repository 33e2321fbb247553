//! Fuzzes the message header decoders and encoders against rmp-serde. The
//! input's layout and what is checked are in `busd_fuzz::op_header`, which
//! proptest drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::op_header::check(data));
