//! The LoopbackAccessRules matrix through a real daemon, on every transport:
//! A reaches B only if A.out lists B and B.in lists A, or A and B are the
//! same package; unpackaged clients reach packages only through the
//! package's `exempt_in` / `exempt_out`; `loopback = false` means nothing at
//! all. Here are the matrix's packages, one flow per rule, and the flows
//! checked for pub/sub and requests, with the sender identity the daemon
//! proved; `access_routing` reuses the packages for queue groups, services
//! and the rest.
//!
//! Non-delivery is proven, never waited for: after the denied publish and
//! the publisher's flush, a marker the rules allow goes to the same
//! subscription and must be the next message it sees (or, where nothing may
//! reach the receiver, the receiver's own flush shows an empty queue).

use busd_client::{Client, CtlCommand, ErrorKind, Status};
use busd_e2e::access::{
    answer_with_caller, assert_nothing_delivered, client_tag, next_msg, within,
};
use busd_e2e::{Package, TestDaemon, Transport};

pub(crate) const BOTH_S: &str = "Matrix.BothSender_8wekyb3d8bbwe";
pub(crate) const BOTH_R: &str = "Matrix.BothReceiver_8wekyb3d8bbwe";
pub(crate) const OUT_S: &str = "Matrix.OutSender_8wekyb3d8bbwe";
pub(crate) const OUT_R: &str = "Matrix.OutReceiver_8wekyb3d8bbwe";
pub(crate) const IN_S: &str = "Matrix.InSender_8wekyb3d8bbwe";
pub(crate) const IN_R: &str = "Matrix.InReceiver_8wekyb3d8bbwe";
pub(crate) const STRANGER_1: &str = "Matrix.Stranger1_8wekyb3d8bbwe";
pub(crate) const STRANGER_2: &str = "Matrix.Stranger2_8wekyb3d8bbwe";
pub(crate) const ALOOF_1: &str = "Matrix.Aloof1_1234567890abc";
pub(crate) const ALOOF_2: &str = "Matrix.Aloof2_1234567890abc";
pub(crate) const EXEMPT_IN: &str = "Matrix.ExemptIn_8wekyb3d8bbwe";
pub(crate) const EXEMPT_OUT: &str = "Matrix.ExemptOut_8wekyb3d8bbwe";
pub(crate) const SOLO: &str = "Matrix.Solo_8wekyb3d8bbwe";
pub(crate) const OFFLINE: &str = "Matrix.Offline_8wekyb3d8bbwe";
pub(crate) const PEER: &str = "Matrix.Peer_8wekyb3d8bbwe";
pub(crate) const HSA: &str = "Contoso.Hsa_8wekyb3d8bbwe";
pub(crate) const CAPABLE: &str = "Contoso.Capable_8wekyb3d8bbwe";
pub(crate) const INCAPABLE: &str = "Contoso.Incapable_8wekyb3d8bbwe";

fn packages() -> Vec<Package> {
    vec![
        Package::new(BOTH_S).sends_to(&[BOTH_R]),
        Package::new(BOTH_R).accepts(&[BOTH_S]),
        Package::new(OUT_S).sends_to(&[OUT_R]),
        Package::new(OUT_R),
        Package::new(IN_S),
        Package::new(IN_R).accepts(&[IN_S]),
        Package::new(STRANGER_1),
        Package::new(STRANGER_2),
        // Each names other packages, never the other one.
        Package::new(ALOOF_1)
            .sends_to(&[BOTH_R, STRANGER_2])
            .accepts(&[BOTH_S, STRANGER_1]),
        Package::new(ALOOF_2)
            .sends_to(&[OUT_R, STRANGER_1])
            .accepts(&[IN_S, STRANGER_2]),
        Package::new(EXEMPT_IN).exempt_in(),
        Package::new(EXEMPT_OUT).exempt_out(),
        Package::new(SOLO),
        // Every rule would allow it, but it lacks loopback.
        Package::new(OFFLINE)
            .no_loopback()
            .sends_to(&[PEER, OFFLINE])
            .accepts(&[PEER, OFFLINE])
            .exempt_in()
            .exempt_out(),
        Package::new(PEER).sends_to(&[OFFLINE]).accepts(&[OFFLINE]),
        Package::new(HSA).accepts(&[CAPABLE, INCAPABLE]),
        Package::new(CAPABLE)
            .sends_to(&[HSA])
            .capability("contoso.hsa"),
        Package::new(INCAPABLE)
            .sends_to(&[HSA])
            .capability("contoso.other"),
    ]
}

/// A daemon with the matrix's packages.
pub(crate) async fn daemon() -> TestDaemon {
    TestDaemon::start_with_packages("same-uid", &packages()).await
}

/// Who a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Pkg(&'static str),
    Unpackaged,
}
pub(crate) use Who::{Pkg, Unpackaged};

impl Who {
    /// Whether a message from this identity to itself is allowed (the
    /// marker technique needs it).
    fn hears_itself(self) -> bool {
        self != Pkg(OFFLINE)
    }
}

/// A client of `d` over `t`, as `who`.
pub(crate) async fn connect(d: &TestDaemon, t: Transport, who: Who) -> Client {
    match who {
        Pkg(pfn) => d.connect_as(t, &Package::new(pfn)).await,
        Unpackaged => d.connect_unpackaged(t).await,
    }
}

/// One direction of the matrix.
struct Flow {
    case: &'static str,
    from: Who,
    to: Who,
    allowed: bool,
}

const fn flow(case: &'static str, from: Who, to: Who, allowed: bool) -> Flow {
    Flow {
        case,
        from,
        to,
        allowed,
    }
}

const FLOWS: &[Flow] = &[
    flow("both", Pkg(BOTH_S), Pkg(BOTH_R), true),
    flow("both-but-one-way", Pkg(BOTH_R), Pkg(BOTH_S), false),
    flow("out-only", Pkg(OUT_S), Pkg(OUT_R), false),
    flow("in-only", Pkg(IN_S), Pkg(IN_R), false),
    flow("neither", Pkg(STRANGER_1), Pkg(STRANGER_2), false),
    flow("unknown-to-each-other", Pkg(ALOOF_1), Pkg(ALOOF_2), false),
    flow(
        "unknown-to-each-other-back",
        Pkg(ALOOF_2),
        Pkg(ALOOF_1),
        false,
    ),
    flow("exempt-in", Unpackaged, Pkg(EXEMPT_IN), true),
    flow("exempt-in-sends-nothing", Pkg(EXEMPT_IN), Unpackaged, false),
    flow("exempt-out", Pkg(EXEMPT_OUT), Unpackaged, true),
    flow(
        "exempt-out-hears-nothing",
        Unpackaged,
        Pkg(EXEMPT_OUT),
        false,
    ),
    flow("no-exemption-in", Unpackaged, Pkg(STRANGER_1), false),
    flow("no-exemption-out", Pkg(STRANGER_1), Unpackaged, false),
    flow("same-package", Pkg(SOLO), Pkg(SOLO), true),
    flow("unpackaged-same-uid", Unpackaged, Unpackaged, true),
    flow("loopback-off-sends", Pkg(OFFLINE), Pkg(PEER), false),
    flow("loopback-off-receives", Pkg(PEER), Pkg(OFFLINE), false),
    flow("loopback-off-itself", Pkg(OFFLINE), Pkg(OFFLINE), false),
    flow("loopback-off-exempt-in", Unpackaged, Pkg(OFFLINE), false),
    flow("loopback-off-exempt-out", Pkg(OFFLINE), Unpackaged, false),
];

/// The rules the matrix's daemon runs with, read from its own file, as
/// `busd check-config --explain` reads them.
fn rules_of(d: &TestDaemon) -> busd_policy::Policy {
    let path = d.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap();
    let file = busd_policy::SourceFile::new(path.display().to_string(), &text, dir);
    busd_policy::Policy::from_toml(&file).unwrap().policy
}

impl Who {
    /// The identity the daemon proves for a client of this test as `self`.
    fn identity(self) -> busd_policy::Identity {
        match self {
            Pkg(pfn) => busd_policy::Identity::package(busd_proto::Pfn::parse(pfn).unwrap(), None),
            Unpackaged => {
                busd_policy::Identity::unpackaged(Some(rustix::process::getuid().as_raw()))
            }
        }
    }
}

#[tokio::test]
async fn publish_obeys_the_matrix() {
    let audit = busd_e2e::AuditLog::capture();
    for t in Transport::ALL {
        let d = daemon().await;
        let rules = rules_of(&d);
        // The test runs as the daemon's own uid: an admin.
        let admin = d.connect_unpackaged(t).await;
        for f in FLOWS {
            let what = format!("{t:?} {}: {:?} -> {:?}", f.case, f.from, f.to);
            // The explanation agrees with the delivery, and a denial's
            // audit record gives the same reason.
            let (from, to) = (f.from.identity(), f.to.identity());
            let decision = rules.decide(&from, &to);
            assert_eq!(decision.allowed, f.allowed, "{what}: {decision}");
            let reason = format!("reason={decision}");
            let audited_before = audit.matching(&["delivery denied", &reason]).len();
            let subject = format!("matrix.pub.{}", f.case);
            let receiver = connect(&d, t, f.to).await;
            let sender = connect(&d, t, f.from).await;
            let mut sub = receiver.subscribe(subject.as_str()).await.unwrap();
            // The running daemon, asked about these two live clients by
            // id (`busd ctl explain`), says the same.
            let asked = busd_client::ExplainQuery {
                from: sender.client_id().to_string(),
                to: Some(receiver.client_id().to_string()),
                ..Default::default()
            };
            let live = admin.ctl(CtlCommand::Explain(asked)).await.unwrap();
            assert_eq!(live["allowed"], f.allowed, "{what}: {live}");
            let said = live["explanation"].as_str().unwrap();
            assert!(
                said.ends_with(&decision.to_string()),
                "{what}: {said} / {decision}"
            );
            let denied_before = d.daemon().stats().denied;
            sender.publish(subject.as_str(), "probe").await.unwrap();
            within(&what, sender.flush()).await.unwrap();
            let denied = d.daemon().stats().denied - denied_before;
            if f.allowed {
                let m = next_msg(&mut sub, &what).await;
                assert_eq!(&m.payload[..], b"probe", "{what}");
                assert_eq!(m.from.client_id, sender.client_id(), "{what}: sender id");
                assert_eq!(m.from.pfn, sender.pfn(), "{what}: sender package");
                assert_eq!(denied, 0, "{what}: nothing counted as denied");
            } else {
                assert_eq!(denied, 1, "{what}: the denial is counted");
                let audited = audit.matching(&["delivery denied", &reason]).len();
                assert_eq!(audited, audited_before + 1, "{what}: {:?}", audit.lines());
                if f.to.hears_itself() {
                    receiver.publish(subject.as_str(), "marker").await.unwrap();
                    let m = next_msg(&mut sub, &format!("marker for {what}")).await;
                    assert_eq!(&m.payload[..], b"marker", "{what}: the probe was delivered");
                    assert_eq!(m.from.client_id, receiver.client_id(), "{what}");
                } else {
                    assert_nothing_delivered(&receiver, &mut sub, &what).await;
                }
            }
        }
    }
}

#[tokio::test]
async fn requests_obey_the_matrix() {
    for t in Transport::ALL {
        let d = daemon().await;
        for f in FLOWS {
            let what = format!("{t:?} {}: {:?} asks {:?}", f.case, f.from, f.to);
            let service = format!("matrix.req.{}", f.case);
            let responder = connect(&d, t, f.to).await;
            answer_with_caller(responder.serve(service.as_str()).await.unwrap(), "answer");
            let asker = connect(&d, t, f.from).await;
            let result = within(&what, asker.request(service.as_str(), "?")).await;
            if f.allowed {
                // The answer travels back even where the responder may not
                // send to the asker on its own.
                let resp = result.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(resp.status, Status::Success, "{what}");
                let body = String::from_utf8(resp.payload.to_vec()).unwrap();
                assert_eq!(
                    body,
                    format!("answer|{}", client_tag(&asker)),
                    "{what}: Request.from"
                );
            } else {
                let e = result.expect_err(&what);
                assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{what}: {e}");
                // Told why without a word about the responder's package.
                let said = e.to_string();
                assert!(
                    said.contains("the access rules do not let "),
                    "{what}: {said}"
                );
                if let Pkg(responder) = f.to {
                    assert!(
                        f.from == f.to || !said.contains(responder),
                        "{what}: {said}"
                    );
                }
            }
        }
        // Nobody serves it at all: NoResponders, for a package and for unpackaged.
        for who in [Pkg(BOTH_S), Unpackaged] {
            let asker = connect(&d, t, who).await;
            let e = within("request to nobody", asker.request("matrix.nobody", "?"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NoResponders, "{t:?} {who:?}: {e}");
        }
    }
}
