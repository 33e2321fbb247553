//! Subscriptions: pulled with a timeout (`busd_subscription_next`), or
//! pushed to a callback on a library thread (`busd_subscribe_callback`).

use std::ffi::{c_char, c_void};
use std::time::Duration;

use ::busd_client::{SubscribeOptions, Subscriber};
use futures::StreamExt;

use crate::client::busd_client;
use crate::error::{Failure, busd_result};
use crate::guard::{
    arg_mut, arg_opt_str, arg_out, arg_ref, arg_str, free_handle, guard, guard_value, into_handle,
    null,
};
use crate::message::busd_message;
use crate::runtime::InRuntime;
use crate::worker::{UserData, Worker};

/// A subscription's callback: `msg` is borrowed (valid until the callback
/// returns; copy what you keep, never free it), `user_data` is what was
/// given to `busd_subscribe_callback`. It runs on the subscription's own
/// library thread, one message at a time; it must not unwind (no C++
/// exception may leave it) and should return promptly: while it runs, this
/// subscription's messages queue up (up to 8192, then the daemon's overflow
/// policy, by default disconnecting a slow consumer, applies).
pub type busd_message_callback =
    Option<unsafe extern "C" fn(msg: *const busd_message, user_data: *mut c_void)>;

/// A live subscription; unsubscribes when freed with
/// `busd_subscription_free`.
#[derive(Debug)]
pub struct busd_subscription {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Messages wait here for `busd_subscription_next`.
    Pull(InRuntime<Subscriber>),
    /// A worker thread hands each message to the callback; held for its
    /// `Drop`, which stops the thread.
    Callback { _worker: Worker },
}

/// Subscribes on `client`'s runtime and wraps the subscriber.
///
/// # Safety
/// `client` is NULL or live; `subject` and `queue` are NULL or
/// NUL-terminated.
unsafe fn subscribe(
    client: *const busd_client,
    subject: *const c_char,
    queue: *const c_char,
) -> Result<InRuntime<Subscriber>, Failure> {
    // SAFETY: the caller promises NULL or a live client.
    let client = unsafe { arg_ref(client, "client") }?;
    // SAFETY: the caller promises NULL or a NUL-terminated string.
    let subject = unsafe { arg_str(subject, "subject") }?;
    // SAFETY: as for `subject`.
    let queue = unsafe { arg_opt_str(queue, "queue") }?;
    let options = SubscribeOptions {
        queue: queue.map(str::to_owned),
        ..SubscribeOptions::default()
    };
    let runtime = client.runtime();
    let subscriber = runtime.block_on(client.sdk().subscribe_with(subject, options))?;
    Ok(InRuntime::new(subscriber, runtime.clone()))
}

/// Subscribes to `subject`, which may hold wildcards (`*`: one token, `>`:
/// one or more trailing tokens), for `busd_subscription_next` to take the
/// messages. With a `queue` name (else NULL), the subscription joins that
/// queue group: each message goes to one member of the group.
///
/// Returns once the daemon has the subscription: a message published after
/// it returns is delivered to it. On success `*out` is a new subscription,
/// to free with `busd_subscription_free`. Fails with
/// `BUSD_RESULT_INVALID_SUBJECT` for a malformed subject, or the daemon's
/// refusal (e.g. `BUSD_RESULT_LIMIT_EXCEEDED`).
///
/// Thread safety: may be called from any thread, concurrently with other
/// calls on the same client.
///
/// # Safety
/// `client` is NULL or a live client; `subject` and `queue` are NULL or
/// NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_subscribe(
    client: *const busd_client,
    subject: *const c_char,
    queue: *const c_char,
    out: *mut *mut busd_subscription,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller's promises, passed on.
        let subscriber = unsafe { subscribe(client, subject, queue) }?;
        *out = into_handle(busd_subscription {
            mode: Mode::Pull(subscriber),
        });
        Ok(())
    })
}

/// As `busd_subscribe`, with every message handed to `callback` (with
/// `user_data`) on a thread the library starts for this subscription
/// (named `busd-sub`), one message at a time, in arrival order. The
/// callback may call any busd function, `busd_subscription_free` of this
/// very subscription included. `busd_subscription_next` is not available on
/// such a subscription.
///
/// On success `*out` is a new subscription, to free with
/// `busd_subscription_free`; once that returns the callback is not called
/// again, so `user_data` may be released.
///
/// Thread safety: may be called from any thread. `user_data` is used on the
/// subscription's thread: whatever it points to must be safe to use there.
///
/// # Safety
/// As `busd_subscribe`; `callback` is NULL or a function of that type that
/// may be called with `user_data` from another thread until
/// `busd_subscription_free` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_subscribe_callback(
    client: *const busd_client,
    subject: *const c_char,
    queue: *const c_char,
    callback: busd_message_callback,
    user_data: *mut c_void,
    out: *mut *mut busd_subscription,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        let callback = callback.ok_or_else(|| null("callback"))?;
        // SAFETY: the caller's promises, passed on.
        let subscriber = unsafe { subscribe(client, subject, queue) }?;
        let user_data = UserData::new(user_data);
        let worker = Worker::spawn("busd-sub".to_owned(), subscriber, move |message, _| {
            let message = busd_message::new(message);
            // SAFETY: the caller of busd_subscribe_callback promised that
            // `callback` may be called with `user_data` on this thread until
            // the subscription is freed, which stops this thread first;
            // `message` lives until the call returns.
            unsafe { callback(&message, user_data.get()) };
        })
        .map_err(|e| {
            Failure::new(
                busd_result::Unknown,
                format!("cannot start the subscription's thread: {e}"),
            )
        })?;
        *out = into_handle(busd_subscription {
            mode: Mode::Callback { _worker: worker },
        });
        Ok(())
    })
}

/// Waits up to `timeout_ms` milliseconds (0: do not wait) for the
/// subscription's next message. On success `*out` is the message, owned by
/// the caller: free it with `busd_message_free`.
///
/// Fails with `BUSD_RESULT_TIMEOUT` when none came in time,
/// `BUSD_RESULT_CLOSED` when the subscription has ended (the client is gone
/// for good, or the daemon ended it), `BUSD_RESULT_MISUSE` on a
/// subscription made with a callback.
///
/// Thread safety: one thread at a time per subscription (it may be a
/// different thread each time).
///
/// # Safety
/// `sub` is NULL or a live subscription no other thread is using; `out` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_subscription_next(
    sub: *mut busd_subscription,
    timeout_ms: u32,
    out: *mut *mut busd_message,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller promises NULL or a subscription only this
        // thread uses now.
        let sub = unsafe { arg_mut(sub, "sub") }?;
        let Mode::Pull(subscriber) = &mut sub.mode else {
            return Err(Failure::new(
                busd_result::Misuse,
                "this subscription hands its messages to a callback",
            ));
        };
        let (subscriber, runtime) = subscriber.parts();
        let wait = Duration::from_millis(timeout_ms.into());
        // `timeout` polls the stream before the timer: with 0, a message
        // already queued is still returned.
        let next = runtime.block_on(async { tokio::time::timeout(wait, subscriber.next()).await });
        match next {
            Ok(Some(message)) => {
                *out = into_handle(busd_message::new(message));
                Ok(())
            }
            Ok(None) => Err(Failure::new(
                busd_result::Closed,
                format!("the subscription to {} has ended", subscriber.subject()),
            )),
            Err(_) => Err(Failure::new(
                busd_result::Timeout,
                format!(
                    "no message on {} within {timeout_ms} ms",
                    subscriber.subject()
                ),
            )),
        }
    })
}

/// Unsubscribes and frees the subscription; NULL is ignored. Messages not
/// yet taken are discarded. For a callback subscription it first waits for
/// a callback in progress to return, so after it returns the callback is
/// never called again; called from that callback itself, it returns at once
/// and the subscription's thread ends when the callback returns.
///
/// Thread safety: any thread, the subscription's own callback included; no
/// other call may use `sub` meanwhile or after.
///
/// # Safety
/// `sub` is NULL or came from `busd_subscribe*` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_subscription_free(sub: *mut busd_subscription) {
    guard_value((), || {
        // SAFETY: the caller promises NULL or a subscription of ours, freed
        // once.
        unsafe { free_handle(sub) }
    });
}
