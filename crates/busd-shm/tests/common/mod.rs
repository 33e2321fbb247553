//! What the two-process stress tests share: the child is the test binary
//! again, running one ignored test, with fds the parent dup'ed for it
//! (without `FD_CLOEXEC`, so they survive the exec) named in an
//! environment variable.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use busd_shm::{EventFd, Events};

/// A dup of `fd` that survives exec.
pub(crate) fn inheritable(fd: impl AsFd) -> OwnedFd {
    rustix::io::dup(fd).expect("dup") // dup(2) never sets FD_CLOEXEC
}

/// Runs this test binary's ignored test `child_test` in a child process,
/// passing it `fds` (made with [`inheritable`]) through `var`; its stderr
/// is piped, for the parent to show if it fails. The parent's copies are
/// closed once the child has its own.
pub(crate) fn spawn_child(child_test: &str, var: &str, fds: Vec<OwnedFd>) -> Child {
    let numbers: Vec<String> = fds.iter().map(|fd| fd.as_raw_fd().to_string()).collect();
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            child_test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(var, numbers.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    drop(fds);
    child
}

/// In the child: the fds the parent passed through `var` (each set
/// `FD_CLOEXEC` again), or `None` when this test runs on its own (not as a
/// child), and is then to do nothing.
pub(crate) fn inherited(var: &str) -> Option<Vec<OwnedFd>> {
    let numbers = std::env::var(var).ok()?;
    let fds = numbers.split(',').map(|n| {
        let raw = n.parse().expect("fd number");
        // SAFETY:
        // 1. The parent passed these numbers for fds it dup'ed without
        //    FD_CLOEXEC just for this child; they are open here.
        // 2. Nothing else in this process knows them, so each is owned once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).expect("set cloexec");
        fd
    });
    Some(fds.collect())
}

/// In the child: the pair of eventfds it inherited, as a ring's events.
pub(crate) fn events(readable: OwnedFd, writable: OwnedFd) -> Events {
    Events {
        readable: EventFd::from_fd(readable).expect("eventfd"),
        writable: EventFd::from_fd(writable).expect("eventfd"),
    }
}

/// In the parent: waits for the child and fails with its stderr unless it
/// succeeded.
pub(crate) fn wait_success(child: Child) {
    let output = child.wait_with_output().expect("child");
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
