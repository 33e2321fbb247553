//! The per-connection protocol, sans-IO: handshakes, the checks on each
//! operation and request deadlines, driven through in-memory pairs.

mod pair;

use std::time::Duration;

use std::time::Instant;

use busd_core::{MAX_REQUEST_TIMEOUT, Peer, ProtocolError, Session};
use busd_policy::{PackageRules, Policy, Proofs, Token, UnpackagedMode};
use busd_proto::{
    AuthKind, ErrorCode, Hello, Op, Overflow, PROTOCOL_VERSION, Pfn, Ref, Status, Subject, auth_mac,
};

use pair::{NONCE, Pair, resp};

const UID: u32 = 1000;

fn subject(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

fn weather() -> Pfn {
    Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap()
}

fn hello(pfn: Option<Pfn>, auth: AuthKind) -> Op {
    Op::Hello(Hello {
        version: PROTOCOL_VERSION,
        pfn,
        name: "test".into(),
        auth,
        fds: false,
        set_pools: false,
    })
}

/// Weather, proven by the token `secret` or by uid 1000.
fn policy() -> Policy {
    let mut policy = Policy::unpackaged_only(UnpackagedMode::SameUid);
    let proofs = Proofs {
        token: Some(Token::new(b"secret".to_vec(), "weather.key")),
        uids: vec![UID],
        exe: Vec::new(),
    };
    let rules = PackageRules {
        loopback: true,
        proofs,
        ..Default::default()
    };
    policy.packages.insert(weather(), rules);
    policy
}

/// A pair with connections 1..=n open and welcomed as unpackaged clients.
fn welcomed(n: u64) -> Pair {
    let mut p = Pair::new(policy());
    for c in 1..=n {
        p.open(c, UID);
        p.send(c, hello(None, AuthKind::None));
        assert!(matches!(p.recv(c)[..], [Op::Welcome(_)]), "conn {c}");
    }
    p
}

fn error_code(ops: &[Op]) -> Vec<(ErrorCode, Option<Ref>)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Error { code, refers, .. } => Some((*code, *refers)),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_accepted_before_hello() {
    let mut p = Pair::new(policy());
    p.open(1, UID);
    p.send(
        1,
        Op::Sub {
            sid: 1,
            subject: subject("x"),
            queue: None,
            overflow: Overflow::default(),
        },
    );
    let got = p.recv(1);
    assert_eq!(error_code(&got), [(ErrorCode::ProtocolViolation, None)]);
    assert!(matches!(&got[0], Op::Error { message, .. } if message == "expected Hello, got Sub"));
    assert!(p.is_closed(1));
    // A closed session accepts nothing more, not even a good Hello.
    p.send(1, hello(None, AuthKind::None));
    assert_eq!(
        error_code(&p.recv(1)),
        [(ErrorCode::ProtocolViolation, None)]
    );
}

#[test]
fn another_protocol_version_is_refused() {
    let mut p = Pair::new(policy());
    p.open(1, UID);
    p.send(
        1,
        Op::Hello(Hello {
            version: PROTOCOL_VERSION + 1,
            pfn: None,
            name: "future".into(),
            auth: AuthKind::None,
            fds: false,
            set_pools: false,
        }),
    );
    assert_eq!(
        error_code(&p.recv(1)),
        [(ErrorCode::ProtocolViolation, None)]
    );
    assert!(p.is_closed(1));
}

#[test]
fn a_token_claim_is_challenged_and_proven_by_its_hmac() {
    let mut p = Pair::new(policy());
    p.open(1, 4242);
    p.send(1, hello(Some(weather()), AuthKind::Token));
    let challenge = p.recv(1);
    assert!(
        matches!(&challenge[..], [Op::Challenge { nonce }] if nonce.as_ref() == NONCE),
        "{challenge:?}"
    );
    let hmac = auth_mac(b"secret", &NONCE, &weather());
    p.send(
        1,
        Op::Auth {
            hmac: hmac.to_vec().into(),
        },
    );
    match &p.recv(1)[..] {
        [Op::Welcome(w)] => assert_eq!(w.pfn, Some(weather())),
        other => panic!("no welcome: {other:?}"),
    }
}

#[test]
fn a_wrong_hmac_or_a_second_hello_fails_the_claim() {
    let mut p = Pair::new(policy());
    p.open(1, UID);
    p.send(1, hello(Some(weather()), AuthKind::Token));
    p.recv(1);
    let wrong = auth_mac(b"guess", &NONCE, &weather());
    p.send(
        1,
        Op::Auth {
            hmac: wrong.to_vec().into(),
        },
    );
    assert_eq!(error_code(&p.recv(1)), [(ErrorCode::AuthFailed, None)]);
    assert!(p.is_closed(1));

    p.open(2, UID);
    p.send(2, hello(Some(weather()), AuthKind::Token));
    p.recv(2);
    p.send(2, hello(None, AuthKind::None));
    assert_eq!(
        error_code(&p.recv(2)),
        [(ErrorCode::ProtocolViolation, None)]
    );
    assert!(p.is_closed(2));
}

#[test]
fn a_peer_claim_needs_the_configured_uid() {
    let mut p = Pair::new(policy());
    p.open(1, UID);
    p.send(1, hello(Some(weather()), AuthKind::Peer));
    assert!(matches!(&p.recv(1)[..], [Op::Welcome(w)] if w.pfn == Some(weather())));
    p.open(2, UID + 1);
    p.send(2, hello(Some(weather()), AuthKind::Peer));
    assert_eq!(error_code(&p.recv(2)), [(ErrorCode::AuthFailed, None)]);
    // A claim with no proof at all, and a proof with no claim.
    p.open(3, UID);
    p.send(3, hello(Some(weather()), AuthKind::None));
    assert_eq!(error_code(&p.recv(3)), [(ErrorCode::AuthFailed, None)]);
    p.open(4, UID);
    p.send(4, hello(None, AuthKind::Token));
    assert_eq!(
        error_code(&p.recv(4)),
        [(ErrorCode::ProtocolViolation, None)]
    );
}

#[test]
fn an_unknown_package_and_a_failed_proof_get_the_same_answer() {
    // Weather configured with both proofs, with the uid proof only, and
    // not at all: each claim below is answered alike under the three.
    let mut uid_only = policy();
    if let Some(rules) = uid_only.packages.get_mut(&weather()) {
        rules.proofs.token = None;
    }
    let mut unknown = policy();
    unknown.packages.remove(&weather());
    let wrong_mac = auth_mac(b"guess", &NONCE, &weather());
    let answers = |policy: Policy| {
        let mut p = Pair::new(policy);
        // By peer credentials, from a uid the package does not name.
        p.open(1, UID + 1);
        p.send(1, hello(Some(weather()), AuthKind::Peer));
        let by_peer = p.recv(1);
        // By token: challenged, then refused for the MAC.
        p.open(2, UID);
        p.send(2, hello(Some(weather()), AuthKind::Token));
        let challenge = p.recv(2);
        p.send(
            2,
            Op::Auth {
                hmac: wrong_mac.to_vec().into(),
            },
        );
        (
            by_peer,
            challenge,
            p.recv(2),
            p.is_closed(1) && p.is_closed(2),
        )
    };
    let known = answers(policy());
    assert_eq!(
        error_code(&known.0),
        [(ErrorCode::AuthFailed, None)],
        "{known:?}"
    );
    assert!(matches!(&known.1[..], [Op::Challenge { .. }]), "{known:?}");
    assert_eq!(error_code(&known.2), [(ErrorCode::AuthFailed, None)]);
    assert!(
        matches!(&known.2[0], Op::Error { message, .. } if *message == format!("cannot prove package {}", weather())),
        "{known:?}"
    );
    assert!(known.3, "both refused connections close");
    assert_eq!(answers(uid_only), known, "a package without a token");
    assert_eq!(answers(unknown), known, "a package that is not configured");
}

#[test]
fn after_welcome_daemon_ops_close_the_connection() {
    let mut p = welcomed(1);
    p.send(1, Op::Pong);
    p.send(1, Op::Ping);
    assert_eq!(p.recv(1), [Op::Pong]);
    p.send(1, hello(None, AuthKind::None));
    let got = p.recv(1);
    assert_eq!(error_code(&got), [(ErrorCode::ProtocolViolation, None)]);
    assert!(matches!(&got[0], Op::Error { message, .. } if message.contains("after Welcome")));
    assert!(p.is_closed(1));
}

#[test]
fn publishing_to_a_wildcard_is_refused_and_the_connection_stays() {
    let mut p = welcomed(2);
    p.send(
        2,
        Op::Sub {
            sid: 9,
            subject: subject("weather.>"),
            queue: None,
            overflow: Overflow::default(),
        },
    );
    p.send(
        1,
        Op::Pub {
            subject: subject("weather.*"),
            headers: None,
        },
    );
    assert_eq!(error_code(&p.recv(1)), [(ErrorCode::InvalidSubject, None)]);
    assert!(p.recv(2).is_empty());
    p.send(
        1,
        Op::Pub {
            subject: subject("weather.today"),
            headers: None,
        },
    );
    assert!(!p.is_closed(1));
    assert!(matches!(&p.recv(2)[..], [Op::Msg { sid: 9, .. }]));
}

#[test]
fn a_responder_may_only_answer_success_or_failure() {
    let mut p = welcomed(2);
    serve(&mut p, 2, "svc");
    p.send(1, req(5, "svc", 1000));
    let Op::Call { rid: call_id, .. } = p.recv(2)[0].clone() else {
        panic!("no call");
    };
    p.send(
        2,
        Op::Resp {
            rid: call_id,
            status: Status::Timeout,
            headers: None,
        },
    );
    assert_eq!(
        error_code(&p.recv(2)),
        [(ErrorCode::ProtocolViolation, Some(Ref::Rid(call_id)))]
    );
    assert!(!p.is_closed(2), "a bad status is answered, not fatal");
    p.send(
        2,
        Op::Resp {
            rid: call_id,
            status: Status::Failure,
            headers: None,
        },
    );
    assert_eq!(p.recv(1), [resp(5, Status::Failure)]);
}

#[test]
fn requests_to_wildcard_services_are_refused_by_their_rid() {
    let mut p = welcomed(1);
    p.send(1, req(3, "svc.*", 1000));
    assert_eq!(
        error_code(&p.recv(1)),
        [(ErrorCode::InvalidSubject, Some(Ref::Rid(3)))]
    );
    assert!(!p.is_closed(1));
}

#[test]
fn request_timeouts_are_clamped_and_answered_when_due() {
    let mut p = welcomed(2);
    serve(&mut p, 2, "slow");
    // 0 ms is taken as 1 ms: due after 1 ms, not at once.
    p.send(1, req(1, "slow", 0));
    assert_eq!(
        p.woke_timer,
        Some(true),
        "the first deadline arms the timer"
    );
    p.advance(Duration::ZERO);
    assert!(p.recv(1).is_empty(), "not due at once");
    p.advance(Duration::from_millis(1));
    assert_eq!(p.recv(1), [resp(1, Status::Timeout)]);

    // Longer than the cap is cut to it.
    p.send(1, req(2, "slow", u32::MAX));
    p.advance(MAX_REQUEST_TIMEOUT - Duration::from_millis(1));
    assert!(p.recv(1).is_empty());
    p.advance(Duration::from_millis(1));
    assert_eq!(p.recv(1), [resp(2, Status::Timeout)]);
}

#[test]
fn only_an_earlier_deadline_wakes_the_request_timer() {
    let mut p = welcomed(2);
    serve(&mut p, 2, "svc");
    p.send(1, req(1, "svc", 500));
    assert_eq!(p.woke_timer, Some(true));
    p.send(1, req(2, "svc", 900));
    assert_eq!(p.woke_timer, Some(false), "later than the one armed");
    p.send(1, req(3, "svc", 100));
    assert_eq!(p.woke_timer, Some(true), "earlier than the one armed");
    p.advance(Duration::from_millis(100));
    assert_eq!(p.recv(1), [resp(3, Status::Timeout)]);
    // The timer re-armed for 500 ms: 700 is later.
    p.send(1, req(4, "svc", 600));
    assert_eq!(p.woke_timer, Some(false));
    p.advance(Duration::from_millis(400));
    assert_eq!(p.recv(1), [resp(1, Status::Timeout)]);
}

#[test]
fn requests_and_replies_mark_the_connection_as_exchanging() {
    let mut p = welcomed(2);
    serve(&mut p, 2, "svc");
    assert!(!p.is_exchanging(1));
    p.send(1, req(1, "svc", 1000));
    assert!(p.is_exchanging(1));
    p.send(
        1,
        Op::Pub {
            subject: subject("x"),
            headers: None,
        },
    );
    assert!(!p.is_exchanging(1), "a publish ends the exchange");
}

#[test]
fn a_publish_checked_in_place_gets_the_verdict_of_on_op() {
    let policy = policy();
    let peer = Peer {
        uid: Some(UID),
        ..Peer::default()
    };
    let open = || {
        let mut s = Session::new();
        s.on_handshake(hello(None, AuthKind::None), &policy, &peer)
            .unwrap();
        s
    };
    let publish = |s: &str| Op::Pub {
        subject: subject(s),
        headers: None,
    };
    for s in ["weather.today", "weather.*", "weather.>"] {
        let (mut by_op, mut in_place) = (open(), open());
        let verdict = by_op.on_op(publish(s), Instant::now).map(|_| ());
        assert_eq!(in_place.on_publish(&subject(s)), verdict, "{s}");
        assert_eq!(in_place.is_open(), by_op.is_open(), "{s}");
    }
    // Before Welcome both refuse it, and the session closes.
    let (mut by_op, mut in_place) = (Session::new(), Session::new());
    let verdict = by_op.on_op(publish("x"), Instant::now).map(|_| ());
    assert!(matches!(verdict, Err(ProtocolError::Unexpected { .. })));
    assert_eq!(in_place.on_publish(&subject("x")), verdict);
    assert_eq!(
        in_place.on_publish(&subject("x")),
        Err(ProtocolError::Closed)
    );
}

/// Connection `conn` serves `service` (sid 1).
fn serve(p: &mut Pair, conn: u64, service: &str) {
    let op = Op::Serve {
        sid: 1,
        service: subject(service),
        require_capability: None,
    };
    p.send(conn, op);
}

fn req(rid: u64, service: &str, timeout_ms: u32) -> Op {
    Op::Req {
        rid,
        service: subject(service),
        timeout_ms,
        headers: None,
    }
}
