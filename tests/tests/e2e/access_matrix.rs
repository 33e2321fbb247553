//! The LoopbackAccessRules matrix through a real daemon, on every transport:
//! A reaches B only if A.out lists B and B.in lists A, or A and B are the
//! same package; unpackaged clients reach packages only through the
//! package's `exempt_in` / `exempt_out`; `loopback = false` means nothing at
//! all. Checked for pub/sub, queue groups, requests and capability-gated
//! services, with the sender identity the daemon proved.
//!
//! Non-delivery is proven, never waited for: after the denied publish and
//! the publisher's flush, a marker the rules allow goes to the same
//! subscription and must be the next message it sees (or, where nothing may
//! reach the receiver, the receiver's own flush shows an empty queue).

use busd_client::{Client, ErrorKind, ServeOptions, Status};
use busd_e2e::access::{
    answer_with_caller, assert_nothing_delivered, client_tag, current_uid, next_call, next_msg,
    within,
};
use busd_e2e::{Package, TestDaemon, Transport};

const BOTH_S: &str = "Matrix.BothSender_8wekyb3d8bbwe";
const BOTH_R: &str = "Matrix.BothReceiver_8wekyb3d8bbwe";
const OUT_S: &str = "Matrix.OutSender_8wekyb3d8bbwe";
const OUT_R: &str = "Matrix.OutReceiver_8wekyb3d8bbwe";
const IN_S: &str = "Matrix.InSender_8wekyb3d8bbwe";
const IN_R: &str = "Matrix.InReceiver_8wekyb3d8bbwe";
const STRANGER_1: &str = "Matrix.Stranger1_8wekyb3d8bbwe";
const STRANGER_2: &str = "Matrix.Stranger2_8wekyb3d8bbwe";
const ALOOF_1: &str = "Matrix.Aloof1_1234567890abc";
const ALOOF_2: &str = "Matrix.Aloof2_1234567890abc";
const EXEMPT_IN: &str = "Matrix.ExemptIn_8wekyb3d8bbwe";
const EXEMPT_OUT: &str = "Matrix.ExemptOut_8wekyb3d8bbwe";
const SOLO: &str = "Matrix.Solo_8wekyb3d8bbwe";
const OFFLINE: &str = "Matrix.Offline_8wekyb3d8bbwe";
const PEER: &str = "Matrix.Peer_8wekyb3d8bbwe";
const HSA: &str = "Contoso.Hsa_8wekyb3d8bbwe";
const CAPABLE: &str = "Contoso.Capable_8wekyb3d8bbwe";
const INCAPABLE: &str = "Contoso.Incapable_8wekyb3d8bbwe";

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

async fn daemon() -> TestDaemon {
    TestDaemon::start_with_packages("same-uid", &packages()).await
}

/// Who a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Pkg(&'static str),
    Unpackaged,
}
use Who::{Pkg, Unpackaged};

impl Who {
    /// Whether a message from this identity to itself is allowed (the
    /// marker technique needs it).
    fn hears_itself(self) -> bool {
        self != Pkg(OFFLINE)
    }
}

async fn connect(d: &TestDaemon, t: Transport, who: Who) -> Client {
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

#[tokio::test]
async fn publish_obeys_the_matrix() {
    for t in Transport::ALL {
        let d = daemon().await;
        for f in FLOWS {
            let what = format!("{t:?} {}: {:?} -> {:?}", f.case, f.from, f.to);
            let subject = format!("matrix.pub.{}", f.case);
            let receiver = connect(&d, t, f.to).await;
            let sender = connect(&d, t, f.from).await;
            let mut sub = receiver.subscribe(subject.as_str()).await.unwrap();
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
async fn loopback_false_blocks_even_its_own_connection() {
    for t in Transport::ALL {
        let d = daemon().await;
        let offline = connect(&d, t, Pkg(OFFLINE)).await;
        let mut sub = offline.subscribe("matrix.self").await.unwrap();
        offline.publish("matrix.self", "to myself").await.unwrap();
        assert_nothing_delivered(
            &offline,
            &mut sub,
            &format!("{t:?} loopback=false to itself"),
        )
        .await;
        // Nor may it serve itself.
        let svc = offline.serve("matrix.self.svc").await.unwrap();
        answer_with_caller(svc, "offline");
        let e = within("self request", offline.request("matrix.self.svc", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
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

#[tokio::test]
async fn a_reply_gets_back_where_the_responder_may_not_send() {
    // BOTH_R accepts BOTH_S but may not send to it: its answer still arrives,
    // while a publish from BOTH_R to BOTH_S does not.
    for t in Transport::ALL {
        let d = daemon().await;
        let asker = connect(&d, t, Pkg(BOTH_S)).await;
        let responder = connect(&d, t, Pkg(BOTH_R)).await;
        let mut svc = responder.serve("matrix.reply").await.unwrap();
        let mut inbox = asker.subscribe("matrix.inbox").await.unwrap();
        let pending = {
            let asker = asker.clone();
            tokio::spawn(async move { asker.request("matrix.reply", "hi").await })
        };
        let call = next_call(&mut svc, "the call").await;
        assert_eq!(
            call.from.pfn.as_ref().map(ToString::to_string).as_deref(),
            Some(BOTH_S)
        );
        responder
            .publish("matrix.inbox", "not allowed")
            .await
            .unwrap();
        call.respond("allowed reply").await.unwrap();
        let resp = within("reply", pending).await.unwrap().unwrap();
        assert_eq!(&resp.payload[..], b"allowed reply", "{t:?}");
        asker.publish("matrix.inbox", "marker").await.unwrap();
        assert_eq!(
            &next_msg(&mut inbox, "marker").await.payload[..],
            b"marker",
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn a_queue_group_gives_everything_to_its_allowed_member() {
    const N: usize = 20;
    for t in Transport::ALL {
        let d = daemon().await;
        let sender = connect(&d, t, Pkg(BOTH_S)).await;
        let allowed = connect(&d, t, Pkg(BOTH_R)).await;
        let denied = connect(&d, t, Pkg(STRANGER_2)).await;
        let mut allowed_sub = allowed
            .queue_subscribe("matrix.jobs", "workers")
            .await
            .unwrap();
        let mut denied_sub = denied
            .queue_subscribe("matrix.jobs", "workers")
            .await
            .unwrap();
        for i in 0..N {
            sender.publish("matrix.jobs", format!("{i}")).await.unwrap();
        }
        within("sender flush", sender.flush()).await.unwrap();
        for i in 0..N {
            let m = next_msg(&mut allowed_sub, &format!("{t:?} job {i}")).await;
            assert_eq!(m.payload, format!("{i}").as_bytes(), "{t:?}");
            assert_eq!(
                m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
                Some(BOTH_S)
            );
        }
        // Each member's marker can only reach itself: it is the next
        // message each sees, so the denied member got none of the jobs and
        // the allowed one nothing extra.
        denied
            .publish("matrix.jobs", "denied marker")
            .await
            .unwrap();
        let m = next_msg(&mut denied_sub, &format!("{t:?} denied member marker")).await;
        assert_eq!(
            &m.payload[..],
            b"denied marker",
            "{t:?}: a job went to the denied member"
        );
        allowed
            .publish("matrix.jobs", "allowed marker")
            .await
            .unwrap();
        let m = next_msg(&mut allowed_sub, &format!("{t:?} allowed member marker")).await;
        assert_eq!(&m.payload[..], b"allowed marker", "{t:?}");
    }
}

#[tokio::test]
async fn a_service_picks_only_allowed_responders() {
    for t in Transport::ALL {
        let d = daemon().await;
        let asker = connect(&d, t, Pkg(BOTH_S)).await;
        let allowed = connect(&d, t, Pkg(BOTH_R)).await;
        let denied = connect(&d, t, Pkg(STRANGER_2)).await;
        answer_with_caller(denied.serve("matrix.pick").await.unwrap(), "denied");
        answer_with_caller(allowed.serve("matrix.pick").await.unwrap(), "allowed");
        answer_with_caller(denied.serve("matrix.pick").await.unwrap(), "denied");
        for i in 0..6 {
            let resp = within("pick", asker.request("matrix.pick", "?"))
                .await
                .unwrap();
            let body = String::from_utf8(resp.payload.to_vec()).unwrap();
            assert_eq!(
                body,
                format!("allowed|{}", client_tag(&asker)),
                "{t:?} call {i}"
            );
        }
        // Only denied responders left: NotAuthorized, not NoResponders.
        answer_with_caller(denied.serve("matrix.only.denied").await.unwrap(), "denied");
        let e = within("only denied", asker.request("matrix.only.denied", "?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
    }
}

#[tokio::test]
async fn a_capability_gated_service_answers_only_holders() {
    for t in Transport::ALL {
        let d = daemon().await;
        let hsa = connect(&d, t, Pkg(HSA)).await;
        let options = ServeOptions {
            require_capability: Some("contoso.hsa".into()),
        };
        answer_with_caller(
            hsa.serve_with("contoso.hsa.telemetry", options)
                .await
                .unwrap(),
            "hsa",
        );
        // An ungated service of the same package: both callers are allowed
        // by the in/out rules.
        answer_with_caller(hsa.serve("contoso.hsa.open").await.unwrap(), "open");

        let capable = connect(&d, t, Pkg(CAPABLE)).await;
        let resp = within(
            "capable call",
            capable.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap();
        let body = String::from_utf8(resp.payload.to_vec()).unwrap();
        assert_eq!(body, format!("hsa|{}", client_tag(&capable)), "{t:?}");

        let incapable = connect(&d, t, Pkg(INCAPABLE)).await;
        let resp = within(
            "incapable open call",
            incapable.request("contoso.hsa.open", "?"),
        )
        .await
        .unwrap_or_else(|e| panic!("{t:?}: the rules allow INCAPABLE -> HSA: {e}"));
        assert!(resp.is_success());
        let e = within(
            "incapable gated call",
            incapable.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");

        // Unpackaged callers hold no capability (and HSA is not exempt).
        let anon = connect(&d, t, Unpackaged).await;
        let e = within(
            "unpackaged gated call",
            anon.request("contoso.hsa.telemetry", "?"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
    }
}

const BY_UID: &str = "Proof.ByUid_8wekyb3d8bbwe";
const BY_EXE: &str = "Proof.ByExe_8wekyb3d8bbwe";
const WRONG_EXE: &str = "Proof.WrongExe_8wekyb3d8bbwe";
const WRONG_UID: &str = "Proof.WrongUid_8wekyb3d8bbwe";

fn proof_packages() -> Vec<Package> {
    let uid = current_uid();
    let me = std::env::current_exe().expect("test exe");
    let other = std::fs::canonicalize("/bin/sh").expect("/bin/sh exists");
    assert_ne!(me, other);
    vec![
        Package::new(BY_UID)
            .no_token()
            .peer(&[uid], &[])
            .sends_to(&[BY_EXE]),
        Package::new(BY_EXE)
            .no_token()
            .peer(&[uid], &[me])
            .accepts(&[BY_UID]),
        Package::new(WRONG_EXE).no_token().peer(&[uid], &[other]),
        Package::new(WRONG_UID)
            .no_token()
            .peer(&[uid.wrapping_add(1)], &[]),
    ]
}

#[tokio::test]
async fn peer_credentials_prove_a_package_on_every_transport() {
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    for t in Transport::ALL {
        let a = d
            .try_connect_peer(t, BY_UID)
            .await
            .unwrap_or_else(|e| panic!("{t:?}: uid proof: {e}"));
        assert_eq!(
            a.pfn().map(|p| p.to_string()).as_deref(),
            Some(BY_UID),
            "{t:?}"
        );
        let b = d
            .try_connect_peer(t, BY_UID)
            .await
            .unwrap_or_else(|e| panic!("{t:?}: uid proof: {e}"));
        let mut sub = b.subscribe("proof.uid").await.unwrap();
        a.publish("proof.uid", "by uid").await.unwrap();
        let m = next_msg(&mut sub, &format!("{t:?} same package by uid")).await;
        assert_eq!(m.from.client_id, a.client_id(), "{t:?}");
        assert_eq!(
            m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
            Some(BY_UID)
        );

        let e = d.try_connect_peer(t, WRONG_UID).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{t:?}: {e}");
        // A token claim for a package that has no token configured.
        d.write_token("tokens/guess.key", "a guessed secret");
        let e = d
            .try_connect_token(t, BY_UID, "tokens/guess.key")
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::AuthFailed,
            "{t:?}: token claim for a uid-only package: {e}"
        );
    }
}

#[tokio::test]
async fn executable_proof_on_the_unix_socket() {
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    let t = Transport::Unix;
    let by_exe = d
        .try_connect_peer(t, BY_EXE)
        .await
        .unwrap_or_else(|e| panic!("exe proof with this test's own executable: {e}"));
    assert_eq!(by_exe.pfn().map(|p| p.to_string()).as_deref(), Some(BY_EXE));
    let mut sub = by_exe.subscribe("proof.exe").await.unwrap();
    let by_uid = d.try_connect_peer(t, BY_UID).await.unwrap();
    by_uid.publish("proof.exe", "uid to exe").await.unwrap();
    let m = next_msg(&mut sub, "BY_UID -> BY_EXE").await;
    assert_eq!(m.from.client_id, by_uid.client_id());
    assert_eq!(
        m.from.pfn.as_ref().map(ToString::to_string).as_deref(),
        Some(BY_UID)
    );

    let e = d.try_connect_peer(t, WRONG_EXE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
}

#[tokio::test]
async fn executable_proof_cannot_pass_over_tcp() {
    // TCP tells the peer's uid, not its executable: an exe-pinned package
    // cannot be proven there.
    let d = TestDaemon::start_with_packages("same-uid", &proof_packages()).await;
    let e = d
        .try_connect_peer(Transport::Tcp, BY_EXE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
}

#[tokio::test]
async fn subscriptions_stream_only_what_is_allowed_under_load() {
    // Interleaved allowed and denied publishers on one subject: the
    // receiver sees exactly the allowed sequence, in order.
    const N: usize = 200;
    for t in Transport::ALL {
        let d = daemon().await;
        let receiver = connect(&d, t, Pkg(BOTH_R)).await;
        let good = connect(&d, t, Pkg(BOTH_S)).await;
        let bad = connect(&d, t, Pkg(OUT_S)).await;
        let mut sub = receiver.subscribe("matrix.mixed.>").await.unwrap();
        let send = |c: Client, tag: &'static str| async move {
            for i in 0..N {
                c.publish(format!("matrix.mixed.{tag}").as_str(), format!("{i}"))
                    .await
                    .unwrap();
            }
            c.flush().await.unwrap();
        };
        within("both publishers", async {
            tokio::join!(send(good, "good"), send(bad, "bad"))
        })
        .await;
        for i in 0..N {
            let m = next_msg(&mut sub, &format!("{t:?} good {i}")).await;
            assert_eq!(m.subject.as_str(), "matrix.mixed.good", "{t:?}");
            assert_eq!(m.payload, format!("{i}").as_bytes(), "{t:?}");
        }
        receiver.publish("matrix.mixed.marker", "m").await.unwrap();
        let m = next_msg(&mut sub, "marker").await;
        assert_eq!(
            m.subject.as_str(),
            "matrix.mixed.marker",
            "{t:?}: a denied message got through"
        );
    }
}
