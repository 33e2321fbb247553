//! Fuzzes subject parsing and wildcard matching against the rule. The
//! input's layout and what is checked are in `busd_fuzz::subject`, which
//! proptest drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::subject::check(data));
