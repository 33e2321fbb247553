//! The C API of busd: the Rust SDK ([`busd_client`]) behind `extern "C"`
//! functions, built as `libbusd_capi.so` and `libbusd_capi.a`, with the
//! header `include/busd.h` that cbindgen writes from this source (its
//! conventions, on ownership and threads, are at the top of that file).
//!
//! Each client handle owns a tokio runtime; blocking C calls `block_on` it
//! from the caller's thread, and callbacks run on threads of the library's
//! own, never on the runtime's, so a callback may call back into the
//! library. No panic crosses the boundary: every exported function runs its
//! body under `guard::guard` and a panic becomes `BUSD_RESULT_PANIC`.
//!
//! Module by module: `error` (result codes, the thread's last error),
//! `client` (connecting), `publish`, `subscribe`, `message` (what a
//! subscription receives), `request` and `response`, `serve`; `guard`
//! checks arguments and catches panics, `runtime` and `worker` hold the
//! runtime and the callback threads.

// The exported names are the C names (`busd_client`, `busd_result`), so
// that the header needs no renaming table and a grep finds both sides.
#![allow(non_camel_case_types)]

pub mod client;
pub mod error;
mod guard;
pub mod message;
pub mod publish;
pub mod request;
pub mod response;
mod runtime;
pub mod serve;
pub mod subscribe;
mod worker;

use std::ffi::c_char;

/// The library's version, e.g. `"0.1.0"`: a static string, never freed.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn busd_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
