//! Fuzzes the frame reader over reads of any size, some cancelled. The
//! input's layout and what is checked are in `busd_fuzz::frame_reader`,
//! which proptest drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::frame_reader::check(data));
