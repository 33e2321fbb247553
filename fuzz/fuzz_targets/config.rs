//! Fuzzes the config loader on any text. The input's layout and what is
//! checked are in `busd_fuzz::config`, which proptest drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::config::check(data));
