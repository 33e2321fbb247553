//! Reloading the access rules of a running daemon, on every transport: a
//! revoked rule stops a live subscription and service at the next delivery;
//! a removed package is disconnected and cannot come back; an invalid file
//! is refused with its line and changes nothing; `busd ctl reload` does the
//! same for an admin.

use std::time::Duration;

use busd_client::{Client, CtlCommand, ErrorKind, Status};
use busd_e2e::access::{WAIT, answer_with_caller, client_tag, config_toml, next_msg, within};
use busd_e2e::{Package, TestDaemon, Transport};
use futures::StreamExt;

const SENDER: &str = "Reload.Sender_8wekyb3d8bbwe";
const RECEIVER: &str = "Reload.Receiver_8wekyb3d8bbwe";
const GONE: &str = "Reload.Gone_8wekyb3d8bbwe";

/// SENDER → RECEIVER allowed (and GONE → RECEIVER when `with_gone`).
fn allowing(with_gone: bool) -> Vec<Package> {
    let mut v = vec![
        Package::new(SENDER).sends_to(&[RECEIVER]),
        Package::new(RECEIVER).accepts(&[SENDER, GONE]),
    ];
    if with_gone {
        v.push(Package::new(GONE).sends_to(&[RECEIVER]));
    }
    v
}

/// RECEIVER no longer accepts SENDER.
fn revoked() -> Vec<Package> {
    vec![
        Package::new(SENDER).sends_to(&[RECEIVER]),
        Package::new(RECEIVER),
    ]
}

/// Whether `message` points at line `line` of the config file.
fn names_line(message: &str, line: usize) -> bool {
    message.contains(&format!("busd.toml:{line}:")) || message.contains(&format!("line {line}"))
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
        + 1
}

/// SENDER's publish reaches RECEIVER's `sub`, stamped with SENDER.
async fn assert_flows(
    sender: &Client,
    sub: &mut busd_client::Subscriber,
    subject: &str,
    what: &str,
) {
    sender.publish(subject, what.to_owned()).await.unwrap();
    let m = next_msg(sub, what).await;
    assert_eq!(&m.payload[..], what.as_bytes(), "{what}");
    assert_eq!(m.from.client_id, sender.client_id(), "{what}");
    assert_eq!(m.from.pfn, sender.pfn(), "{what}");
}

/// SENDER's publish does not reach `sub`: after SENDER's flush, RECEIVER's
/// own marker is the next message.
async fn assert_blocked(
    sender: &Client,
    receiver: &Client,
    sub: &mut busd_client::Subscriber,
    subject: &str,
    what: &str,
) {
    sender.publish(subject, what.to_owned()).await.unwrap();
    within(&format!("flush of {what}"), sender.flush())
        .await
        .unwrap();
    receiver.publish(subject, "marker").await.unwrap();
    let m = next_msg(sub, &format!("marker after {what}")).await;
    assert_eq!(&m.payload[..], b"marker", "{what} was delivered");
}

#[tokio::test]
async fn a_reload_revokes_a_live_subscription_and_service() {
    for t in Transport::ALL {
        let d = TestDaemon::start_with_packages("same-uid", &allowing(false)).await;
        let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
        let sender = d.connect_as(t, &Package::new(SENDER)).await;
        let mut sub = receiver.subscribe("reload.feed").await.unwrap();
        answer_with_caller(receiver.serve("reload.svc").await.unwrap(), "receiver");

        assert_flows(&sender, &mut sub, "reload.feed", &format!("{t:?} before")).await;
        let resp = within("request before", sender.request("reload.svc", "?"))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(resp.payload.to_vec()).unwrap(),
            format!("receiver|{}", client_tag(&sender))
        );

        d.reconfigure_packages("same-uid", &revoked())
            .unwrap_or_else(|e| panic!("{t:?}: valid reload refused: {e}"));

        assert_blocked(
            &sender,
            &receiver,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after revoke"),
        )
        .await;
        let e = within("request after revoke", sender.request("reload.svc", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");

        // Both connections stay (their packages still exist), and granting
        // the rule again re-opens the same subscription and service.
        d.reconfigure_packages("same-uid", &allowing(false))
            .unwrap_or_else(|e| panic!("{t:?}: valid reload refused: {e}"));
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} granted again"),
        )
        .await;
        let resp = within("request again", sender.request("reload.svc", "?"))
            .await
            .unwrap();
        assert_eq!(resp.status, Status::Success, "{t:?}");
    }
}

#[tokio::test]
async fn a_reload_disconnects_a_removed_package() {
    for t in Transport::ALL {
        let d = TestDaemon::start_with_packages("same-uid", &allowing(true)).await;
        let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
        let mut feed = receiver.subscribe("reload.feed").await.unwrap();
        let gone_token = Package::new(GONE).token_rel();
        let gone = within(
            "connect as GONE",
            Client::builder(d.url(t))
                .pfn(GONE)
                .token_file(d.token_path(&gone_token))
                .reconnect(false)
                .connect(),
        )
        .await
        .unwrap();
        let mut gone_sub = gone.subscribe("reload.gone").await.unwrap();
        assert_flows(
            &gone,
            &mut feed,
            "reload.feed",
            &format!("{t:?} from GONE before"),
        )
        .await;

        d.reconfigure_packages("same-uid", &allowing(false))
            .unwrap_or_else(|e| panic!("{t:?}: valid reload refused: {e}"));

        // GONE's connection is closed: with reconnect off, its stream ends.
        let end = within(
            &format!("{t:?} GONE's subscription to end"),
            gone_sub.next(),
        )
        .await;
        assert!(end.is_none(), "{t:?}: got {end:?}");
        let e = gone.publish("reload.feed", "after").await.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Closed | ErrorKind::Disconnected),
            "{t:?}: {e}"
        );
        // And it cannot come back: its token proves a package that is gone.
        let e = d.try_connect_token(t, GONE, &gone_token).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
        // Others are untouched.
        let sender = d.connect_as(t, &Package::new(SENDER)).await;
        assert_flows(
            &sender,
            &mut feed,
            "reload.feed",
            &format!("{t:?} SENDER after"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_removed_package_with_reconnect_is_not_let_back_in() {
    let t = Transport::Unix;
    let d = TestDaemon::start_with_packages("same-uid", &allowing(true)).await;
    let gone = d.connect_as(t, &Package::new(GONE)).await;
    let gone_id = gone.client_id();
    let admin = d.connect_unpackaged(t).await;
    let listed = |doc: &serde_json::Value| {
        doc.as_array()
            .expect("clients is an array")
            .iter()
            .any(|c| c["pfn"] == GONE)
    };
    let clients = within("ctl clients", admin.ctl(CtlCommand::Clients))
        .await
        .unwrap();
    assert!(listed(&clients), "{clients}");

    d.reconfigure_packages("same-uid", &allowing(false))
        .unwrap();
    // Waits for a state, bounded; each try is a ctl round trip.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let clients = admin.ctl(CtlCommand::Clients).await.unwrap();
        if !listed(&clients) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GONE (client {gone_id}) still connected after the reload: {clients}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its SDK keeps trying to reconnect, and each try fails its proof: a
    // fresh claim with the same token shows what those tries get.
    let e = d
        .try_connect_token(t, GONE, &Package::new(GONE).token_rel())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
    let clients = admin.ctl(CtlCommand::Clients).await.unwrap();
    assert!(!listed(&clients), "GONE got back in: {clients}");
    drop(gone);
}

#[tokio::test]
async fn an_invalid_reload_is_refused_with_its_line_and_changes_nothing() {
    for t in Transport::ALL {
        let d = TestDaemon::start_with_packages("same-uid", &allowing(false)).await;
        let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
        let sender = d.connect_as(t, &Package::new(SENDER)).await;
        let mut sub = receiver.subscribe("reload.feed").await.unwrap();
        answer_with_caller(receiver.serve("reload.svc").await.unwrap(), "receiver");
        let good = std::fs::read_to_string(d.config_path()).unwrap();

        // A file that would revoke the rule, were it not for a bad value.
        let mut text = config_toml("same-uid", &revoked());
        text = text.replace("exempt_in = false", "exempt_in = \"yes\"");
        let bad_line = line_of(&text, "exempt_in = \"yes\"");
        let e = d
            .reconfigure(&text)
            .expect_err("a bad value must be refused");
        assert!(
            names_line(&e, bad_line),
            "{t:?}: no line {bad_line} in {e:?}"
        );
        assert!(e.contains("boolean"), "{t:?}: the reason is missing: {e:?}");
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after a bad value"),
        )
        .await;

        // An unknown key: refused on its line.
        let mut text = config_toml("same-uid", &revoked());
        text = text.replace("loopback = true", "loopbak = true");
        let bad_line = line_of(&text, "loopbak");
        let e = d
            .reconfigure(&text)
            .expect_err("an unknown key must be refused");
        assert!(
            names_line(&e, bad_line),
            "{t:?}: no line {bad_line} in {e:?}"
        );
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after an unknown key"),
        )
        .await;

        // A malformed PFN in a rule.
        let text = config_toml("same-uid", &revoked()).replace(
            "out = [\"Reload.Receiver_8wekyb3d8bbwe\"]",
            "out = [\"Reload Receiver\"]",
        );
        assert!(text.contains("Reload Receiver"));
        let bad_line = line_of(&text, "Reload Receiver");
        let e = d
            .reconfigure(&text)
            .expect_err("a malformed PFN must be refused");
        assert!(
            names_line(&e, bad_line),
            "{t:?}: no line {bad_line} in {e:?}"
        );

        // A token file others can read: refused, whole.
        let mut packages = revoked();
        packages.push(Package::new(GONE));
        let text = config_toml("same-uid", &packages);
        d.write_token(
            &Package::new(GONE).token_rel(),
            "the secret of a package gone",
        );
        let path = d.token_path(&Package::new(GONE).token_rel());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let e = d
            .reconfigure(&text)
            .expect_err("a readable token must be refused");
        assert!(e.contains("Reload.Gone_8wekyb3d8bbwe.key"), "{t:?}: {e:?}");
        let e2 = d
            .try_connect_token(t, GONE, &Package::new(GONE).token_rel())
            .await
            .unwrap_err();
        assert_eq!(
            e2.kind(),
            ErrorKind::AuthFailed,
            "{t:?}: the refused file's package was let in"
        );

        // A syntax error.
        let e = d
            .reconfigure("[daemon\nunpackaged = \"open\"\n")
            .expect_err("syntax error");
        assert!(names_line(&e, 1), "{t:?}: {e:?}");

        // Through all of that the first rules stayed in force.
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after all refusals"),
        )
        .await;
        let resp = within("request after refusals", sender.request("reload.svc", "?"))
            .await
            .unwrap();
        assert_eq!(resp.status, Status::Success, "{t:?}");
        // And the good file reloads again.
        d.reconfigure(&good)
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after good reload"),
        )
        .await;
    }
}

#[tokio::test]
async fn ctl_reload_applies_new_rules_for_an_admin() {
    for t in Transport::ALL {
        let d = TestDaemon::start_with_packages("same-uid", &allowing(true)).await;
        let gone = d.connect_as(t, &Package::new(GONE)).await;
        let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
        let sender = d.connect_as(t, &Package::new(SENDER)).await;
        let mut sub = receiver.subscribe("reload.feed").await.unwrap();
        answer_with_caller(receiver.serve("reload.svc").await.unwrap(), "receiver");
        // The test runs as the daemon's own uid: an admin.
        let admin = d.connect_unpackaged(t).await;

        d.rewrite_config(&config_toml("same-uid", &revoked()));
        let doc = within("ctl reload", admin.ctl(CtlCommand::Reload))
            .await
            .unwrap_or_else(|e| panic!("{t:?}: ctl reload: {e}"));
        assert_eq!(doc["packages"], 2, "{t:?}: {doc}");
        assert_eq!(
            doc["disconnected"], 1,
            "{t:?}: GONE's one connection: {doc}"
        );
        drop(gone);
        assert_blocked(
            &sender,
            &receiver,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after ctl reload"),
        )
        .await;
        let e = within(
            "request after ctl reload",
            sender.request("reload.svc", "?"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");

        // An invalid file through ctl: an error naming the line; rules unchanged.
        let text =
            config_toml("same-uid", &allowing(false)).replace("loopback = true", "loopback = 3");
        let bad_line = line_of(&text, "loopback = 3");
        d.rewrite_config(&text);
        let e = within("ctl reload of a bad file", admin.ctl(CtlCommand::Reload))
            .await
            .expect_err("a bad file must be refused");
        assert!(
            names_line(&e.to_string(), bad_line),
            "{t:?}: no line {bad_line} in {e}"
        );
        // A sentence, not the JSON it travelled in.
        assert_eq!(e.kind(), ErrorKind::Refused, "{t:?}: {e}");
        assert!(!e.to_string().contains("{\"error\""), "{t:?}: {e}");
        assert_blocked(
            &sender,
            &receiver,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after bad ctl reload"),
        )
        .await;

        d.rewrite_config(&config_toml("same-uid", &allowing(false)));
        within("ctl reload, granting again", admin.ctl(CtlCommand::Reload))
            .await
            .unwrap_or_else(|e| panic!("{t:?}: ctl reload: {e}"));
        assert_flows(
            &sender,
            &mut sub,
            "reload.feed",
            &format!("{t:?} after ctl re-grant"),
        )
        .await;
    }
}

#[tokio::test]
async fn sighup_reloads_the_rules_of_a_daemon_process() {
    use busd_e2e::DaemonProcess;
    use busd_e2e::access::write_config_dir;

    let conf = tempfile::tempdir().unwrap();
    let path = write_config_dir(conf.path(), "same-uid", &allowing(false));
    let d = DaemonProcess::spawn(&["--config", path.to_str().unwrap()]);
    let connect = |pfn: &'static str| {
        Client::builder(d.unix_url.clone())
            .pfn(pfn)
            .token_file(conf.path().join(Package::new(pfn).token_rel()))
            .connect()
    };
    let receiver = within("connect RECEIVER", connect(RECEIVER)).await.unwrap();
    let sender = within("connect SENDER", connect(SENDER)).await.unwrap();
    answer_with_caller(receiver.serve("reload.svc").await.unwrap(), "receiver");
    within("request before", sender.request("reload.svc", "?"))
        .await
        .unwrap();

    write_config_dir(conf.path(), "same-uid", &revoked());
    d.signal(rustix::process::Signal::HUP);
    // The signal is handled asynchronously: wait, bounded, for its effect.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match sender.request("reload.svc", "?").await {
            Err(e) if e.kind() == ErrorKind::NotAuthorized => break,
            Ok(_) => {}
            Err(e) => panic!("unexpected answer while waiting for the reload: {e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not apply the new rules within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dry_run_lists_exactly_what_the_reload_then_does() {
    let t = Transport::Unix;
    let d = TestDaemon::start_with_packages("same-uid", &allowing(true)).await;
    let gone = d.connect_as(t, &Package::new(GONE)).await;
    let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
    let sender = d.connect_as(t, &Package::new(SENDER)).await;
    let _sub = receiver.subscribe("reload.feed").await.unwrap();
    let admin = d.connect_unpackaged(t).await;
    let id = |c: &Client| serde_json::json!(c.client_id());

    // The file unchanged: nothing would be cut.
    let doc = within("dry run", admin.ctl(CtlCommand::ReloadDryRun(None)))
        .await
        .unwrap();
    assert_eq!(doc["cuts"], false, "{doc}");
    assert_eq!(doc["would_close"], serde_json::json!([]), "{doc}");

    // RECEIVER stops accepting SENDER, and GONE goes: rehearsed first.
    d.rewrite_config(&config_toml("same-uid", &revoked()));
    let doc = within("dry run", admin.ctl(CtlCommand::ReloadDryRun(None)))
        .await
        .unwrap();
    assert_eq!(doc["cuts"], true, "{doc}");
    let closed: Vec<_> = doc["would_close"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(closed, [id(&gone)], "{doc}");
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{doc}");
    assert_eq!(changes[0]["client"]["id"], id(&receiver), "{doc}");
    assert_eq!(changes[0]["subject"], "reload.feed", "{doc}");
    let stops: Vec<_> = changes[0]["stops_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(
        stops,
        [id(&sender)],
        "GONE is closed, not listed twice: {doc}"
    );
    // Nothing was applied: SENDER still reaches RECEIVER, GONE is served.
    gone.flush()
        .await
        .expect("GONE still connected after a dry run");

    // The real reload closes exactly the connections the dry run named.
    let report = within("ctl reload", admin.ctl(CtlCommand::Reload))
        .await
        .unwrap();
    assert_eq!(report["disconnected"], closed.len(), "{report}");
    let listed = |doc: &serde_json::Value, c: &Client| {
        doc.as_array().unwrap().iter().any(|x| x["id"] == id(c))
    };
    // Polled, bounded: the reload closes the connection as it returns.
    within("GONE's connection closed by the reload", async {
        loop {
            let clients = admin.ctl(CtlCommand::Clients).await.unwrap();
            if !listed(&clients, &gone) {
                assert!(
                    listed(&clients, &sender) && listed(&clients, &receiver),
                    "{clients}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    sender.flush().await.expect("SENDER stays");
    receiver.flush().await.expect("RECEIVER stays");
}
