//! Open files attached to messages, requests and replies: they reach the
//! receivers the rules allow over unix and shm, as fds with the access the
//! sender opened them with; never a denied receiver; a tcp receiver gets
//! the message and a note instead; past the limits they are refused and
//! closed; and the daemon holds none of them once delivered.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busd_client::{Client, ErrorKind, RequestOptions, Status};
use busd_e2e::access::{assert_nothing_delivered, next_call, next_msg, within};
use busd_e2e::{DaemonProcess, Package, RawClient, TestDaemon, Transport};
use busd_proto::{ErrorCode, Frame, Op, Subject};
use futures::StreamExt;

const SENDER: &str = "Files.Sender_8wekyb3d8bbwe";
const ALLOWED: &str = "Files.Allowed_8wekyb3d8bbwe";
const DENIED: &str = "Files.Denied_8wekyb3d8bbwe";

async fn daemon() -> TestDaemon {
    let packages = [
        Package::new(SENDER)
            .sends_to(&[ALLOWED])
            .accepts(&[ALLOWED]),
        Package::new(ALLOWED).accepts(&[SENDER]).sends_to(&[SENDER]),
        // Would take anything from anyone named; the sender does not name it.
        Package::new(DENIED).accepts(&[SENDER]),
    ];
    TestDaemon::start_with_packages("same-uid", &packages).await
}

/// A file in `dir` holding `text`, opened read-only.
fn read_only(dir: &Path, name: &str, text: &str) -> OwnedFd {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::File::open(path).unwrap().into()
}

fn read_all(fd: OwnedFd) -> String {
    let mut file = std::fs::File::from(fd);
    file.rewind().unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

#[tokio::test]
async fn fds_reach_the_allowed_receiver_read_only_and_never_the_denied_one() {
    let dir = tempfile::tempdir().unwrap();
    for t in [Transport::Unix, Transport::Shm] {
        let d = daemon().await;
        let sender = d.connect_with_fds(t, &Package::new(SENDER)).await;
        let allowed = d.connect_with_fds(t, &Package::new(ALLOWED)).await;
        let denied = d.connect_with_fds(t, &Package::new(DENIED)).await;
        let mut to_allowed = allowed.subscribe("files.new").await.unwrap();
        let mut to_denied = denied.subscribe("files.new").await.unwrap();
        let fd = read_only(dir.path(), "report.txt", "quarterly report");
        sender
            .publish_with_fds("files.new", "report.txt", vec![fd])
            .await
            .unwrap();

        let mut msg = next_msg(&mut to_allowed, "the message with its fd").await;
        assert_eq!(&msg.payload[..], b"report.txt", "{t:?}");
        let mut fds = msg.take_fds().unwrap();
        assert_eq!(fds.len(), 1, "{t:?}");
        let fd = fds.pop().unwrap();
        // Read-only as opened: writing through it fails.
        let mut file = std::fs::File::from(fd.try_clone().unwrap());
        let write = file.write_all(b"tampered");
        assert!(write.is_err(), "{t:?}: a read-only fd took a write");
        assert_eq!(read_all(fd), "quarterly report", "{t:?}");

        assert_nothing_delivered(&denied, &mut to_denied, &format!("{t:?} denied")).await;
    }
}

#[tokio::test]
async fn a_tcp_receiver_gets_the_message_without_fds_and_a_note_and_cannot_send_any() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon().await;
    let sender = d
        .connect_with_fds(Transport::Unix, &Package::new(SENDER))
        .await;
    let over_tcp = d
        .connect_with_fds(Transport::Tcp, &Package::new(ALLOWED))
        .await;
    let mut sub = over_tcp.subscribe("files.new").await.unwrap();
    let fds = vec![
        read_only(dir.path(), "a", "a"),
        read_only(dir.path(), "b", "b"),
    ];
    sender
        .publish_with_fds("files.new", "two files", fds)
        .await
        .unwrap();
    let msg = next_msg(&mut sub, "the message without its fds").await;
    assert_eq!(&msg.payload[..], b"two files");
    assert!(msg.fds.is_empty());
    let note = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("busd-fds-withheld"));
    assert_eq!(note.map(String::as_str), Some("2"));

    let fd = read_only(dir.path(), "c", "c");
    let err = over_tcp
        .publish_with_fds("files.new", "from tcp", vec![fd])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("unix:// or shm://"), "{err}");
}

#[tokio::test]
async fn a_client_that_did_not_ask_for_fds_gets_none_and_cannot_attach_any() {
    let dir = tempfile::tempdir().unwrap();
    for t in [Transport::Unix, Transport::Shm] {
        let d = daemon().await;
        let sender = d.connect_with_fds(t, &Package::new(SENDER)).await;
        let plain = d.connect_as(t, &Package::new(ALLOWED)).await;
        let mut sub = plain.subscribe("files.new").await.unwrap();
        let fd = read_only(dir.path(), "a", "a");
        sender
            .publish_with_fds("files.new", "one file", vec![fd])
            .await
            .unwrap();
        let msg = next_msg(&mut sub, "the message without its fd").await;
        assert_eq!(&msg.payload[..], b"one file", "{t:?}");
        assert!(msg.fds.is_empty(), "{t:?}");
        let note = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("busd-fds-withheld"));
        assert_eq!(note.map(String::as_str), Some("1"), "{t:?}");

        let fd = read_only(dir.path(), "b", "b");
        let err = plain
            .publish_with_fds("files.new", "unasked", vec![fd])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{t:?}: {err}");
        assert!(err.to_string().contains("pass_fds(true)"), "{err}");
    }
}

#[tokio::test]
async fn a_request_carries_an_fd_to_the_service_and_its_reply_one_back() {
    let dir = tempfile::tempdir().unwrap();
    for t in [Transport::Unix, Transport::Shm] {
        let d = daemon().await;
        let caller = d.connect_with_fds(t, &Package::new(SENDER)).await;
        let service = d.connect_with_fds(t, &Package::new(ALLOWED)).await;
        let mut calls = service.serve("files.convert").await.unwrap();
        let answer = tokio::spawn({
            let dir = dir.path().to_owned();
            async move {
                let mut call = next_call(&mut calls, "the call").await;
                let fds = call.take_fds().unwrap();
                let text = fds.into_iter().map(read_all).collect::<Vec<_>>().join("");
                let converted = read_only(&dir, "converted.txt", &text.to_uppercase());
                call.respond_with_fds(Status::Success, None, "converted", vec![converted])
                    .await
                    .unwrap();
            }
        });
        let input = read_only(dir.path(), "input.txt", "lower case");
        let options = RequestOptions::default();
        let request = caller.request_with_fds("files.convert", "convert", options, vec![input]);
        let mut response = within("the reply", request).await.unwrap();
        within("the service", answer).await.unwrap();
        let fds = response.take_fds().unwrap();
        let texts: Vec<_> = fds.into_iter().map(read_all).collect();
        assert_eq!(texts, ["LOWER CASE"], "{t:?}");
    }
}

#[tokio::test]
async fn fds_over_the_limit_are_refused_and_closed_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon().await;
    let caller = d
        .connect_with_fds(Transport::Unix, &Package::new(SENDER))
        .await;
    let service = d
        .connect_with_fds(Transport::Unix, &Package::new(ALLOWED))
        .await;
    let mut calls = service.serve("files.count").await.unwrap();
    let answer = tokio::spawn(async move {
        while let Some(mut call) = calls.next().await {
            let n = call.take_fds().unwrap().len();
            call.respond(n.to_string()).await.unwrap();
        }
    });
    let path = dir.path().join("one");
    std::fs::write(&path, "x").unwrap();
    let open = |n: usize| -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open(&path).unwrap().into())
            .collect()
    };
    // The default limit is 16 per message.
    let over = caller.request_with_fds("files.count", "", RequestOptions::default(), open(17));
    let err = within("the refusal", over).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    assert!(
        err.to_string().contains("limits.max_fds_per_message"),
        "{err}"
    );
    let at = caller.request_with_fds("files.count", "", RequestOptions::default(), open(16));
    let resp = within("at the limit", at).await.unwrap();
    assert_eq!(&resp.payload[..], b"16");
    answer.abort();
}

/// A client of `url` that asked to pass fds.
async fn with_fds(url: &str) -> Client {
    Client::builder(url).pass_fds(true).connect().await.unwrap()
}

/// The open fds of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits (bounded) until `pid` holds `want` fds; the count it last saw.
fn settle_fds(pid: u32, want: usize) -> usize {
    // Bounded polling of another process's state, not a timing assertion:
    // a closed connection's fds go when the daemon's task notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_fds(pid);
        if now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes `n` messages with a fresh read-only fd each from `from`, and
/// takes and drops them at `to`.
async fn pass(from: &Client, to: &Client, file: &PathBuf, n: usize) {
    let mut sub = to.subscribe("files.loop").await.unwrap();
    to.flush().await.unwrap();
    for i in 0..n {
        let fd = std::fs::File::open(file).unwrap().into();
        from.publish_with_fds("files.loop", i.to_string(), vec![fd])
            .await
            .unwrap();
        let mut msg = next_msg(&mut sub, "a pass").await;
        assert_eq!(msg.take_fds().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_thousand_passes_leave_the_daemons_fd_count_as_it_was() {
    let d = DaemonProcess::spawn(&[]);
    let pid = d.child.id();
    let shm_url = d.unix_url.replacen("unix://", "shm://", 1);
    let file = d.dir.path().join("passed.txt");
    std::fs::write(&file, "passed").unwrap();
    let mut clients = Vec::new();
    for url in [&d.unix_url, &shm_url] {
        let from = with_fds(url).await;
        let to = with_fds(url).await;
        clients.push((from, to));
    }
    for (from, to) in &clients {
        from.flush().await.unwrap();
        to.flush().await.unwrap();
    }
    let before = open_fds(pid);
    for (from, to) in &clients {
        pass(from, to, &file, 1000).await;
        from.flush().await.unwrap();
    }
    let after = settle_fds(pid, before);
    eprintln!("busd's open fds: {before} before 2 x 1,000 passes, {after} after");
    assert_eq!(after, before, "the daemon kept fds it passed on");

    // A hostile client passing fds no frame announced is closed, and
    // leaves nothing behind either.
    let (mut raw, _) = RawClient::connect_hello(&d.unix_url).await;
    let fds: Vec<OwnedFd> = (0..3)
        .map(|_| std::fs::File::open(&file).unwrap().into())
        .collect();
    let borrowed: Vec<_> = fds.iter().map(std::os::fd::AsFd::as_fd).collect();
    let op = Op::Pub {
        subject: Subject::from_static("files.loop"),
        headers: None,
    };
    raw.send_with_fds(Frame::new(op), &borrowed).await;
    let frames = within("the violation", raw.recv_until_closed()).await;
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::ProtocolViolation),
        "{frames:?}"
    );
    drop(raw);
    assert_eq!(
        settle_fds(pid, before),
        before,
        "fds left by a hostile client"
    );

    // One that did not ask for fds passing some with a frame announcing
    // them: the daemon read plain bytes (the kernel closed the fds) and
    // refuses the frame.
    let (mut raw, welcome) = RawClient::connect_hello_with(&d.unix_url, false).await;
    assert!(
        matches!(welcome, Op::Welcome(ref w) if !w.fds),
        "{welcome:?}"
    );
    let open = || -> Vec<OwnedFd> {
        (0..3)
            .map(|_| std::fs::File::open(&file).unwrap().into())
            .collect()
    };
    let op = Op::Pub {
        subject: Subject::from_static("files.loop"),
        headers: None,
    };
    let mut frame = Frame::new(op);
    frame.fds = busd_proto::Fds::new(open());
    let passed = open();
    let borrowed: Vec<_> = passed.iter().map(std::os::fd::AsFd::as_fd).collect();
    raw.send_with_fds(frame, &borrowed).await;
    let frames = within("the violation", raw.recv_until_closed()).await;
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::ProtocolViolation),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| matches!(&f.op, Op::Error { message, .. }
            if message.contains("did not ask for fds"))),
        "{frames:?}"
    );
    drop(raw);
    assert_eq!(
        settle_fds(pid, before),
        before,
        "fds left by a client that did not ask to pass them"
    );
}
