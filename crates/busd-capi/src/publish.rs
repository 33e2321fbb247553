//! Publishing, with or without headers.

use std::ffi::c_char;

use ::busd_client::Headers;

use crate::client::busd_client;
use crate::error::{Failure, busd_result};
use crate::guard::{arg_bytes, arg_ref, arg_str, guard};

/// One header to send: a name and a value, both NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct busd_header {
    /// The header's name, e.g. `"unit"`.
    pub name: *const c_char,
    /// Its value, e.g. `"celsius"`.
    pub value: *const c_char,
}

/// Publishes `len` bytes at `payload` (NULL allowed when `len` is 0) to the
/// literal `subject` (dot-separated tokens, no wildcards).
///
/// Returns once the message is queued for the connection, not when it is
/// delivered; `busd_flush` waits until the daemon has it. Fails with
/// `BUSD_RESULT_INVALID_SUBJECT` for a malformed or wildcard subject,
/// `BUSD_RESULT_FRAME_TOO_LARGE` over the daemon's `max_frame` (nothing is
/// sent), `BUSD_RESULT_CLOSED` if the client is gone for good. A delivery
/// the access rules deny is not an error.
///
/// Thread safety: may be called from any thread, concurrently with other
/// calls on the same client; one thread's messages arrive in its order.
///
/// # Safety
/// `client` is NULL or a live client; `subject` is NULL or NUL-terminated;
/// `payload` is NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_publish(
    client: *const busd_client,
    subject: *const c_char,
    payload: *const u8,
    len: usize,
) -> busd_result {
    // SAFETY: the caller's promises, passed on (no headers).
    unsafe { busd_publish_with_headers(client, subject, std::ptr::null(), 0, payload, len) }
}

/// As `busd_publish`, with `header_count` headers at `headers` (NULL
/// allowed when the count is 0). A name given twice keeps its last value.
///
/// Thread safety: as `busd_publish`.
///
/// # Safety
/// As `busd_publish`; `headers` is NULL or points to `header_count`
/// headers whose strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_publish_with_headers(
    client: *const busd_client,
    subject: *const c_char,
    headers: *const busd_header,
    header_count: usize,
    payload: *const u8,
    len: usize,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live client.
        let client = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let subject = unsafe { arg_str(subject, "subject") }?;
        // SAFETY: the caller promises NULL or `len` readable bytes.
        let payload = unsafe { arg_bytes(payload, len, "payload") }?;
        // SAFETY: the caller promises NULL or `header_count` headers.
        let headers = unsafe { read_headers(headers, header_count) }?;
        let sdk = client.sdk();
        let sent = match headers {
            None => client.runtime().block_on(sdk.publish(subject, payload)),
            Some(headers) => client
                .runtime()
                .block_on(sdk.publish_with_headers(subject, headers, payload)),
        };
        sent?;
        Ok(())
    })
}

/// The `count` headers at `headers` as the SDK's map; `None` for none.
///
/// # Safety
/// `headers` is NULL or points to `count` headers whose strings are NULL or
/// NUL-terminated.
unsafe fn read_headers(
    headers: *const busd_header,
    count: usize,
) -> Result<Option<Headers>, Failure> {
    if count == 0 {
        return Ok(None);
    }
    if headers.is_null() {
        return Err(Failure::new(
            busd_result::NullArgument,
            format!("headers is NULL but header_count is {count}"),
        ));
    }
    // SAFETY: not NULL (checked above); the caller promises `count`
    // readable headers, so the range fits in an allocation (and isize).
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    let mut map = Headers::new();
    for (i, header) in headers.iter().enumerate() {
        // SAFETY: the caller promises NULL or NUL-terminated strings.
        let name = unsafe { arg_str(header.name, &format!("headers[{i}].name")) }?;
        // SAFETY: as for the name.
        let value = unsafe { arg_str(header.value, &format!("headers[{i}].value")) }?;
        map.insert(name.to_owned(), value.to_owned());
    }
    Ok(Some(map))
}
