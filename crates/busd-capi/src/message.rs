//! `busd_message`: a message a subscription received, with accessors for
//! its subject, payload, sender and headers.
//!
//! The C strings are made once, when the message is wrapped, so an accessor
//! hands out a pointer into the message and never allocates: what it returns
//! lives exactly as long as the message.

use std::ffi::{CString, c_char};
use std::ptr;

use ::busd_client::{Headers, Message, Sender};
use bytes::Bytes;

use crate::error::{Failure, busd_result};
use crate::guard::{arg_mut, arg_ref, arg_str, free_handle, guard, guard_value};

/// A received message. Owned by the caller when it came from
/// `busd_subscription_next` (free it with `busd_message_free`); borrowed,
/// for the duration of the call, when a subscription callback got it.
#[derive(Debug)]
pub struct busd_message {
    subject: CString,
    payload: Bytes,
    sender: CSender,
    headers: CHeaders,
}

impl busd_message {
    pub(crate) fn new(message: Message) -> Self {
        // The fds a publisher may attach are not offered in C: this client
        // never asks for them, so the daemon withholds them.
        Self {
            subject: c_string(message.subject.as_str()),
            payload: message.payload,
            sender: CSender::new(&message.from),
            headers: CHeaders::new(message.headers),
        }
    }
}

/// `text` as a C string, cut at its first NUL (C could not see past it).
pub(crate) fn c_string(text: &str) -> CString {
    let end = text.find('\0').unwrap_or(text.len());
    CString::new(&text[..end]).expect("no NUL before `end`")
}

/// Who sent a message or call, as the daemon proved it.
#[derive(Debug)]
pub(crate) struct CSender {
    pub(crate) client_id: u64,
    /// `None` for an unpackaged sender.
    pub(crate) pfn: Option<CString>,
}

impl CSender {
    pub(crate) fn new(from: &Sender) -> Self {
        Self {
            client_id: from.client_id,
            pfn: from.pfn.as_ref().map(|pfn| c_string(&pfn.to_string())),
        }
    }

    pub(crate) fn pfn_ptr(&self) -> *const c_char {
        self.pfn.as_ref().map_or(ptr::null(), |pfn| pfn.as_ptr())
    }
}

/// Headers as C strings, in name order.
#[derive(Debug, Default)]
pub(crate) struct CHeaders(Vec<(CString, CString)>);

impl CHeaders {
    pub(crate) fn new(headers: Option<Headers>) -> Self {
        Self(
            headers
                .into_iter()
                .flatten()
                .map(|(name, value)| (c_string(&name), c_string(&value)))
                .collect(),
        )
    }

    /// The value of the header `name`, or NULL.
    pub(crate) fn get(&self, name: &str) -> *const c_char {
        self.0
            .iter()
            .find(|(n, _)| n.as_bytes() == name.as_bytes())
            .map_or(ptr::null(), |(_, value)| value.as_ptr())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn at(&self, index: usize) -> Option<(*const c_char, *const c_char)> {
        self.0
            .get(index)
            .map(|(name, value)| (name.as_ptr(), value.as_ptr()))
    }
}

/// Looks up header `name` of `headers`, the shared body of the `*_header`
/// accessors: NULL when either pointer is NULL or there is no such header.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub(crate) unsafe fn header_of(headers: Option<&CHeaders>, name: *const c_char) -> *const c_char {
    guard_value(ptr::null(), || {
        // SAFETY: the caller's promise, passed on.
        match (headers, unsafe { arg_str(name, "name") }) {
            (Some(headers), Ok(name)) => headers.get(name),
            _ => ptr::null(),
        }
    })
}

/// The payload's address, and its length written to `len`; the shared body
/// of the `*_payload` accessors.
///
/// # Safety
/// `len` is NULL or writable.
pub(crate) unsafe fn payload_of(payload: Option<&Bytes>, len: *mut usize) -> *const u8 {
    let (ptr, n) = payload.map_or((ptr::null(), 0), |p| (p.as_ptr(), p.len()));
    // SAFETY: the caller promises NULL or a writable `size_t`.
    if let Some(len) = unsafe { len.as_mut() } {
        *len = n;
    }
    ptr
}

/// The literal subject the message was published to. Borrowed from `msg`;
/// NULL if `msg` is NULL.
///
/// Thread safety: may be called from any thread (the message is not changed).
///
/// # Safety
/// `msg` is NULL or a live message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_subject(msg: *const busd_message) -> *const c_char {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    msg.map_or(ptr::null(), |m| m.subject.as_ptr())
}

/// The payload: its bytes (borrowed from `msg`; not NUL-terminated; not
/// NULL for a valid message, even when empty), and their number written to
/// `*len` if `len` is not NULL. NULL and a length of 0 if `msg` is NULL.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_payload(
    msg: *const busd_message,
    len: *mut usize,
) -> *const u8 {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    // SAFETY: the caller promises NULL or a writable `len`.
    unsafe { payload_of(msg.map(|m| &m.payload), len) }
}

/// The daemon's id for the publisher's connection; 0 if `msg` is NULL.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_sender_id(msg: *const busd_message) -> u64 {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    msg.map_or(0, |m| m.sender.client_id)
}

/// The publisher's package family name as the daemon proved it (e.g.
/// `"Contoso.Weather_8wekyb3d8bbwe"`); NULL for an unpackaged publisher.
/// Borrowed from `msg`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_sender_pfn(msg: *const busd_message) -> *const c_char {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    msg.map_or(ptr::null(), |m| m.sender.pfn_ptr())
}

/// The value of header `name`, or NULL if the message has none of that
/// name. Borrowed from `msg`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message; `name` is NULL or a NUL-terminated
/// string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_header(
    msg: *const busd_message,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    // SAFETY: the caller promises NULL or a NUL-terminated `name`.
    unsafe { header_of(msg.map(|m| &m.headers), name) }
}

/// How many headers the message has (0 if `msg` is NULL).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_header_count(msg: *const busd_message) -> usize {
    // SAFETY: the caller promises NULL or a live message.
    let msg = unsafe { msg.as_ref() };
    msg.map_or(0, |m| m.headers.len())
}

/// Header number `index` (from 0, in name order): its name and value,
/// borrowed from `msg`, written to `*name` and `*value`.
///
/// Returns `BUSD_RESULT_INVALID_ARGUMENT` when `index` is not below
/// `busd_message_header_count(msg)`, `BUSD_RESULT_NULL_ARGUMENT` for a NULL
/// pointer.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `msg` is NULL or a live message; `name` and `value` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_header_at(
    msg: *const busd_message,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const c_char,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live message.
        let msg = unsafe { arg_ref(msg, "msg") }?;
        // SAFETY: the caller promises NULL or a writable pointer slot.
        let name = unsafe { arg_mut(name, "name") }?;
        // SAFETY: as for `name`.
        let value = unsafe { arg_mut(value, "value") }?;
        let (n, v) = msg.headers.at(index).ok_or_else(|| {
            Failure::new(
                busd_result::InvalidArgument,
                format!("no header {index}: the message has {}", msg.headers.len()),
            )
        })?;
        (*name, *value) = (n, v);
        Ok(())
    })
}

/// Frees a message from `busd_subscription_next`; NULL is ignored. Never
/// free the message a callback is given.
///
/// Thread safety: any thread, but no other call may use `msg` meanwhile or
/// after.
///
/// # Safety
/// `msg` is NULL or came from `busd_subscription_next` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_message_free(msg: *mut busd_message) {
    guard_value((), || {
        // SAFETY: the caller promises NULL or a message of ours, freed once.
        unsafe { free_handle(msg) }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_inside_text_ends_it() {
        assert_eq!(c_string("unit\0celsius").as_bytes(), b"unit");
        assert_eq!(c_string("plain").as_bytes(), b"plain");
    }

    #[test]
    fn headers_are_found_by_name_and_by_index() {
        let mut map = Headers::new();
        map.insert("unit".into(), "celsius".into());
        map.insert("city".into(), "paris".into());
        let headers = CHeaders::new(Some(map));
        // SAFETY: pointers into `headers`, which is alive.
        let text = |p: *const c_char| unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap();
        // SAFETY: a literal.
        let unit = unsafe { header_of(Some(&headers), c"unit".as_ptr()) };
        assert_eq!(text(unit), "celsius");
        // SAFETY: a literal.
        let none = unsafe { header_of(Some(&headers), c"wind".as_ptr()) };
        assert!(none.is_null());
        let (name, value) = headers.at(0).unwrap();
        assert_eq!((text(name), text(value)), ("city", "paris"));
        assert!(headers.at(2).is_none());
    }

    #[test]
    fn accessors_of_null_are_null() {
        let mut len = 7;
        // SAFETY: a NULL message, which every accessor accepts.
        assert!(unsafe { busd_message_subject(ptr::null()) }.is_null());
        // SAFETY: as above; `len` is a local.
        assert!(unsafe { busd_message_payload(ptr::null(), &mut len) }.is_null());
        // SAFETY: as above.
        assert!(unsafe { busd_message_sender_pfn(ptr::null()) }.is_null());
        assert_eq!(len, 0);
    }
}
