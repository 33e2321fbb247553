//! Fuzzes the router through scripts of calls, against a model. The input's
//! layout and what is checked are in `busd_fuzz::router`, which proptest
//! drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::router::check(data));
