//! `busd_client`: connecting (default endpoint, a URL, a package proven by
//! its token) and freeing.
//!
//! Connecting builds the client's runtime first, then runs the SDK's
//! `connect` on it: the connection tasks the SDK spawns live there.

use std::ffi::c_char;
use std::sync::Arc;

use ::busd_client::Client;

use crate::error::{Failure, busd_result};
use crate::guard::{arg_opt_str, arg_out, arg_ref, arg_str, free_handle, guard, into_handle};
use crate::runtime::Runtime;

/// A connection to busd. It reconnects by itself (with backoff) when the
/// daemon restarts, and registers its subscriptions and services again.
#[derive(Debug)]
pub struct busd_client {
    // Field order is drop order: the SDK handle before the runtime it runs on.
    client: Client,
    runtime: Arc<Runtime>,
}

impl busd_client {
    pub(crate) fn sdk(&self) -> &Client {
        &self.client
    }

    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }
}

/// Starts a runtime, connects on it with `connect`, and writes the handle
/// to `out`.
fn connect_with<F>(out: &mut *mut busd_client, connect: impl FnOnce() -> F) -> Result<(), Failure>
where
    F: Future<Output = Result<Client, ::busd_client::Error>>,
{
    let runtime = Runtime::new().map_err(|e| {
        Failure::new(
            busd_result::Connect,
            format!("cannot start the client's I/O thread: {e}"),
        )
    })?;
    let client = runtime.block_on(connect())?;
    *out = into_handle(busd_client { client, runtime });
    Ok(())
}

/// Connects where the `busd` command would: the connection the daemon handed
/// this process if it started it as a service (`BUSD_FD`), else `BUSD_URL`
/// if set, else the default unix socket (`$XDG_RUNTIME_DIR/busd/busd.sock`,
/// or `/run/busd/busd.sock`). The client is unpackaged.
///
/// On success `*out` is a new client, to free with `busd_client_free`.
/// Fails with `BUSD_RESULT_CONNECT` when nothing answers there; the daemon's
/// refusal keeps its code (e.g. `BUSD_RESULT_LIMIT_EXCEEDED`).
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_connect_default(out: *mut *mut busd_client) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        connect_with(out, Client::connect_default)
    })
}

/// Connects to the daemon at `url`: `tcp://127.0.0.1:PORT`,
/// `unix:///PATH/busd.sock` or `shm:///PATH/busd.sock` (shared memory, set
/// up over that unix socket). The client is unpackaged.
///
/// On success `*out` is a new client, to free with `busd_client_free`.
/// Fails with `BUSD_RESULT_CONNECT` for an invalid URL or when nothing
/// answers there.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `url` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_connect(
    url: *const c_char,
    out: *mut *mut busd_client,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let url = unsafe { arg_str(url, "url") }?;
        connect_with(out, || Client::connect(url))
    })
}

/// Connects as the package `pfn` (`Name_PublisherId`, e.g.
/// `"Contoso.Weather_8wekyb3d8bbwe"`) to the daemon at `url`, or where
/// `busd_connect_default` would look if `url` is NULL (`BUSD_URL`, else the
/// default socket).
///
/// With `token_file`, the claim is proven by the package's token read from
/// that file: the daemon sends a nonce and the client answers with an
/// HMAC-SHA256 under the token, which never travels; the file is read again
/// at every reconnect. With `token_file` NULL, the daemon checks the claim
/// by the socket's peer credentials (uid, executable) as its config lists.
///
/// On success `*out` is a new client, to free with `busd_client_free`.
/// Fails with `BUSD_RESULT_CONFIG` for a malformed `pfn` or a token file
/// that cannot be read (nothing is sent), `BUSD_RESULT_AUTH_FAILED` when
/// the daemon refuses the proof, `BUSD_RESULT_CONNECT` as `busd_connect`.
///
/// Thread safety: may be called from any thread.
///
/// # Safety
/// `url` and `token_file` are NULL or NUL-terminated strings; `pfn` is a
/// NUL-terminated string (NULL fails); `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_connect_package(
    url: *const c_char,
    pfn: *const c_char,
    token_file: *const c_char,
    out: *mut *mut busd_client,
) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a writable slot.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let url = unsafe { arg_opt_str(url, "url") }?;
        // SAFETY: as for `url`.
        let pfn = unsafe { arg_str(pfn, "pfn") }?;
        // SAFETY: as for `url`.
        let token_file = unsafe { arg_opt_str(token_file, "token_file") }?;
        let url = url.map_or_else(Client::default_url, str::to_owned);
        let mut builder = Client::builder(url).pfn(pfn);
        if let Some(path) = token_file {
            builder = builder.token_file(path);
        }
        connect_with(out, || builder.connect())
    })
}

/// Waits until the daemon has handled everything this client sent before
/// (a ping answered), e.g. so that messages published just before are
/// routed before the program exits.
///
/// Fails with `BUSD_RESULT_DISCONNECTED` if the connection was lost
/// meanwhile, `BUSD_RESULT_CLOSED` if the client is gone for good.
///
/// Thread safety: may be called from any thread, concurrently with other
/// calls on the same client.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_flush(client: *const busd_client) -> busd_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live client.
        let client = unsafe { arg_ref(client, "client") }?;
        client.runtime.block_on(client.client.flush())?;
        Ok(())
    })
}

/// Frees the client; NULL is ignored. Its subscriptions and services are
/// separate handles and keep working (the connection stays open until the
/// last of them is freed too). When this is the last handle, it waits up to
/// two seconds for the connection's thread to stop.
///
/// Thread safety: any thread, a callback's included; no other call may use
/// `client` meanwhile or after.
///
/// # Safety
/// `client` is NULL or came from a `busd_connect*` call and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busd_client_free(client: *mut busd_client) {
    crate::guard::guard_value((), || {
        // SAFETY: the caller promises NULL or a client of ours, freed once.
        unsafe { free_handle(client) }
    });
}
