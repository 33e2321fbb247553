//! The processes of services started on demand: each gets its connection
//! to the daemon already made (one end of a socket pair, descriptor 3,
//! announced as `BUSD_FD=3`, as systemd announces `LISTEN_FDS`), so it is
//! its package with no token or secret anywhere; its output goes to the
//! daemon's log under the service's name; it is reaped, stopped when idle
//! (`idle_exit`), and stopped with the daemon.

use std::io;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use busd_policy::ServiceRule;
use busd_proto::{ErrorCode, Subject};
use busd_transport::{Connection, PeerInfo};
use command_fds::{CommandFdExt, FdMapping};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::shared::Shared;

/// The descriptor the service's connection is given as.
const CONNECTION_FD: i32 = 3;
/// How long a service asked to stop (SIGTERM) has before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts `rule`'s command (start `generation`), watched until it is
/// reaped; its pid, and the daemon's end of its connection, for the
/// caller to serve as a session.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    rule: &ServiceRule,
    generation: u64,
) -> io::Result<(u32, Connection)> {
    let argv = rule.exec.as_deref().unwrap_or_default();
    let Some(program) = argv.first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command to run",
        ));
    };
    let (ours, theirs) = UnixStream::pair()?;
    let mut command = Command::new(program);
    command
        .args(&argv[1..])
        .env("BUSD_FD", CONNECTION_FD.to_string())
        .env("BUSD_SERVICE", rule.name.as_str())
        // The daemon's own hand-over and endpoint are not the service's.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("BUSD_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: theirs.into(),
            child_fd: CONNECTION_FD,
        }])
        .map_err(|e| io::Error::other(e.to_string()))?;
    let uid = run_as(shared, rule, &mut command)?;
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the process exited at once"))?;
    tracing::info!(service = %rule.name, pid, "started the service");
    let peer = PeerInfo {
        uid: Some(uid),
        gid: None,
        pid: Some(pid),
        exe: Some(program.into()),
        addr: "activated".to_owned(),
        granted: Some(rule.owner.clone()),
        bridge: false,
    };
    let connection = Connection::over_socket_pair(ours, peer)?;
    for output in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        tokio::spawn(log_lines(rule.name.clone(), pid, output));
    }
    let watch = Watch {
        shared: Arc::clone(shared),
        service: rule.name.clone(),
        idle_exit: rule.idle_exit,
        generation,
        pid,
    };
    shared.tracker.spawn(watch.run(child));
    Ok((pid, connection))
}

/// Who the service runs as: the package's `user`/`group` when the daemon
/// runs as root, else the daemon's own user. Its uid.
fn run_as(shared: &Shared, rule: &ServiceRule, command: &mut Command) -> io::Result<u32> {
    let me = rustix::process::getuid().as_raw();
    let policy = shared.policy();
    let (user, group) = policy
        .package(&rule.owner)
        .map(|p| p.run_as.clone())
        .unwrap_or_default();
    if me != 0 {
        if user.is_some() || group.is_some() {
            tracing::debug!(service = %rule.name, "not root: the service runs as the daemon's user, not its package's user/group");
        }
        return Ok(me);
    }
    let Some(user) = user else {
        return Ok(me);
    };
    let found = lookup_user(&user)?;
    let gid = match group {
        Some(g) => lookup_group(&g)?,
        None => found.1,
    };
    command.uid(found.0).gid(gid);
    Ok(found.0)
}

/// A user's uid and primary gid, by name or number.
fn lookup_user(user: &str) -> io::Result<(u32, u32)> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(uid.into()),
        Err(_) => nix::unistd::User::from_name(user),
    }
    .map_err(io::Error::from)?;
    found
        .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user {user}")))
}

/// A group's gid, by name or number.
fn lookup_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    nix::unistd::Group::from_name(group)
        .map_err(io::Error::from)?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no group {group}")))
}

/// Writes each line the service prints to the daemon's log.
async fn log_lines(service: Subject, pid: u32, output: Box<dyn AsyncRead + Send + Unpin>) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "busd::service", %service, pid, "{line}");
    }
}

/// Asks process `pid` to stop (SIGTERM).
pub(crate) fn terminate(pid: u32) {
    signal(pid, rustix::process::Signal::TERM);
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(pid, signal) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), cause = %e, "cannot signal the service");
    }
}

/// Watches one started process until it is reaped.
struct Watch {
    shared: Arc<Shared>,
    service: Subject,
    idle_exit: Option<Duration>,
    generation: u64,
    pid: u32,
}

impl Watch {
    async fn run(self, mut child: Child) {
        // What its connections had been sent, and since when unchanged.
        let mut seen = (self.busy(), tokio::time::Instant::now());
        let status = loop {
            let idle_check = async {
                match self.idle_exit {
                    // Checked at half the idle time: stopped within 1.5×.
                    Some(idle) => tokio::time::sleep(idle / 2).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => break status,
                () = self.shared.shutdown.cancelled() => {
                    break self.stop(&mut child, "the daemon is stopping").await;
                }
                () = idle_check => {
                    let idle = self.idle_exit.unwrap_or_default();
                    let now = self.busy();
                    if now != seen.0 {
                        seen = (now, tokio::time::Instant::now());
                    } else if now.1 == 0 && seen.1.elapsed() >= idle {
                        let why = format!("idle for {idle:?}");
                        break self.stop(&mut child, &why).await;
                    }
                }
            }
        };
        let how = match &status {
            Ok(s) => s.to_string(),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        tracing::info!(service = %self.service, pid = self.pid, "the service exited: {how}");
        let held = (self.shared.activations).exited(&self.service, self.generation, self.pid);
        let why = format!("service {} exited before it served ({how})", self.service);
        for h in held {
            h.fail(ErrorCode::AppUnavailable, &why);
        }
    }

    /// What the process's connections have been sent (bytes: every call
    /// it gets adds to them) and the calls it has not answered: it is idle
    /// while the first stays the same and the second is zero.
    fn busy(&self) -> (u64, usize) {
        self.shared
            .connections()
            .iter()
            .filter(|(_, h)| h.origin.pid == Some(self.pid))
            .fold((0, 0), |(bytes, calls), (c, h)| {
                (bytes + h.traffic().bytes_out, calls + c.pending_calls)
            })
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; its exit status.
    async fn stop(&self, child: &mut Child, why: &str) -> io::Result<std::process::ExitStatus> {
        tracing::info!(service = %self.service, pid = self.pid, "stopping the service: {why}");
        terminate(self.pid);
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(service = %self.service, pid = self.pid, "did not stop within {STOP_GRACE:?}: killing it");
                signal(self.pid, rustix::process::Signal::KILL);
                child.wait().await
            }
        }
    }
}
