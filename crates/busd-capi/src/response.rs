//! `busd_response`: a service's answer to `busd_request`, and its status.

use std::ffi::c_char;

use ::busd_client::{Response, Status};
use bytes::Bytes;

use crate::guard::{free_handle, guard_value};
use crate::message::{CHeaders, header_of, payload_of};

/// How a service answered. The daemon's own verdicts (no responders,
/// timeout, …) are not statuses but `busd_request` failures.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum busd_status {
    /// The service did what was asked; the payload is its result.
    Success = 0,
    /// The service could not do what was asked; the payload says why.
    Failure = 1,
}

/// A service's answer, owned by the caller of `busd_request`: free it with
/// `busd_response_free`.
#[derive(Debug)]
pub struct busd_response {
    status: busd_status,
    payload: Bytes,
    headers: CHeaders,
}

impl busd_response {
    pub(crate) fn new(response: Response) -> Self {
        let status = match response.status {
            Status::Success => busd_status::Success,
            // The SDK turns every other status into an error, so only
            // `Failure` is left; were a new one added, it is no success.
            _ => busd_status::Failure,
        };
        Self {
            status,
            payload: response.payload,
            headers: CHeaders::new(response.headers),
        }
    }
}

/// Whether the service answered `BUSD_STATUS_SUCCESS` or
/// `BUSD_STATUS_FAILURE` (also for a NULL `response`).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `response` is NULL or a live response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_response_status(response: *const busd_response) -> busd_status {
    // SAFETY: the caller promises NULL or a live response.
    let response = unsafe { response.as_ref() };
    response.map_or(busd_status::Failure, |r| r.status)
}

/// The answer's payload: its bytes (borrowed from `response`; not
/// NUL-terminated; not NULL for a valid response, even when empty), and
/// their number written to `*len` if `len` is not NULL. NULL and 0 if
/// `response` is NULL.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `response` is NULL or a live response; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_response_payload(
    response: *const busd_response,
    len: *mut usize,
) -> *const u8 {
    // SAFETY: the caller promises NULL or a live response.
    let response = unsafe { response.as_ref() };
    // SAFETY: the caller promises NULL or a writable `len`.
    unsafe { payload_of(response.map(|r| &r.payload), len) }
}

/// The value of the answer's header `name`, or NULL if it has none of that
/// name. Borrowed from `response`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `response` is NULL or a live response; `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_response_header(
    response: *const busd_response,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: the caller promises NULL or a live response.
    let response = unsafe { response.as_ref() };
    // SAFETY: the caller promises NULL or a NUL-terminated `name`.
    unsafe { header_of(response.map(|r| &r.headers), name) }
}

/// Frees a response from `busd_request`; NULL is ignored.
///
/// Thread safety: any thread, but no other call may use `response`
/// meanwhile or after.
///
/// # Safety
/// `response` is NULL or came from `busd_request` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_response_free(response: *mut busd_response) {
    guard_value((), || {
        // SAFETY: the caller promises NULL or a response of ours, freed once.
        unsafe { free_handle(response) }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_response_is_no_success() {
        // SAFETY: NULL, which the accessor accepts.
        let status = unsafe { busd_response_status(std::ptr::null()) };
        assert_eq!(status, busd_status::Failure);
    }
}
