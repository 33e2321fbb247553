//! What `busd run` says to and takes from a service manager, as systemd
//! defines it: listening sockets handed over (`LISTEN_FDS`,
//! sd_listen_fds(3)) and state notifications (`NOTIFY_SOCKET`,
//! sd_notify(3): READY, RELOADING, STOPPING, STATUS). Without a manager
//! both are no-ops.

use busd_daemon::Inherited;
use sd_notify::NotifyState;

/// Takes the sockets a service manager handed over: each a unix stream
/// listener bound to a path or a loopback TCP listener (the daemon checks
/// the address). Clears `LISTEN_FDS` and `LISTEN_PID`, which would
/// otherwise mislead any process the daemon starts.
///
/// Call it before any thread starts: it changes the environment.
///
/// # Errors
/// A sentence naming the descriptor that is neither kind of socket.
pub(crate) fn inherited_sockets() -> Result<Inherited, String> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut inherited = Inherited::default();
    for i in 0..fds.len() {
        // Each `take_*` checks the socket's family and type, and leaves the
        // descriptor in place when they are not its own.
        if let Ok(Some(socket)) = fds.take_unix_listener(i) {
            inherited.unix.push(socket);
            continue;
        }
        match fds.take_tcp_listener(i) {
            Ok(Some(socket)) => inherited.tcp.push(socket),
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "descriptor {} handed over by the service manager (LISTEN_FDS) is neither a unix stream socket nor a TCP socket: {e}",
                    3 + i
                ));
            }
        }
    }
    Ok(inherited)
}

/// Start-up is done: the listeners accept.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload has begun; [`ready`] ends it, whatever its outcome.
pub(crate) fn reloading() {
    // systemd 253 and later want the time of the reload beside it, and
    // fail the reload without it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown has begun.
pub(crate) fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn send(states: &[NotifyState<'_>]) {
    // Only a daemon started by a manager that listens has somewhere to send.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(cause = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
