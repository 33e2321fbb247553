//! The router's rules, driven without sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use busd_core::{RequestError, Router, RouterLimits, Target};
use busd_policy::{Identity, PackageRules, Policy, UnpackagedMode};
use busd_proto::{ErrorCode, Overflow, Pfn, Status, Subject};

fn subject(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

/// A router whose handles are just the connection ids.
/// A request read now, due by `deadline`.
fn at(deadline: Instant) -> (Instant, Instant) {
    (Instant::now(), deadline)
}

fn sut() -> Router<u64> {
    Router::new(
        Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid)),
        RouterLimits::default(),
    )
}

fn user(uid: u32) -> Identity {
    Identity::unpackaged(Some(uid))
}

fn publish(r: &mut Router<u64>, from: u64, s: &str) -> Vec<(u64, u64)> {
    let mut out: Vec<Target<u64>> = Vec::new();
    r.publish(from, &subject(s), &mut out);
    let mut got: Vec<(u64, u64)> = out.iter().map(|t| (t.handle, t.sid)).collect();
    got.sort_unstable();
    got
}

#[test]
fn wildcards_reach_every_matching_subscription() {
    let mut r = sut();
    for c in 1..=3 {
        r.connect(c, user(1000), c).unwrap();
    }
    r.subscribe(2, 1, subject("weather.*.paris"), None, Overflow::default())
        .unwrap();
    r.subscribe(2, 2, subject("weather.>"), None, Overflow::default())
        .unwrap();
    r.subscribe(
        3,
        1,
        subject("weather.today.paris"),
        None,
        Overflow::default(),
    )
    .unwrap();
    r.subscribe(3, 2, subject("news.>"), None, Overflow::default())
        .unwrap();
    assert_eq!(
        publish(&mut r, 1, "weather.today.paris"),
        vec![(2, 1), (2, 2), (3, 1)]
    );
    assert_eq!(publish(&mut r, 1, "weather.today"), vec![(2, 2)]);
    assert!(r.unsubscribe(2, 2));
    assert_eq!(publish(&mut r, 1, "weather.today"), vec![]);
    assert_eq!(r.stats().delivered, 4);
}

#[test]
fn queue_group_members_take_turns() {
    let mut r = sut();
    for c in 1..=4 {
        r.connect(c, user(1000), c).unwrap();
    }
    for c in 2..=4 {
        r.subscribe(
            c,
            9,
            subject("jobs.>"),
            Some("workers".into()),
            Overflow::default(),
        )
        .unwrap();
    }
    r.subscribe(1, 1, subject("jobs.new"), None, Overflow::default())
        .unwrap();
    let mut counts = [0usize; 5];
    for _ in 0..30 {
        let got = publish(&mut r, 1, "jobs.new");
        assert_eq!(got.len(), 2, "one plain subscriber and one group member");
        assert!(got.contains(&(1, 1)));
        for (c, _) in got.into_iter().filter(|(c, _)| *c != 1) {
            counts[c as usize] += 1;
        }
    }
    assert_eq!(&counts[2..], &[10, 10, 10]);
}

#[test]
fn other_users_are_not_reached_under_same_uid() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1001), 2).unwrap();
    r.subscribe(2, 1, subject("a"), None, Overflow::default())
        .unwrap();
    assert_eq!(publish(&mut r, 1, "a"), vec![]);
    assert_eq!(r.stats().denied, 1);
}

#[test]
fn group_skips_members_the_rules_forbid() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1001), 2).unwrap();
    r.connect(3, user(1000), 3).unwrap();
    r.subscribe(2, 1, subject("a"), Some("g".into()), Overflow::default())
        .unwrap();
    r.subscribe(3, 1, subject("a"), Some("g".into()), Overflow::default())
        .unwrap();
    for _ in 0..5 {
        assert_eq!(publish(&mut r, 1, "a"), vec![(3, 1)]);
    }
}

#[test]
fn requests_round_robin_and_answer_once() {
    let mut r = sut();
    for c in 1..=3 {
        r.connect(c, user(1000), c).unwrap();
    }
    let svc = subject("contoso.weather.forecast");
    r.serve(2, 5, svc.clone(), None).unwrap();
    r.serve(3, 6, svc.clone(), None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let a = r.request(1, 100, &svc, at(deadline)).unwrap();
    let b = r.request(1, 101, &svc, at(deadline)).unwrap();
    assert_ne!(a.responder, b.responder, "round robin");
    assert_eq!(a.from.client_id, 1, "sender stamped by the router");
    // Only the chosen responder may answer, and only once.
    assert!(r.respond(b.responder, a.call_id, Status::Success).is_none());
    let back = r.respond(a.responder, a.call_id, Status::Success).unwrap();
    assert_eq!((back.requester, back.rid), (1, 100));
    assert!(r.respond(a.responder, a.call_id, Status::Success).is_none());
    assert_eq!(r.stats().late_replies, 2);
    assert_eq!(r.pending_requests(), 1);
}

#[test]
fn no_responders_is_immediate() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    let err = r
        .request(1, 1, &subject("nobody.home"), at(Instant::now()))
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::NoResponders));
    r.connect(2, user(1001), 2).unwrap();
    r.serve(2, 1, subject("other.user"), None).unwrap();
    let err = r
        .request(1, 2, &subject("other.user"), at(Instant::now()))
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::NotAuthorized));
}

#[test]
fn requests_time_out_and_late_replies_are_dropped() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1000), 2).unwrap();
    r.serve(2, 1, subject("slow"), None).unwrap();
    let t0 = Instant::now();
    let call = r
        .request(1, 7, &subject("slow"), at(t0 + Duration::from_millis(100)))
        .unwrap();
    r.request(1, 8, &subject("slow"), at(t0 + Duration::from_millis(300)))
        .unwrap();
    assert_eq!(r.next_deadline(), Some(t0 + Duration::from_millis(100)));
    assert!(r.expire(t0 + Duration::from_millis(99)).is_empty());
    let expired = r.expire(t0 + Duration::from_millis(100));
    assert_eq!(expired.iter().map(|u| u.rid).collect::<Vec<_>>(), vec![7]);
    assert!(
        r.respond(2, call.call_id, Status::Success).is_none(),
        "too late"
    );
    assert_eq!(r.next_deadline(), Some(t0 + Duration::from_millis(300)));
    assert_eq!(r.stats().timeouts, 1);
}

#[test]
fn responder_gone_fails_its_calls_at_once() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1000), 2).unwrap();
    r.serve(2, 1, subject("svc"), None).unwrap();
    r.request(
        1,
        42,
        &subject("svc"),
        at(Instant::now() + Duration::from_secs(9)),
    )
    .unwrap();
    let gone = r.disconnect(2);
    assert_eq!(
        gone.iter()
            .map(|u| (u.requester, u.rid))
            .collect::<Vec<_>>(),
        vec![(1, 42)]
    );
    assert_eq!(r.next_deadline(), None);
    let err = r
        .request(1, 43, &subject("svc"), at(Instant::now()))
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(Status::NoResponders),
        "the service went with its only responder"
    );
}

#[test]
fn requester_gone_drops_the_later_reply() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1000), 2).unwrap();
    r.serve(2, 1, subject("svc"), None).unwrap();
    let call = r
        .request(1, 1, &subject("svc"), at(Instant::now()))
        .unwrap();
    assert!(r.disconnect(1).is_empty());
    assert!(r.respond(2, call.call_id, Status::Success).is_none());
}

/// Each routed request ends in exactly one counter, whichever way it ends.
#[test]
fn request_counters_balance() {
    let mut r = sut();
    for c in 1..=4 {
        r.connect(c, user(1000), c).unwrap();
    }
    r.serve(2, 1, subject("svc"), None).unwrap();
    r.serve(3, 1, subject("svc"), None).unwrap();
    let t0 = Instant::now();
    let soon = t0 + Duration::from_millis(10);
    let later = t0 + Duration::from_secs(9);
    let answered = r.request(1, 1, &subject("svc"), at(later)).unwrap();
    r.respond(answered.responder, answered.call_id, Status::Success)
        .unwrap();
    let _ = r.request(1, 2, &subject("svc"), at(soon)).unwrap();
    let _ = r.request(4, 3, &subject("svc"), at(later)).unwrap();
    let _ = r.request(1, 4, &subject("svc"), at(later)).unwrap();
    let _ = r.request(1, 5, &subject("svc"), at(later)).unwrap();
    assert_eq!(r.expire(soon).len(), 1);
    let _ = r.disconnect(4); // asked rid 3
    let _ = r.disconnect(2); // serves one of rids 4 and 5
    let s = r.stats();
    assert_eq!(
        (
            s.requests,
            s.replies,
            s.timeouts,
            s.requester_gone,
            s.responder_gone
        ),
        (5, 1, 1, 1, 1)
    );
    assert_eq!(r.pending_requests(), 1);
    let ended = s.replies + s.timeouts + s.requester_gone + s.responder_gone;
    assert_eq!(s.requests, ended + r.pending_requests() as u64);
}

#[test]
fn limits_per_identity() {
    let mut r = Router::new(
        Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid)),
        RouterLimits {
            max_connections: 2,
            max_subscriptions: 3,
            ..RouterLimits::default()
        },
    );
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1000), 2).unwrap();
    assert_eq!(
        r.connect(3, user(1000), 3).unwrap_err().code(),
        ErrorCode::LimitExceeded
    );
    r.connect(3, user(1001), 3).unwrap();
    r.subscribe(1, 1, subject("a"), None, Overflow::default())
        .unwrap();
    r.subscribe(2, 1, subject("a"), None, Overflow::default())
        .unwrap();
    r.serve(2, 2, subject("s"), None).unwrap();
    let err = r
        .subscribe(1, 2, subject("b"), None, Overflow::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    r.disconnect(2);
    r.subscribe(1, 2, subject("b"), None, Overflow::default())
        .unwrap();
    r.connect(4, user(1000), 4).unwrap();
}

#[test]
fn pending_requests_are_capped_per_connection_and_freed_by_answers() {
    let mut r = Router::new(
        Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid)),
        RouterLimits {
            max_pending_requests: 2,
            ..RouterLimits::default()
        },
    );
    for c in 1..=3 {
        r.connect(c, user(1000), c).unwrap();
    }
    r.serve(3, 1, subject("svc"), None).unwrap();
    let svc = subject("svc");
    let due = Instant::now() + Duration::from_secs(60);
    let first = r.request(1, 1, &svc, at(due)).unwrap();
    r.request(1, 2, &svc, at(due)).unwrap();
    let err = r.request(1, 3, &svc, at(due)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    assert_eq!(err.status(), None, "answered by an Error frame, not a Resp");
    assert!(
        matches!(&err, RequestError::TooManyRequests { identity, held: 2 } if *identity == user(1000)),
        "{err:?}"
    );
    assert_eq!(r.stats().requests_over_limit, 1);
    assert_eq!(r.pending_requests(), 2, "the refused request holds nothing");
    // Another connection of the same identity has its own budget.
    r.request(2, 1, &svc, at(due)).unwrap();
    // An answer makes room at once.
    r.respond(3, first.call_id, Status::Success).unwrap();
    r.request(1, 4, &svc, at(due)).unwrap();
    assert_eq!(r.stats().requests_over_limit, 1);
}

#[test]
fn sids_are_unique_per_connection_and_services_are_literal() {
    let mut r = sut();
    r.connect(1, user(1000), 1).unwrap();
    r.subscribe(1, 1, subject("a"), None, Overflow::default())
        .unwrap();
    let err = r.serve(1, 1, subject("s"), None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ProtocolViolation);
    let err = r.serve(1, 2, subject("s.*"), None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidSubject);
}

#[test]
fn packages_follow_the_mutual_rule() {
    let weather = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
    let maps = Pfn::parse("Fabrikam.Maps_1234567890abc").unwrap();
    let mut policy = Policy::unpackaged_only(UnpackagedMode::SameUid);
    policy.packages.insert(
        weather.clone(),
        PackageRules {
            loopback: true,
            send_to: [maps.clone()].into(),
            ..Default::default()
        },
    );
    policy.packages.insert(
        maps.clone(),
        PackageRules {
            loopback: true,
            accept_from: [weather.clone()].into(),
            ..Default::default()
        },
    );
    let mut r: Router<u64> = Router::new(Arc::new(policy), RouterLimits::default());
    r.connect(1, Identity::package(weather, None), 1).unwrap();
    r.connect(2, Identity::package(maps, None), 2).unwrap();
    r.subscribe(1, 1, subject("x"), None, Overflow::default())
        .unwrap();
    r.subscribe(2, 1, subject("x"), None, Overflow::default())
        .unwrap();
    assert_eq!(
        publish(&mut r, 1, "x"),
        vec![(1, 1), (2, 1)],
        "itself, and Maps"
    );
    assert_eq!(
        publish(&mut r, 2, "x"),
        vec![(2, 1)],
        "Maps may not send to Weather"
    );
}

#[test]
fn reload_revokes_live_routes_and_names_removed_packages() {
    let weather = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
    let maps = Pfn::parse("Fabrikam.Maps_1234567890abc").unwrap();
    let rules = |to: &Pfn, from: &Pfn| PackageRules {
        loopback: true,
        send_to: [to.clone()].into(),
        accept_from: [from.clone()].into(),
        ..Default::default()
    };
    let mut policy = Policy::unpackaged_only(UnpackagedMode::Deny);
    policy.packages.insert(weather.clone(), rules(&maps, &maps));
    policy
        .packages
        .insert(maps.clone(), rules(&weather, &weather));
    let mut r: Router<u64> = Router::new(Arc::new(policy.clone()), RouterLimits::default());
    r.connect(1, Identity::package(weather.clone(), None), 1)
        .unwrap();
    r.connect(2, Identity::package(maps.clone(), None), 2)
        .unwrap();
    r.subscribe(2, 1, subject("x"), None, Overflow::default())
        .unwrap();
    r.serve(2, 2, subject("svc"), None).unwrap();
    assert_eq!(publish(&mut r, 1, "x"), vec![(2, 1)]);

    // Maps stops accepting from Weather: the live subscription and service
    // are cut at once, and nobody is disconnected.
    policy.packages.insert(
        maps.clone(),
        PackageRules {
            loopback: true,
            ..Default::default()
        },
    );
    assert!(r.set_policy(Arc::new(policy.clone())).is_empty());
    assert_eq!(publish(&mut r, 1, "x"), vec![]);
    assert_eq!(
        r.request(1, 1, &subject("svc"), at(Instant::now()))
            .unwrap_err()
            .status(),
        Some(Status::NotAuthorized)
    );

    // Maps removed from the config: its connection must go.
    policy.packages.remove(&maps);
    assert_eq!(r.set_policy(Arc::new(policy)), vec![(2, 2)]);
}

#[test]
fn capability_gated_service_only_routes_capable_callers() {
    let weather = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
    let maps = Pfn::parse("Fabrikam.Maps_1234567890abc").unwrap();
    let mut policy = Policy::unpackaged_only(UnpackagedMode::Deny);
    let open = |peer: &Pfn, caps: &[&str]| PackageRules {
        loopback: true,
        send_to: [peer.clone()].into(),
        accept_from: [peer.clone()].into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        ..Default::default()
    };
    policy
        .packages
        .insert(weather.clone(), open(&maps, &["contoso.hsa"]));
    policy.packages.insert(maps.clone(), open(&weather, &[]));
    let mut r: Router<u64> = Router::new(Arc::new(policy), RouterLimits::default());
    r.connect(1, Identity::package(weather.clone(), None), 1)
        .unwrap();
    r.connect(2, Identity::package(maps.clone(), None), 2)
        .unwrap();
    r.connect(3, Identity::package(weather, None), 3).unwrap();
    r.serve(3, 1, subject("hsa"), Some("contoso.hsa".into()))
        .unwrap();
    r.serve(1, 1, subject("maps.only"), Some("contoso.hsa".into()))
        .unwrap();
    assert!(
        r.request(1, 1, &subject("hsa"), at(Instant::now())).is_ok(),
        "has it"
    );
    let err = r
        .request(2, 1, &subject("maps.only"), at(Instant::now()))
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(Status::NotAuthorized),
        "allowed by in/out, but lacks the capability"
    );
}

#[test]
fn a_relay_answers_names_nobody_serves_and_never_a_served_one() {
    let mut r = sut();
    for c in 1..=4 {
        r.connect(c, user(1000), c).unwrap();
    }
    r.serve_relay(2, 7, subject("svc.remote.>")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let relayed = r
        .request(1, 1, &subject("svc.remote.stock.get"), at(deadline))
        .unwrap();
    assert_eq!((relayed.responder, relayed.sid), (2, 7));
    // A name served here goes to its responder, not to the relay.
    r.serve(3, 1, subject("svc.remote.local"), None).unwrap();
    let local = r
        .request(1, 2, &subject("svc.remote.local"), at(deadline))
        .unwrap();
    assert_eq!(local.responder, 3);
    // Outside the pattern nobody answers.
    let err = r
        .request(1, 3, &subject("svc.other"), at(deadline))
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::NoResponders));
    // The rules decide as for any responder: another uid may not call it.
    r.connect(5, user(2000), 5).unwrap();
    let err = r
        .request(5, 1, &subject("svc.remote.x"), at(deadline))
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::NotAuthorized));
    // Gone with its registration.
    assert!(r.unsubscribe(2, 7));
    let err = r
        .request(1, 4, &subject("svc.remote.stock.get"), at(deadline))
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::NoResponders));
    // Plain `serve` still refuses wildcards.
    assert!(r.serve(4, 1, subject("svc.>"), None).is_err());
}

#[test]
fn a_relay_never_answers_for_a_configured_service() {
    let owner = Pfn::parse("Contoso.Stock_8wekyb3d8bbwe").unwrap();
    let text = format!(
        "[[package]]\npfn = \"{owner}\"\nloopback = true\nuids = [1000]\nexempt_in = true\nexempt_out = true\n\
         [[package.service]]\nname = \"svc.remote.stock\"\n"
    );
    let file = busd_policy::SourceFile::new("t.toml", &text, ".");
    let mut policy = Policy::from_toml(&file).unwrap().policy;
    policy.unpackaged = UnpackagedMode::SameUid;
    let mut r: Router<u64> = Router::new(Arc::new(policy), RouterLimits::default());
    r.connect(1, user(1000), 1).unwrap();
    r.connect(2, user(1000), 2).unwrap();
    r.serve_relay(2, 1, subject("svc.remote.>")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = r
        .request(1, 1, &subject("svc.remote.stock"), at(deadline))
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(Status::NoResponders),
        "its owner is not serving it, and no relay may stand in"
    );
    assert!(
        r.request(1, 2, &subject("svc.remote.other"), at(deadline))
            .is_ok()
    );
}
