//! `busd run` refuses a socket path it cannot trust: exit code 2, with the
//! path and the reason, through the real binary.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use busd_e2e::busd_bin;

/// Runs `busd run` on the socket `sock` (TCP off) and returns its exit code
/// and stderr; a daemon that starts instead is killed and fails the test.
fn run_on(sock: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(busd_bin())
        .args(["run", "--tcp", "", "--unix"])
        .arg(sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busd");
    // Bounded wait for the exit; not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "busd started on {}:\n{}",
                sock.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_world_writable_socket_directory_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = run_on(&dir.join("busd.sock"));
    assert_eq!(code, Some(2), "{err}");
    let expected = format!(
        "busd: cannot start: {} is writable by group or others without the sticky bit (mode 0777)",
        dir.display()
    );
    assert!(err.contains(&expected), "expected {expected:?} in\n{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn a_socket_another_program_serves_exits_2_and_stays_its() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("busd.sock");
    let theirs = UnixListener::bind(&sock).unwrap();
    let (code, err) = run_on(&sock);
    assert_eq!(code, Some(2), "{err}");
    let expected = format!(
        "busd: cannot start: another program is serving {}",
        sock.display()
    );
    assert!(err.contains(&expected), "expected {expected:?} in\n{err}");
    // busd's probe was one connection; the program still owns its socket.
    theirs.accept().expect("busd's probe");
    let _client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    theirs.accept().expect("the next client reaches it");
}
