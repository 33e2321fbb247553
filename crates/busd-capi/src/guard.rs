//! The boundary itself: no panic crosses it (rustls-ffi's `panic.rs`), and
//! no pointer from C is used before it is checked.
//!
//! Every exported function that can fail runs its body in [`guard`]; an
//! accessor that cannot fail runs in [`guard_value`]. Arguments go through
//! the `arg_*` helpers, which turn NULL, non-UTF-8 text and the like into a
//! [`Failure`] that names the argument.

use std::any::Any;
use std::ffi::{CStr, c_char};
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Failure, busd_result, set_last_error};

/// Runs `body`; its error, or a panic, becomes a code and the thread's last
/// error.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> busd_result {
    // AssertUnwindSafe: after a panic the call is abandoned and reported as
    // `Panic`, which tells the caller the handles involved may be unusable;
    // nothing here observes their state afterwards.
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => busd_result::Ok,
        Ok(Err(failure)) => failure.record(),
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            busd_result::Panic
        }
    }
}

/// Runs an accessor's `body`; a panic yields `fallback` (NULL, 0) and sets
/// the thread's last error.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: as in `guard`, a panicked call leaves nothing behind
    // that is read again here.
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(&panic_message(payload.as_ref()));
        fallback
    })
}

/// What a panic said, for `busd_last_error`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("the busd library panicked (a bug): {what}")
}

/// The failure for a NULL `name`.
pub(crate) fn null(name: &str) -> Failure {
    Failure::new(busd_result::NullArgument, format!("{name} is NULL"))
}

/// `ptr` as a shared reference, or a failure naming `name` if NULL.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nobody mutates for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises NULL or a live, unaliased-by-writers `T`;
    // `as_ref` handles NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(name))
}

/// `ptr` as an exclusive reference, or a failure naming `name` if NULL.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nothing else uses for `'a`.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller promises NULL or a live `T` used by this call
    // alone; `as_mut` handles NULL.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// The NUL-terminated UTF-8 text at `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged
/// for `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: not NULL (checked above), and the caller promises a
    // NUL-terminated string that lives and stays unchanged for 'a.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|e| {
        Failure::new(
            busd_result::InvalidArgument,
            format!("{name} is not UTF-8: {e}"),
        )
    })
}

/// As [`arg_str`], where NULL means "none".
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { arg_str(ptr, name) }.map(Some)
}

/// The `len` bytes at `ptr`; NULL is allowed for `len == 0`.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that stay unchanged for
/// `'a`.
pub(crate) unsafe fn arg_bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::new(
            busd_result::NullArgument,
            format!("{name} is NULL but its length is {len}"),
        ));
    }
    if isize::try_from(len).is_err() {
        return Err(Failure::new(
            busd_result::InvalidArgument,
            format!("{name} is longer than any buffer can be ({len} bytes)"),
        ));
    }
    // SAFETY: not NULL and at most isize::MAX long (checked above), and the
    // caller promises `len` readable bytes, unchanged for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The out-pointer `out`, its target set to NULL so that a failure leaves
/// NULL there.
///
/// # Safety
/// `out` is NULL or points to a writable `*mut T`.
pub(crate) unsafe fn arg_out<'a, T>(
    out: *mut *mut T,
    name: &str,
) -> Result<&'a mut *mut T, Failure> {
    // SAFETY: the caller promises NULL or a writable pointer slot, used by
    // this call alone.
    let slot = unsafe { out.as_mut() }.ok_or_else(|| null(name))?;
    *slot = std::ptr::null_mut();
    Ok(slot)
}

/// Moves `value` to the heap for C: freed by [`free_handle`].
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Drops a handle from [`into_handle`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from `into_handle::<T>` and was not freed; nothing
/// uses it during or after this call.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: not NULL, and the caller promises it came from
        // `Box::into_raw` in `into_handle` and is freed only here, once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_code_and_a_message() {
        let code = guard(|| panic!("the sky fell"));
        assert_eq!(code, busd_result::Panic);
        let last = crate::error::busd_last_error();
        // SAFETY: the library's own thread-local string, just set.
        let last = unsafe { CStr::from_ptr(last) }.to_str().unwrap();
        assert!(last.contains("the sky fell"), "{last}");
        assert_eq!(guard_value(7, || panic!("again")), 7);
    }

    #[test]
    fn arguments_are_checked_before_use() {
        // SAFETY: NULL, which every helper accepts.
        let err = unsafe { arg_str(std::ptr::null(), "subject") }.unwrap_err();
        assert_eq!(err.code, busd_result::NullArgument);
        assert_eq!(err.message, "subject is NULL");

        let latin1 = c"caf\xe9";
        // SAFETY: a NUL-terminated literal.
        let err = unsafe { arg_str(latin1.as_ptr(), "subject") }.unwrap_err();
        assert_eq!(err.code, busd_result::InvalidArgument);

        // SAFETY: NULL with a zero length is never read.
        let empty = unsafe { arg_bytes(std::ptr::null(), 0, "payload") }.unwrap();
        assert!(empty.is_empty());
        // SAFETY: NULL with a length is refused before any read.
        let err = unsafe { arg_bytes(std::ptr::null(), 3, "payload") }.unwrap_err();
        assert_eq!(err.code, busd_result::NullArgument);

        let mut slot: *mut u8 = std::ptr::NonNull::dangling().as_ptr();
        // SAFETY: a local, writable slot.
        unsafe { arg_out(&mut slot, "out") }.unwrap();
        assert!(slot.is_null(), "a failure after this leaves NULL behind");
    }
}
