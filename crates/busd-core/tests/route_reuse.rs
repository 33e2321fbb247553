//! A publisher's kept route: used again only while nothing that decides
//! routes has changed, and counted as if the router had routed it.

use std::sync::Arc;

use busd_core::{Route, RouteEpoch, Router, RouterLimits};
use busd_policy::{Identity, Policy, UnpackagedMode};
use busd_proto::{Overflow, Subject};

fn subject(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

fn user(uid: u32) -> Identity {
    Identity::unpackaged(Some(uid))
}

/// A router under the same-uid rule, with connections 1..=n of uid 1000.
fn sut(n: u64) -> Router<u64> {
    let mut r = Router::new(
        Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid)),
        RouterLimits::default(),
    );
    for c in 1..=n {
        r.connect(c, user(1000), c).unwrap();
    }
    r
}

fn sub(r: &mut Router<u64>, conn: u64, sid: u64, s: &str, queue: Option<&str>) {
    r.subscribe(
        conn,
        sid,
        subject(s),
        queue.map(Into::into),
        Overflow::default(),
    )
    .unwrap();
}

/// A publisher as a daemon session drives it: its kept route if that is
/// still valid, the router otherwise.
struct Publisher {
    conn: u64,
    route: Route<u64>,
    epoch: Arc<RouteEpoch>,
}

impl Publisher {
    fn new(r: &Router<u64>, conn: u64) -> Self {
        Self {
            conn,
            route: Route::default(),
            epoch: r.epoch(),
        }
    }

    /// Whether the kept route was used, and the (conn, sid) reached.
    fn publish(&mut self, r: &mut Router<u64>, s: &str) -> (bool, Vec<(u64, u64)>) {
        let s = subject(s);
        let reused = self.route.reuse(&s, &self.epoch);
        if !reused {
            r.route(self.conn, &s, &mut self.route);
        }
        let mut got: Vec<(u64, u64)> = self
            .route
            .targets()
            .iter()
            .map(|t| (t.handle, t.sid))
            .collect();
        got.sort_unstable();
        self.route.release();
        (reused, got)
    }
}

#[test]
fn a_route_is_used_again_until_the_subscriptions_change() {
    let mut r = sut(3);
    let mut p = Publisher::new(&r, 1);
    sub(&mut r, 2, 1, "a.b", None);
    assert_eq!(p.publish(&mut r, "a.b"), (false, vec![(2, 1)]));
    assert_eq!(p.publish(&mut r, "a.b"), (true, vec![(2, 1)]));

    sub(&mut r, 3, 1, "a.*", None);
    assert_eq!(p.publish(&mut r, "a.b"), (false, vec![(2, 1), (3, 1)]));
    assert_eq!(p.publish(&mut r, "a.b"), (true, vec![(2, 1), (3, 1)]));

    assert!(r.unsubscribe(2, 1));
    assert_eq!(p.publish(&mut r, "a.b"), (false, vec![(3, 1)]));
    r.disconnect(3);
    assert_eq!(p.publish(&mut r, "a.b"), (false, vec![]));
    assert_eq!(p.publish(&mut r, "a.b"), (true, vec![]));

    // Three publishes went through the kept route: counted once settled.
    let stats = r.stats();
    assert_eq!((stats.published, stats.delivered), (4, 4));
    p.route.settle(&p.epoch);
    let stats = r.stats();
    assert_eq!((stats.published, stats.delivered), (7, 7));
    p.route.settle(&p.epoch);
    assert_eq!(r.stats().published, 7, "settled once");
}

#[test]
fn another_subject_or_a_reload_routes_afresh() {
    let mut r = sut(2);
    let mut p = Publisher::new(&r, 1);
    sub(&mut r, 2, 1, "a.*", None);
    assert_eq!(p.publish(&mut r, "a.b"), (false, vec![(2, 1)]));
    assert_eq!(p.publish(&mut r, "a.c"), (false, vec![(2, 1)]));
    assert_eq!(p.publish(&mut r, "a.c"), (true, vec![(2, 1)]));
    // Rules that deny the same delivery must be asked at once.
    r.set_policy(Arc::new(Policy::unpackaged_only(UnpackagedMode::Deny)));
    assert_eq!(p.publish(&mut r, "a.c"), (false, vec![]));
}

#[test]
fn queue_groups_and_denials_are_routed_every_time() {
    let mut r = sut(3);
    r.connect(4, user(2000), 4).unwrap();
    let mut p = Publisher::new(&r, 1);
    sub(&mut r, 2, 1, "jobs", Some("workers"));
    sub(&mut r, 3, 1, "jobs", Some("workers"));
    let (reused, first) = p.publish(&mut r, "jobs");
    assert!(!reused);
    let (reused, second) = p.publish(&mut r, "jobs");
    assert!(!reused);
    assert_ne!(first, second, "members take turns");

    // Each denied delivery is counted (and audited) on every publish.
    sub(&mut r, 4, 1, "alerts", None);
    sub(&mut r, 2, 2, "alerts", None);
    for _ in 0..3 {
        assert_eq!(p.publish(&mut r, "alerts"), (false, vec![(2, 2)]));
    }
    assert_eq!(r.stats().denied, 3);
}

#[test]
fn a_kept_route_lets_go_of_nothing_it_may_still_need() {
    let mut r = sut(2);
    let mut p = Publisher::new(&r, 1);
    sub(&mut r, 2, 1, "a", None);
    p.publish(&mut r, "a");
    assert_eq!(p.route.targets().len(), 1, "kept for the next publish");
    sub(&mut r, 2, 2, "g", Some("q"));
    p.publish(&mut r, "g");
    assert!(p.route.targets().is_empty(), "a one-off route is released");
}
