//! `busd_fuzz::router::run` on scripts of calls, each connection named by
//! a byte as the fuzz target's inputs name them; and the bytes of a script
//! read back as the same script.

use busd_core::RouterLimits;
use busd_fuzz::router::{OVERFLOWS, Step, UIDS, input, parse, run};
use busd_proto::Subject;
use proptest::prelude::*;
use proptest::sample::select;

/// One to four tokens of `a` `b` `c`; in patterns also `*` and a last `>`.
fn subject(pattern: bool) -> impl Strategy<Value = Subject> {
    let token = select(if pattern {
        vec!["a", "b", "c", "*"]
    } else {
        vec!["a", "b", "c"]
    });
    (prop::collection::vec(token, 1..5), any::<bool>()).prop_map(move |(mut t, rest)| {
        if pattern && rest {
            t.push(">");
        }
        Subject::parse(t.join(".")).expect("a valid subject")
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => select(UIDS.to_vec()).prop_map(Step::Connect),
        3 => (any::<u8>(), 0_u8..4, subject(true), prop::option::of(0_u8..2), select(OVERFLOWS.to_vec()))
            .prop_map(|(conn, sid, pattern, queue, overflow)| Step::Subscribe {
                conn,
                sid,
                pattern,
                queue,
                overflow,
            }),
        1 => (any::<u8>(), 0_u8..4).prop_map(|(c, sid)| Step::Unsubscribe(c, sid)),
        3 => (any::<u8>(), subject(false)).prop_map(|(c, s)| Step::Publish(c, s)),
        3 => (any::<u8>(), subject(false)).prop_map(|(c, s)| Step::Route(c, s)),
        1 => any::<u8>().prop_map(Step::Disconnect),
    ]
}

fn limits() -> impl Strategy<Value = RouterLimits> {
    (1_usize..5, 1_usize..9).prop_map(|(max_connections, max_subscriptions)| RouterLimits {
        max_connections,
        max_subscriptions,
        ..RouterLimits::default()
    })
}

proptest! {
    #[test]
    fn routes_as_the_model_says(limits in limits(), steps in prop::collection::vec(step(), 1..60)) {
        run(limits, &steps);
    }

    #[test]
    fn a_script_reads_back_from_its_bytes(
        limits in limits(),
        steps in prop::collection::vec(step(), 0..20),
    ) {
        let (read, again) = parse(&input(limits, &steps));
        prop_assert_eq!((read.max_connections, read.max_subscriptions),
            (limits.max_connections, limits.max_subscriptions));
        prop_assert_eq!(again, steps);
    }
}
