//! The real `busd` binary, for exit codes, signals and the CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `busd` command built beside this test: this package's `busd-test`
/// binary (`src/bin/busd-test.rs`, the same code as `busd`), which cargo
/// always builds before running the package's integration tests.
pub fn busd_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test> → target/<profile>/busd-test
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("busd-test");
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// Process `pid`'s resident memory and its peak (`VmRSS`, `VmHWM`), in
/// bytes; zeroes if it is gone.
pub fn resident_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A daemon process on a temp socket and a free loopback port.
pub struct DaemonProcess {
    /// The child; killed on drop if still running.
    pub child: Child,
    /// Its unix socket URL.
    pub unix_url: String,
    /// Its loopback TCP URL, when started with [`DaemonProcess::spawn_with_tcp`].
    pub tcp_url: Option<String>,
    /// Temp dir with the socket.
    pub dir: tempfile::TempDir,
}

impl DaemonProcess {
    /// Starts `busd run` with extra `args`, TCP disabled, the socket in a
    /// temp dir; waits until the socket accepts.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// As [`DaemonProcess::spawn`], with `env` set and its log (at info)
    /// written to [`DaemonProcess::log_path`].
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_on(&busd_bin(), "", args, env)
    }

    /// As [`DaemonProcess::spawn_with_env`], running the `busd` at `bin`,
    /// also listening on loopback TCP at a port the kernel picks, read from
    /// the daemon's log into [`DaemonProcess::tcp_url`]; `env` must leave
    /// `RUST_LOG` at info for target `busd_daemon::daemon`.
    pub fn spawn_with_tcp(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut me = Self::spawn_on(bin, "127.0.0.1:0", args, env);
        const LISTENING: &str = "listening endpoint=tcp://";
        me.wait_for_log(LISTENING);
        let log = std::fs::read_to_string(me.log_path()).expect("the daemon's log");
        let at = log.find(LISTENING).expect("found") + LISTENING.len() - "tcp://".len();
        let url = log[at..].split_whitespace().next().expect("an address");
        me.tcp_url = Some(url.to_owned());
        me
    }

    /// Starts `BIN run --tcp TCP` (`""`: none) with `args` and `env`.
    fn spawn_on(bin: &Path, tcp: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("busd.sock");
        let log = std::fs::File::create(dir.path().join("busd.log")).expect("log file");
        let child = Command::new(bin)
            .arg("run")
            .args(["--tcp", tcp, "--unix"])
            .arg(&sock)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn busd");
        let unix_url = format!("unix://{}", sock.display());
        let me = Self {
            child,
            unix_url,
            tcp_url: None,
            dir,
        };
        me.wait_ready(&sock);
        me
    }

    fn wait_ready(&self, sock: &std::path::Path) {
        // Polling the file system for readiness, bounded; not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        panic!(
            "busd did not start listening on {}; its log:\n{log}",
            sock.display()
        );
    }

    /// The daemon's log (stderr).
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("busd.log")
    }

    /// Waits (bounded) until the daemon's log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        // Polling a file for a line, bounded; not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        panic!("no {text:?} in the daemon's log:\n{log}");
    }

    /// Waits (bounded by `limit`) for the daemon to exit; its status, or
    /// `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` without waiting (e.g. SIGHUP to reload).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Sends `signal` and waits for the exit status.
    pub fn signal_and_wait(mut self, signal: rustix::process::Signal) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
        self.child.wait().expect("wait")
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
