//! Fuzzes the shm ring with a hostile peer, and memfds that lie. The
//! input's layout and what is checked are in `busd_fuzz::shm_ring`, which
//! proptest drives on stable too.

#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| busd_fuzz::shm_ring::check(data));
