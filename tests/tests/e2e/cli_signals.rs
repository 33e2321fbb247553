//! Client commands end on SIGTERM, SIGINT and SIGHUP with the status the
//! signal's default action gives, even where there is no default action
//! (PID 1 of a container, which `docker stop` would otherwise wait out);
//! and a reader that goes away ends a command quietly.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use busd_e2e::DaemonProcess;
use rustix::process::{Pid, Signal, kill_process};

use super::cli::{busd, spawn, wait_registered};

#[test]
fn a_waiting_client_command_ends_on_sigterm_sigint_and_sighup() {
    let d = DaemonProcess::spawn(&[]);
    for (signal, code) in [(Signal::TERM, 143), (Signal::INT, 130), (Signal::HUP, 129)] {
        let mut sub = spawn(&d, &["sub", "signals.wait"]);
        wait_registered(&d, "signals.wait", 1);
        let pid = Pid::from_raw(sub.id() as i32).expect("pid");
        kill_process(pid, signal).expect("signal");
        let status = wait_exit(&mut sub);
        assert_eq!(status.code(), Some(code), "{signal:?}: {status}");
        wait_registered(&d, "signals.wait", 0);
    }
}

/// The child's exit status, bounded.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reader_that_goes_away_ends_ctl_quietly() {
    let d = DaemonProcess::spawn(&[]);
    let mut ctl = busd(&d, &["ctl", "--json", "subs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader closes its end before busd writes.
    drop(ctl.stdout.take());
    let status = wait_exit(&mut ctl);
    let mut stderr = String::new();
    ctl.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
