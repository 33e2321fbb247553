//! Fuzzes the frame codec on any bytes. The input's layout and what is
//! checked are in `busd_fuzz::frame_codec`, which proptest drives on stable
//! too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::frame_codec::check(data));
