//! Publish cost against the number of unrelated subscriptions.
//!
//! DESIGN: subject matching costs O(tokens) per publish, not
//! O(subscriptions). Each case routes to one subscriber while 10 or
//! 100,000 subscriptions on unrelated subjects exist; `cached` publishes
//! one subject again and again (the match cache answers), `uncached`
//! cycles through more subjects than the cache holds, so every publish
//! walks the trie; `reused` is a daemon session's publish to the same
//! subject again, through its kept [`Route`] (see `busd_core::route`).

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;

use busd_core::{Route, Router, RouterLimits, Target};
use busd_policy::{Identity, Policy, UnpackagedMode};
use busd_proto::{Overflow, Subject};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// More distinct subjects than the router's match cache keeps.
const UNCACHED_SUBJECTS: usize = 8192;

/// Connection 1 publishes; connection 2 holds `weather.*.>`, which every
/// published subject matches; connection 3 holds `unrelated` others.
fn router(unrelated: usize) -> Router<u64> {
    let mut r = Router::new(
        Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid)),
        RouterLimits::default(),
    );
    for conn in 1..=3 {
        r.connect(conn, Identity::unpackaged(Some(1000)), conn)
            .expect("connect");
    }
    let sub = |s: &str| Subject::parse(s).expect("subject");
    r.subscribe(2, 1, sub("weather.*.>"), None, Overflow::default())
        .expect("subscribe");
    for i in 0..unrelated {
        let subject = sub(&format!("sensors.room{}.t{}", i % 1000, i / 1000));
        r.subscribe(3, i as u64 + 10, subject, None, Overflow::default())
            .expect("subscribe");
    }
    r
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_publish");
    let cycle: Vec<Subject> = (0..UNCACHED_SUBJECTS)
        .map(|i| Subject::parse(format!("weather.city{i}.today")).expect("subject"))
        .collect();
    for unrelated in [10, 100_000] {
        let mut r = router(unrelated);
        let mut out: Vec<Target<u64>> = Vec::with_capacity(4);
        let hot = Subject::from_static("weather.paris.today");
        group.bench_with_input(BenchmarkId::new("cached", unrelated), &hot, |b, s| {
            b.iter(|| {
                out.clear();
                r.publish(1, black_box(s), &mut out);
                assert_eq!(out.len(), 1);
            });
        });
        let epoch = r.epoch();
        let mut route = Route::default();
        group.bench_with_input(BenchmarkId::new("reused", unrelated), &hot, |b, s| {
            b.iter(|| {
                if !route.reuse(black_box(s), &epoch) {
                    r.route(1, s, &mut route);
                }
                assert_eq!(route.targets().len(), 1);
            });
        });
        let mut i = 0;
        group.bench_function(BenchmarkId::new("uncached", unrelated), |b| {
            b.iter(|| {
                out.clear();
                i = (i + 1) % cycle.len();
                r.publish(1, black_box(&cycle[i]), &mut out);
                assert_eq!(out.len(), 1);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
