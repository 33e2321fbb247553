//! `busd_request`: calling a service and waiting for its answer.

use std::ffi::c_char;
use std::time::Duration;

use ::busd_client::RequestOptions;

use crate::client::busd_client;
use crate::error::busd_result;
use crate::guard::{arg_bytes, arg_out, arg_ref, arg_str, guard, into_handle};
use crate::response::busd_response;

/// Calls `service` (a literal name, e.g. `"contoso.weather.forecast"`)
/// with `len` bytes at `payload` (NULL allowed when `len` is 0), and waits
/// for the answer: at most `timeout_ms` milliseconds, or the client's
/// default of 5 s when `timeout_ms` is 0.
///
/// On success `*out` is the service's answer, owned by the caller (free it
/// with `busd_response_free`); its status says whether the service
/// succeeded (`BUSD_STATUS_SUCCESS`) or failed (`BUSD_STATUS_FAILURE`, the
/// payload saying why). The daemon's verdicts are failures of this call:
/// `BUSD_RESULT_NO_RESPONDERS` at once when nobody (allowed) serves it,
/// `BUSD_RESULT_TIMEOUT`, `BUSD_RESULT_NOT_AUTHORIZED`,
/// `BUSD_RESULT_RESPONDER_GONE`; `BUSD_RESULT_INVALID_SUBJECT` for a
/// malformed name; `BUSD_RESULT_DISCONNECTED` if the connection was lost
/// before the answer.
///
/// Thread safety: may be called from any thread, concurrently with other
/// calls on the same client, a callback's thread included.
///
/// # Safety
/// `client` is NULL or a live client; `service` is NULL or NUL-terminated;
/// `payload` is NULL or `len` readable bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_request(
    client: *const busd_client,
    service: *const c_char,
    payload: *const u8,
    len: usize,
    timeout_ms: u32,
    out: *mut *mut busd_response,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller promises NULL or a live client.
        let client = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let service = unsafe { arg_str(service, "service") }?;
        // SAFETY: the caller promises NULL or `len` readable bytes.
        let payload = unsafe { arg_bytes(payload, len, "payload") }?;
        let options = RequestOptions {
            timeout: (timeout_ms > 0).then_some(Duration::from_millis(timeout_ms.into())),
            headers: None,
        };
        let call = client.sdk().request_with(service, payload, options);
        let response = client.runtime().block_on(call)?;
        *out = into_handle(busd_response::new(response));
        Ok(())
    })
}
