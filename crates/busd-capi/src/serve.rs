//! Serving: `busd_serve` registers a responder whose callback gets each
//! request as a `busd_call` and answers it with `busd_call_respond` or
//! `busd_call_respond_failure`.
//!
//! The callback answers before it returns (answers are not deferred to
//! another thread: the call is borrowed). One it leaves unanswered is
//! answered `Failure` by the library, so the caller hears at once instead of
//! waiting for its timeout.

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

use ::busd_client::{Request, Service};
use bytes::Bytes;

use crate::client::busd_client;
use crate::error::{Failure, busd_result};
use crate::guard::{
    arg_bytes, arg_mut, arg_out, arg_ref, arg_str, free_handle, guard, guard_value, into_handle,
    null,
};
use crate::message::{CHeaders, CSender, c_string, header_of, payload_of};
use crate::runtime::{InRuntime, Runtime};
use crate::worker::{UserData, Worker};

/// A service's callback: `call` is borrowed (valid until the callback
/// returns; never free it) and should be answered with
/// `busd_call_respond` or `busd_call_respond_failure` before returning;
/// `user_data` is what was given to `busd_serve`. It runs on the service's
/// own library thread, one request at a time; it must not unwind (no C++
/// exception may leave it).
pub type busd_call_callback =
    Option<unsafe extern "C" fn(call: *mut busd_call, user_data: *mut c_void)>;

/// A registration as a responder of a service; ends when freed with
/// `busd_service_free`.
#[derive(Debug)]
pub struct busd_service {
    /// Held for its `Drop`, which stops the service's thread.
    _worker: Worker,
}

/// A request to a service this client serves, as its callback gets it.
#[derive(Debug)]
pub struct busd_call {
    service: CString,
    payload: Bytes,
    sender: CSender,
    headers: CHeaders,
    /// The SDK's request until it is answered.
    request: Option<Request>,
    runtime: Arc<Runtime>,
}

impl busd_call {
    fn new(request: Request, runtime: Arc<Runtime>) -> Self {
        Self {
            service: c_string(request.service.as_str()),
            payload: request.payload.clone(),
            sender: CSender::new(&request.from),
            headers: CHeaders::new(request.headers.clone()),
            request: Some(request),
            runtime,
        }
    }

    /// Answers with `failure` set or not; the request is used up.
    fn respond(&mut self, payload: &[u8], failure: bool) -> Result<(), Failure> {
        let request = self
            .request
            .take()
            .ok_or_else(|| Failure::new(busd_result::Misuse, "this call was answered already"))?;
        let answer = if failure {
            self.runtime.block_on(request.respond_failure(payload))
        } else {
            self.runtime.block_on(request.respond(payload))
        };
        answer.map_err(Failure::from)
    }

    /// What the library does when the callback returned without answering.
    fn answer_if_forgotten(&mut self) {
        if self.request.is_some() {
            let why = format!(
                "the handler of service {} returned without answering",
                self.service.to_string_lossy()
            );
            // The caller will see `Failure` with `why`; a lost connection
            // here leaves it `ResponderGone` anyway, so there is nothing to
            // report.
            let _ = self.respond(why.as_bytes(), true);
        }
    }
}

/// Registers as a responder of `service` (a literal name): each request is
/// handed to `callback` (with `user_data`) on a thread the library starts
/// for this service (named `busd-serve`), one request at a time. The daemon
/// balances requests round robin over every responder of a service; serve
/// it from several clients to answer requests in parallel.
///
/// Returns once the daemon has the registration. On success `*out` is the
/// new service, to free with `busd_service_free`; once that returns the
/// callback is not called again, so `user_data` may be released. Fails with
/// `BUSD_RESULT_INVALID_SUBJECT` for a malformed or wildcard name,
/// `BUSD_RESULT_NOT_AUTHORIZED` when the rules reserve the name for
/// another package.
///
/// Thread safety: may be called from any thread. `user_data` is used on the
/// service's thread: whatever it points to must be safe to use there.
///
/// # Safety
/// `client` is NULL or a live client; `service` is NULL or NUL-terminated;
/// `out` is NULL or writable; `callback` is NULL or a function of that type
/// that may be called with `user_data` from another thread until
/// `busd_service_free` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_serve(
    client: *const busd_client,
    service: *const c_char,
    callback: busd_call_callback,
    user_data: *mut c_void,
    out: *mut *mut busd_service,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller promises NULL or a live client.
        let client = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let service = unsafe { arg_str(service, "service") }?;
        let callback = callback.ok_or_else(|| null("callback"))?;
        let runtime = client.runtime();
        let registration: Service = runtime.block_on(client.sdk().serve(service))?;
        let registration = InRuntime::new(registration, Arc::clone(runtime));
        let user_data = UserData::new(user_data);
        let worker = Worker::spawn(
            "busd-serve".to_owned(),
            registration,
            move |request, runtime| {
                let mut call = busd_call::new(request, Arc::clone(runtime));
                // SAFETY: the caller of busd_serve promised that `callback` may
                // be called with `user_data` on this thread until the service is
                // freed, which stops this thread first; `call` lives until the
                // call returns and nothing else uses it meanwhile.
                unsafe { callback(&mut call, user_data.get()) };
                call.answer_if_forgotten();
            },
        )
        .map_err(|e| {
            Failure::new(
                busd_result::Unknown,
                format!("cannot start the service's thread: {e}"),
            )
        })?;
        *out = into_handle(busd_service { _worker: worker });
        Ok(())
    })
}

/// The service called (borrowed from `call`); NULL if `call` is NULL.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_service(call: *const busd_call) -> *const c_char {
    // SAFETY: the caller promises NULL or a live call.
    let call = unsafe { call.as_ref() };
    call.map_or(std::ptr::null(), |c| c.service.as_ptr())
}

/// The request's payload: its bytes (borrowed from `call`; not
/// NUL-terminated; not NULL for a valid call), and their number written to
/// `*len` if `len` is not NULL. NULL and 0 if `call` is NULL.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback;
/// `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_payload(call: *const busd_call, len: *mut usize) -> *const u8 {
    // SAFETY: the caller promises NULL or a live call.
    let call = unsafe { call.as_ref() };
    // SAFETY: the caller promises NULL or a writable `len`.
    unsafe { payload_of(call.map(|c| &c.payload), len) }
}

/// The daemon's id for the caller's connection; 0 if `call` is NULL.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_sender_id(call: *const busd_call) -> u64 {
    // SAFETY: the caller promises NULL or a live call.
    let call = unsafe { call.as_ref() };
    call.map_or(0, |c| c.sender.client_id)
}

/// The caller's package family name as the daemon proved it; NULL for an
/// unpackaged caller. Borrowed from `call`.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_sender_pfn(call: *const busd_call) -> *const c_char {
    // SAFETY: the caller promises NULL or a live call.
    let call = unsafe { call.as_ref() };
    call.map_or(std::ptr::null(), |c| c.sender.pfn_ptr())
}

/// The value of the request's header `name`, or NULL. Borrowed from `call`.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback;
/// `name` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_header(
    call: *const busd_call,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: the caller promises NULL or a live call.
    let call = unsafe { call.as_ref() };
    // SAFETY: the caller promises NULL or a NUL-terminated `name`.
    unsafe { header_of(call.map(|c| &c.headers), name) }
}

/// Answers the call with `BUSD_STATUS_SUCCESS` and `len` bytes at `payload`
/// (NULL allowed when `len` is 0). A call is answered once: a second answer
/// fails with `BUSD_RESULT_MISUSE`.
///
/// Fails with `BUSD_RESULT_FRAME_TOO_LARGE` over the daemon's `max_frame`
/// (the caller then gets `BUSD_STATUS_FAILURE` saying so),
/// `BUSD_RESULT_DISCONNECTED` if the request came on a connection since
/// lost (the caller got `BUSD_RESULT_RESPONDER_GONE`).
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// `call` is NULL or the call a callback was given, during the callback;
/// `payload` is NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_respond(
    call: *mut busd_call,
    payload: *const u8,
    len: usize,
) -> busd_result {
    // SAFETY: the caller's promises, passed on.
    unsafe { respond(call, payload, len, false) }
}

/// Answers the call with `BUSD_STATUS_FAILURE`: the service could not do
/// what was asked, and the `len` bytes at `payload` say why. Otherwise as
/// `busd_call_respond`.
///
/// Thread safety: the service's thread (inside its callback).
///
/// # Safety
/// As `busd_call_respond`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_call_respond_failure(
    call: *mut busd_call,
    payload: *const u8,
    len: usize,
) -> busd_result {
    // SAFETY: the caller's promises, passed on.
    unsafe { respond(call, payload, len, true) }
}

/// The body of both answers.
///
/// # Safety
/// As `busd_call_respond`.
unsafe fn respond(
    call: *mut busd_call,
    payload: *const u8,
    len: usize,
    failure: bool,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or the live call only this
        // callback uses.
        let call = unsafe { arg_mut(call, "call") }?;
        // SAFETY: the caller promises NULL or `len` readable bytes.
        let payload = unsafe { arg_bytes(payload, len, "payload") }?;
        call.respond(payload, failure)
    })
}

/// Ends the registration and frees the service; NULL is ignored. It first
/// waits for a callback in progress to return, so after it returns the
/// callback is never called again; called from that callback itself, it
/// returns at once and the service's thread ends when the callback returns.
/// Requests received but not yet handed to the callback fail at their
/// callers with `BUSD_RESULT_RESPONDER_GONE` or `BUSD_RESULT_TIMEOUT`.
///
/// Thread safety: any thread, the service's own callback included; no other
/// call may use `service` meanwhile or after.
///
/// # Safety
/// `service` is NULL or came from `busd_serve` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_service_free(service: *mut busd_service) {
    guard_value((), || {
        // SAFETY: the caller promises NULL or a service of ours, freed once.
        unsafe { free_handle(service) }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn never(_: *mut busd_call, _: *mut c_void) {}

    #[test]
    fn serving_checks_its_arguments_first() {
        let mut out = std::ptr::NonNull::<busd_service>::dangling().as_ptr();
        // SAFETY: NULL client, a literal name, a local out slot.
        let code = unsafe {
            busd_serve(
                std::ptr::null(),
                c"a.b".as_ptr(),
                Some(never),
                std::ptr::null_mut(),
                &mut out,
            )
        };
        assert_eq!(code, busd_result::NullArgument);
        assert!(out.is_null(), "a failure leaves NULL in *out");
    }

    #[test]
    fn answering_a_null_call_is_refused() {
        // SAFETY: NULL call, which is refused before use.
        let code = unsafe { busd_call_respond(std::ptr::null_mut(), std::ptr::null(), 0) };
        assert_eq!(code, busd_result::NullArgument);
    }
}
