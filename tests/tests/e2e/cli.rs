//! The `busd` client commands, as a script would use them, against a real
//! daemon process. The helpers that run them serve `cli_exec` too.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use busd_e2e::{DaemonProcess, busd_bin};

pub(crate) fn busd(d: &DaemonProcess, args: &[&str]) -> Command {
    let mut cmd = Command::new(busd_bin());
    cmd.args(args)
        .env("BUSD_URL", &d.unix_url)
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn run(d: &DaemonProcess, args: &[&str]) -> Output {
    busd(d, args).output().expect("run busd")
}

pub(crate) fn spawn(d: &DaemonProcess, args: &[&str]) -> Child {
    busd(d, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn busd")
}

/// Waits (bounded) until the daemon lists `n` registrations on `subject`,
/// asking it with `busd ctl subs`: the test's processes run as the
/// daemon's own uid, which is always an admin.
pub(crate) fn wait_registered(d: &DaemonProcess, subject: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = run(d, &["ctl", "--json", "subs"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.matches(&format!("\"{subject}\"")).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{subject} never registered");
}

#[test]
fn pub_and_sub_from_the_shell() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(&d, &["sub", "--count", "3", "weather.>"]);
    wait_registered(&d, "weather.>", 1);
    assert!(
        run(&d, &["pub", "weather.today.paris", "sunny"])
            .status
            .success()
    );
    assert!(
        run(
            &d,
            &[
                "pub",
                "--json",
                "weather.week",
                r#"{"city":"Paris","high":21}"#
            ]
        )
        .status
        .success()
    );
    let mut stdin_pub = busd(&d, &["pub", "weather.raw", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    stdin_pub
        .stdin
        .take()
        .unwrap()
        .write_all(&[0xc1, 0x00, 0xff])
        .unwrap();
    assert!(stdin_pub.wait().unwrap().success());

    let lines: Vec<String> = BufReader::new(sub.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(
        sub.wait().unwrap().success(),
        "sub exits after --count messages"
    );
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    assert_eq!(fields.len(), 3, "{lines:?}");
    assert_eq!(fields[0][0], "weather.today.paris");
    assert!(
        fields[0][1].starts_with("unpackaged#"),
        "sender: {}",
        fields[0][1]
    );
    assert_eq!(fields[0][2], "sunny");
    assert_eq!(
        fields[1][2], r#"{"city":"Paris","high":21}"#,
        "MessagePack shown as JSON"
    );
    assert_eq!(fields[2][2], "0xc100ff", "other bytes as hex");
}

#[test]
fn pub_attaches_files_and_sub_names_them() {
    let d = DaemonProcess::spawn(&[]);
    let (a, b) = (d.dir.path().join("a.txt"), d.dir.path().join("b.txt"));
    std::fs::write(&a, "a").unwrap();
    std::fs::write(&b, "b").unwrap();
    let mut sub = spawn(&d, &["sub", "--count", "1", "files"]);
    wait_registered(&d, "files", 1);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let published = run(&d, &["pub", "--attach", a, "--attach", b, "files", "two"]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let mut line = String::new();
    BufReader::new(sub.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.trim_end()
            .ends_with(&format!("two\t[2 fds: {a}, {b}]")),
        "{line:?}"
    );
    assert!(sub.wait().unwrap().success());
    let missing = run(&d, &["pub", "--attach", "/no/such/file", "files", "x"]);
    assert!(!missing.status.success());
    let why = String::from_utf8_lossy(&missing.stderr);
    assert!(why.contains("cannot open /no/such/file"), "{why}");
}

#[test]
fn pub_sends_many_with_count_or_one_per_line_of_stdin() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(&d, &["sub", "--count", "6", "many"]);
    wait_registered(&d, "many", 1);
    assert!(
        run(&d, &["pub", "--count", "3", "many", "again"])
            .status
            .success()
    );
    let mut lines_pub = busd(&d, &["pub", "--lines", "many"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lines_pub
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    assert!(lines_pub.wait().unwrap().success());
    let payloads: Vec<String> = BufReader::new(sub.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap().split('\t').nth(2).unwrap().to_owned())
        .collect();
    assert!(sub.wait().unwrap().success());
    assert_eq!(payloads, ["again", "again", "again", "one", "two", "three"]);
    // A count of 0 sends nothing, and says so before connecting.
    let zero = run(&d, &["pub", "--count", "0", "many", "x"]);
    assert_eq!(zero.status.code(), Some(2));
}

#[test]
fn req_and_reply_from_the_shell() {
    let d = DaemonProcess::spawn(&[]);
    let mut echo = spawn(&d, &["reply", "--echo", "--count", "1", "contoso.echo"]);
    wait_registered(&d, "contoso.echo", 1);
    let out = run(&d, &["req", "contoso.echo", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(
        echo.wait().unwrap().success(),
        "reply exits after --count requests"
    );

    let out = run(&d, &["req", "nobody.home", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("NoResponders"),
        "{out:?}"
    );

    // A service that cannot do what is asked answers Failure, saying why.
    let mut failing = spawn(
        &d,
        &[
            "reply",
            "--fail",
            "--count",
            "1",
            "contoso.broken",
            "out of order",
        ],
    );
    wait_registered(&d, "contoso.broken", 1);
    let out = run(&d, &["req", "contoso.broken", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("out of order") && err.contains("ailure"),
        "{err}"
    );
    assert!(failing.wait().unwrap().success());
}

#[test]
fn sub_takes_an_overflow_policy() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(
        &d,
        &["sub", "--overflow", "drop-oldest", "--count", "1", "lossy"],
    );
    wait_registered(&d, "lossy", 1);
    let subs = run(&d, &["ctl", "--json", "subs"]);
    let text = String::from_utf8_lossy(&subs.stdout);
    assert!(text.contains("\"overflow\": \"drop-oldest\""), "{text}");
    // And as a table, for a person.
    let table = run(&d, &["ctl", "subs"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("CLIENT") && header.contains("OVERFLOW"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("lossy") && l.contains("drop-oldest")),
        "{table}"
    );
    assert!(run(&d, &["pub", "lossy", "x"]).status.success());
    assert!(sub.wait().unwrap().success());
    let bad = run(&d, &["sub", "--overflow", "sometimes", "lossy"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn req_timeout_prints_the_code_and_exits_1() {
    let d = DaemonProcess::spawn(&[]);
    // A responder that never answers: `sub` on the service's subject does
    // not serve it, so use a reply process that is stopped (SIGSTOP).
    let mut silent = spawn(&d, &["reply", "silent.service", "never"]);
    wait_registered(&d, "silent.service", 1);
    let pid = rustix::process::Pid::from_raw(silent.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let out = run(&d, &["req", "--timeout", "200", "silent.service", "x"]);
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let _ = silent.wait();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Timeout"),
        "{out:?}"
    );
}

#[test]
fn commands_without_a_daemon_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}/none.sock", dir.path().display());
    let out = Command::new(busd_bin())
        .args(["pub", "a", "b"])
        .env("BUSD_URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{out:?}"
    );
    let out = Command::new(busd_bin())
        .args(["pub", "a.*", "b"])
        .env("BUSD_URL", &url)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn completions_and_the_man_page_come_from_the_command_itself() {
    let output = |args: &[&str]| {
        let out = Command::new(busd_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = output(&["completions", shell]);
        assert!(
            script.contains("check-config") && script.contains("token"),
            "{shell}"
        );
    }
    // The bash script is one bash can load.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busd.bash");
    std::fs::write(&file, output(&["completions", "bash"])).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(check.success());
    let man = output(&["man"]);
    assert!(
        man.starts_with(".ie") && man.contains(".TH busd 1"),
        "{man}"
    );
    assert!(man.contains("completions") && man.contains("check\\-config"));
    let bad = Command::new(busd_bin())
        .args(["completions", "csh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn ctl_clients_shows_each_clients_transport_process_and_queue() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(&d, &["sub", "--count", "1", "who.is.there"]);
    wait_registered(&d, "who.is.there", 1);
    let out = run(&d, &["ctl", "--json", "clients"]);
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pid"] == sub.id())
        .unwrap_or_else(|| panic!("the sub process is not listed: {doc}"));
    assert_eq!(me["transport"], "unix", "{me}");
    assert_eq!(me["subscriptions"], 1, "{me}");
    assert_eq!(me["queued"], 0, "{me}");
    assert!(
        me["exe"].as_str().is_some_and(|e| e.ends_with("busd-test")),
        "{me}"
    );
    assert!(
        me["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{me}"
    );
    let table = run(&d, &["ctl", "clients"]);
    let header = String::from_utf8_lossy(&table.stdout);
    assert!(
        header.starts_with("ADDR") && header.contains("TRANSPORT"),
        "{header}"
    );
    assert!(run(&d, &["pub", "who.is.there", "me"]).status.success());
    assert!(sub.wait().unwrap().success());
}

#[test]
fn ctl_explain_answers_for_live_clients_with_the_rules_in_force() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(&d, &["sub", "--count", "1", "explain.me"]);
    wait_registered(&d, "explain.me", 1);
    let out = run(&d, &["ctl", "--json", "clients"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pid"] == sub.id())
        .and_then(|c| c["id"].as_u64())
        .unwrap_or_else(|| panic!("the sub process is not listed: {doc}"))
        .to_string();
    let uid = rustix::process::getuid().as_raw();
    let (same, other) = (
        format!("unpackaged:{uid}"),
        format!("unpackaged:{}", uid + 1),
    );
    // The embedded default rules: unpackaged clients reach their own uid.
    let out = run(
        &d,
        &[
            "ctl",
            "explain",
            "--from",
            &id,
            "--to",
            &same,
            "--subject",
            "explain.me",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "message on explain.me from {same} to {same}: allowed: both unpackaged, of the \
             same uid {uid} ([daemon] unpackaged = \"same-uid\")\n"
        )
    );
    let out = run(
        &d,
        &["ctl", "--json", "explain", "--from", &other, "--to", &id],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["allowed"], false, "{doc}");
    assert!(
        doc["explanation"]
            .as_str()
            .unwrap()
            .contains("denied: both unpackaged, of uids"),
        "{doc}"
    );
    // A client that is not connected: the daemon says so.
    let out = run(&d, &["ctl", "explain", "--from", "999999", "--to", &same]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no client 999999 is connected"),
        "{out:?}"
    );
    run(&d, &["pub", "explain.me", "done"]);
    assert!(sub.wait().unwrap().success());
}

#[test]
fn ctl_reload_dry_run_lists_what_a_file_would_cut_and_applies_nothing() {
    let d = DaemonProcess::spawn(&[]);
    let mut sub = spawn(&d, &["sub", "--count", "1", "rehearsed"]);
    wait_registered(&d, "rehearsed", 1);
    // The daemon's own file, unchanged: nothing would be cut.
    let out = run(&d, &["ctl", "reload", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("nothing would be cut\n"),
        "{out:?}"
    );
    // A file that keeps unpackaged clients apart: the subscriber would
    // stop hearing from the clients of its uid.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apart.toml");
    std::fs::write(&file, "[daemon]\nunpackaged = \"deny\"\n").unwrap();
    let out = run(&d, &["ctl", "reload", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("on rehearsed: stops receiving from client"),
        "{text}"
    );
    assert!(
        text.ends_with("this reload would cut the above off\n"),
        "{text}"
    );
    // Nothing was applied: the subscriber still hears a publish.
    run(&d, &["pub", "rehearsed", "still here"]);
    assert!(sub.wait().unwrap().success());
}

#[test]
fn grants_are_kept_over_a_restart_in_the_grants_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grants.json");
    let env = [("BUSD_DAEMON__GRANTS_FILE", file.to_str().unwrap())];
    let d = DaemonProcess::spawn_with_env(&[], &env);
    let granted = [
        "ctl",
        "grant",
        "--from",
        "unpackaged:4242",
        "--to",
        "unpackaged:4343",
    ];
    let out = run(
        &d,
        &[&granted[..], &["--for", "1h", "--reason", "kept"]].concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the grants file is the daemon's alone");
    drop(d);

    let d = DaemonProcess::spawn_with_env(&[], &env);
    let out = run(&d, &["ctl", "--json", "grants"]);
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc[0]["from"], "unpackaged:4242", "{doc}");
    assert_eq!(doc[0]["to"], "unpackaged:4343", "{doc}");
    assert_eq!(doc[0]["reason"], "kept", "{doc}");
    // Revoked, it is gone from the file too.
    let id = doc[0]["id"].to_string();
    assert!(run(&d, &["ctl", "revoke", &id]).status.success());
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept, serde_json::json!([]));
}

#[test]
fn ctl_bridges_lists_none_without_bridges() {
    let d = DaemonProcess::spawn(&[]);
    let out = run(&d, &["ctl", "--json", "bridges"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n", "{out:?}");
    let out = run(&d, &["ctl", "bridges"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "(none)\n", "{out:?}");
}
