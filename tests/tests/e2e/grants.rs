//! Expiring grants (`busd ctl grant|grants|revoke`): a grant lets through
//! what the file denies until it expires or is revoked, is audited when
//! granted, first used, revoked and expired, and is kept over a reload.
//!
//! Paused time: a grant expires by the daemon's timer alone.

use std::time::Duration;

use busd_client::{Client, CtlCommand, GrantRequest};
use busd_e2e::access::{next_msg, within};
use busd_e2e::{AuditLog, Package, TestDaemon, Transport};

const SENDER: &str = "Grant.Sender_8wekyb3d8bbwe";
const RECEIVER: &str = "Grant.Receiver_8wekyb3d8bbwe";

/// Two packages the file keeps apart.
fn apart() -> Vec<Package> {
    vec![Package::new(SENDER), Package::new(RECEIVER)]
}

async fn grant(admin: &Client, seconds: u64) -> u64 {
    let req = GrantRequest {
        from: SENDER.into(),
        to: RECEIVER.into(),
        both_ways: false,
        seconds,
        reason: Some("incident 7".into()),
    };
    let doc = within("ctl grant", admin.ctl(CtlCommand::Grant(req)))
        .await
        .unwrap();
    doc["id"].as_u64().unwrap_or_else(|| panic!("{doc}"))
}

/// Whether a publish from `sender` reaches `sub` (the daemon's denial
/// count says when it did not: nothing is waited for).
async fn reaches(
    d: &TestDaemon,
    sender: &Client,
    sub: &mut busd_client::Subscriber,
    what: &str,
) -> bool {
    let denied_before = d.daemon().stats().denied;
    sender
        .publish("granted.feed", what.to_owned())
        .await
        .unwrap();
    within("flush", sender.flush()).await.unwrap();
    if d.daemon().stats().denied > denied_before {
        return false;
    }
    let m = next_msg(sub, what).await;
    assert_eq!(&m.payload[..], what.as_bytes());
    true
}

/// A daemon whose file keeps the two packages apart, a client of each
/// (the receiver subscribed), and an admin.
struct Setup {
    d: TestDaemon,
    sender: Client,
    _receiver: Client,
    sub: busd_client::Subscriber,
    admin: Client,
}

async fn setup() -> Setup {
    let d = TestDaemon::start_with_packages("same-uid", &apart()).await;
    let t = Transport::Unix;
    let sender = d.connect_as(t, &Package::new(SENDER)).await;
    let receiver = d.connect_as(t, &Package::new(RECEIVER)).await;
    let sub = receiver.subscribe("granted.feed").await.unwrap();
    let admin = d.connect_unpackaged(t).await;
    Setup {
        d,
        sender,
        _receiver: receiver,
        sub,
        admin,
    }
}

#[tokio::test(start_paused = true)]
async fn a_grant_lets_through_until_it_expires_with_three_audit_records() {
    let audit = AuditLog::capture();
    let mut s = setup().await;
    assert!(
        !reaches(&s.d, &s.sender, &mut s.sub, "before").await,
        "the file denies it"
    );

    let id = grant(&s.admin, 1).await;
    assert!(reaches(&s.d, &s.sender, &mut s.sub, "granted").await);
    assert!(reaches(&s.d, &s.sender, &mut s.sub, "again").await);
    let grants = s.admin.ctl(CtlCommand::Grants).await.unwrap();
    assert_eq!(grants[0]["id"], id, "{grants}");
    assert_eq!(grants[0]["reason"], "incident 7", "{grants}");
    let explained = s
        .admin
        .ctl(CtlCommand::Explain(busd_client::ExplainQuery {
            from: SENDER.into(),
            to: Some(RECEIVER.into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let text = explained["explanation"].as_str().unwrap();
    assert!(
        text.contains(&format!("allowed: grant {id} (busd ctl grant) until ")),
        "{text}"
    );

    // Past its second: the daemon's timer removes it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !reaches(&s.d, &s.sender, &mut s.sub, "expired").await,
        "denied again"
    );
    let grants = s.admin.ctl(CtlCommand::Grants).await.unwrap();
    assert_eq!(grants, serde_json::json!([]));
    let grant_id = format!("grant={id}");
    for record in ["grant added", "grant used", "grant expired"] {
        let found = audit.matching(&[record, &grant_id]);
        assert_eq!(found.len(), 1, "{record}: {:?}", audit.lines());
    }
}

#[tokio::test]
async fn a_grant_survives_a_reload_and_ends_when_revoked() {
    let audit = AuditLog::capture();
    let mut s = setup().await;
    let id = grant(&s.admin, 3600).await;

    // A reload of the file: rehearsed as cutting nothing, then applied.
    let rehearsal = s.admin.ctl(CtlCommand::ReloadDryRun(None)).await.unwrap();
    assert_eq!(rehearsal["cuts"], false, "{rehearsal}");
    assert_eq!(
        rehearsal["grants_kept"],
        serde_json::json!([id]),
        "{rehearsal}"
    );
    s.admin.ctl(CtlCommand::Reload).await.unwrap();
    assert!(reaches(&s.d, &s.sender, &mut s.sub, "after reload").await);

    s.admin.ctl(CtlCommand::Revoke(id)).await.unwrap();
    assert!(!reaches(&s.d, &s.sender, &mut s.sub, "revoked").await);
    let again = s.admin.ctl(CtlCommand::Revoke(id)).await.unwrap_err();
    assert!(
        again.to_string().contains(&format!("no grant {id}")),
        "{again}"
    );
    assert_eq!(
        audit
            .matching(&["grant revoked", &format!("grant={id}")])
            .len(),
        1
    );
}
