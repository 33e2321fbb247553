//! busd-core's `Router` (its subject trie, match cache, queue groups,
//! limits and reusable routes) through its public API, against a model.
//!
//! Input: a byte of limits, then a script of [`Step`]s, each a byte and
//! its arguments (see [`Step::write`]): connect (uid 1000, 1001 or none),
//! subscribe (a pattern over the tokens `a` `b` `c` `*` and a last `>`,
//! maybe in queue group 0 or 1), unsubscribe, publish, route (a
//! publisher's reused route, as sessions keep it), disconnect. Connections
//! are picked among those open, or an unknown one.
//!
//! Checks: no panic; every call answers as the model says (limits, sids
//! in use, unknown connections); a publish reaches exactly the matching
//! subscriptions (`Subject::matches`, which the `subject` check holds to
//! the rule) the same-uid rule allows, and one allowed member of each
//! queue group; a route is reused only while it is still exactly that;
//! the counters (published, delivered, denied, connections,
//! subscriptions) add up.

use std::collections::HashMap;
use std::sync::Arc;

use busd_core::{Route, Router, RouterError, RouterLimits};
use busd_policy::{Identity, Policy, UnpackagedMode};
use busd_proto::{Overflow, Subject};

use crate::script::Reader;

mod model;

use model::{Model, Refused, Sub};

/// The tokens of subjects: the last, `*`, only in patterns.
const TOKENS: [&str; 4] = ["a", "b", "c", "*"];
/// Connecting users.
pub const UIDS: [Option<u32>; 3] = [Some(1000), Some(1001), None];
/// Overflow policies, by index.
pub const OVERFLOWS: [Overflow; 3] = [Overflow::Disconnect, Overflow::DropOldest, Overflow::Block];

/// One call on the router. Connections are named by a byte the model
/// resolves (`Model::pick`): with bit 7 set any id ever given (or not),
/// else an open connection or an unknown one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new connection of this user (one of [`UIDS`]).
    Connect(Option<u32>),
    /// A subscription (`sid` below 4), perhaps in queue group 0 or 1.
    Subscribe {
        /// Who subscribes.
        conn: u8,
        /// Its id for the subscription.
        sid: u8,
        /// Over [`TOKENS`], perhaps with a last `>`.
        pattern: Subject,
        /// Queue group `q0` or `q1`.
        queue: Option<u8>,
        /// What it asks for when its queue is full.
        overflow: Overflow,
    },
    /// Drops a connection's subscription.
    Unsubscribe(u8, u8),
    /// A publish routed afresh.
    Publish(u8, Subject),
    /// A publish through the publisher's kept route, reused if it may be.
    Route(u8, Subject),
    /// The connection goes.
    Disconnect(u8),
}

impl Step {
    /// Reads one step: a byte (modulo 6) choosing it, then its arguments.
    fn read(r: &mut Reader<'_>) -> Self {
        match r.byte() % 6 {
            0 => Self::Connect(UIDS[usize::from(r.byte()) % 3]),
            1 => Self::Subscribe {
                conn: r.byte(),
                sid: r.byte() % 4,
                pattern: read_subject(r, true),
                queue: match r.byte() % 3 {
                    2 => None,
                    q => Some(q),
                },
                overflow: OVERFLOWS[usize::from(r.byte()) % 3],
            },
            2 => Self::Unsubscribe(r.byte(), r.byte() % 4),
            3 => Self::Publish(r.byte(), read_subject(r, false)),
            4 => Self::Route(r.byte(), read_subject(r, false)),
            _ => Self::Disconnect(r.byte()),
        }
    }

    /// Appends the bytes [`read`](Self::read) reads back as this step.
    ///
    /// # Panics
    /// For a user not in [`UIDS`], a subject not over [`TOKENS`] (of one
    /// to four, perhaps a last `>`), or a queue group or sid out of range.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Connect(uid) => out.extend([0, index(&UIDS, uid)]),
            Self::Subscribe {
                conn,
                sid,
                pattern,
                queue,
                overflow,
            } => {
                assert!(*sid < 4 && queue.is_none_or(|q| q < 2));
                out.extend([1, *conn, *sid]);
                write_subject(pattern, out);
                out.extend([queue.unwrap_or(2), index(&OVERFLOWS, overflow)]);
            }
            Self::Unsubscribe(conn, sid) => out.extend([2, *conn, *sid]),
            Self::Publish(conn, subject) | Self::Route(conn, subject) => {
                out.extend([
                    if matches!(self, Self::Publish(..)) {
                        3
                    } else {
                        4
                    },
                    *conn,
                ]);
                write_subject(subject, out);
            }
            Self::Disconnect(conn) => out.extend([5, *conn]),
        }
    }
}

/// Where `x` is in `all`, as a byte.
fn index<T: PartialEq + std::fmt::Debug>(all: &[T], x: &T) -> u8 {
    let i = all.iter().position(|y| y == x);
    i.unwrap_or_else(|| panic!("{x:?} is not one of {all:?}")) as u8
}

/// A head byte (bits 0-1: tokens - 1; bit 7: a last `>`, in patterns
/// only), then a byte per token.
fn read_subject(r: &mut Reader<'_>, pattern: bool) -> Subject {
    let head = r.byte();
    let choices = if pattern { 4 } else { 3 };
    let mut tokens: Vec<&str> = (0..=head % 4)
        .map(|_| TOKENS[usize::from(r.byte()) % choices])
        .collect();
    if pattern && head & 0x80 != 0 {
        tokens.push(">");
    }
    Subject::parse(tokens.join(".")).expect("a valid subject")
}

fn write_subject(subject: &Subject, out: &mut Vec<u8>) {
    let mut tokens: Vec<&str> = subject.tokens().collect();
    let rest = tokens.last() == Some(&">");
    if rest {
        tokens.pop();
    }
    assert!((1..=4).contains(&tokens.len()), "{subject}: 1 to 4 tokens");
    out.push((tokens.len() - 1) as u8 | if rest { 0x80 } else { 0 });
    for token in tokens {
        let i = TOKENS.iter().position(|t| *t == token);
        out.push(i.unwrap_or_else(|| panic!("{subject}: a token not in {TOKENS:?}")) as u8);
    }
}

/// The limits a byte chooses: 1 to 4 connections and 1 to 8 subscriptions
/// per user.
fn read_limits(b: u8) -> RouterLimits {
    RouterLimits {
        max_connections: 1 + usize::from(b % 4),
        max_subscriptions: 1 + usize::from(b / 4 % 8),
        // The steps make no requests: that limit never binds.
        ..RouterLimits::default()
    }
}

/// The input [`check`] reads as `limits` and `steps`.
///
/// # Panics
/// For limits out of [`read_limits`]'s range, or as [`Step::write`].
pub fn input(limits: RouterLimits, steps: &[Step]) -> Vec<u8> {
    let (c, s) = (limits.max_connections, limits.max_subscriptions);
    assert!((1..=4).contains(&c) && (1..=8).contains(&s), "{limits:?}");
    let mut out = vec![(c - 1 + 4 * (s - 1)) as u8];
    for step in steps {
        step.write(&mut out);
    }
    out
}

/// The limits and steps an input holds.
pub fn parse(data: &[u8]) -> (RouterLimits, Vec<Step>) {
    let mut r = Reader::new(data);
    let limits = read_limits(r.byte());
    let mut steps = Vec::new();
    while !r.is_empty() {
        steps.push(Step::read(&mut r));
    }
    (limits, steps)
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    let (limits, steps) = parse(data);
    run(limits, &steps);
}

/// Runs `steps` on a router with `limits` (unpackaged clients, same-uid
/// rule) and on the model, step by step.
///
/// # Panics
/// On any broken invariant.
pub fn run(limits: RouterLimits, steps: &[Step]) {
    let policy = Arc::new(Policy::unpackaged_only(UnpackagedMode::SameUid));
    let mut sut: Router<u64> = Router::new(policy, limits);
    let epoch = sut.epoch();
    let mut model = Model::default();
    let mut routes: HashMap<u64, Route<u64>> = HashMap::new();
    for step in steps {
        match step {
            Step::Connect(uid) => {
                let id = model.next_id();
                let result = sut.connect(id, Identity::unpackaged(*uid), id);
                if model.connect(id, *uid, limits) {
                    result.expect("a connection within the limit");
                } else {
                    let err = result.expect_err("a connection past the limit");
                    assert!(matches!(err, RouterError::TooManyConnections { .. }));
                }
            }
            Step::Subscribe {
                conn,
                sid,
                pattern,
                queue,
                overflow,
            } => {
                let (conn, sid) = (model.pick(*conn), u64::from(*sid));
                let name = queue.map(|q| format!("q{q}"));
                let result = sut.subscribe(conn, sid, pattern.clone(), name, *overflow);
                let sub = Sub {
                    pattern: pattern.clone(),
                    queue: *queue,
                    overflow: *overflow,
                };
                match model.subscribe(conn, sid, sub, limits) {
                    Ok(()) => result.expect("a subscription within the limit"),
                    Err(Refused::UnknownConnection) => {
                        assert!(matches!(result, Err(RouterError::UnknownConnection)));
                    }
                    Err(Refused::SidInUse) => {
                        assert!(matches!(result, Err(RouterError::SidInUse(s)) if s == sid));
                    }
                    Err(Refused::TooMany) => assert!(matches!(
                        result,
                        Err(RouterError::TooManySubscriptions { .. })
                    )),
                }
            }
            Step::Unsubscribe(conn, sid) => {
                let (conn, sid) = (model.pick(*conn), u64::from(*sid));
                assert_eq!(sut.unsubscribe(conn, sid), model.unsubscribe(conn, sid));
            }
            Step::Publish(from, subject) => {
                let from = model.pick(*from);
                let mut out = Vec::new();
                sut.publish(from, subject, &mut out);
                model.check(from, subject, &out);
            }
            Step::Route(from, subject) => {
                let from = model.pick(*from);
                let route = routes.entry(from).or_default();
                if route.reuse(subject, &epoch) {
                    assert!(model.is_open(from), "a gone publisher's route reused");
                } else {
                    sut.route(from, subject, route);
                }
                model.check(from, subject, route.targets());
                route.release();
            }
            Step::Disconnect(conn) => {
                let conn = model.pick(*conn);
                assert!(sut.disconnect(conn).is_empty(), "no calls were made");
                model.disconnect(conn);
            }
        }
    }
    for route in routes.values_mut() {
        route.settle(&epoch);
    }
    let stats = sut.stats();
    assert_eq!(
        (stats.published, stats.delivered, stats.denied),
        (model.published, model.delivered, model.denied)
    );
    assert_eq!(sut.connection_count(), model.connections());
    assert_eq!(sut.subscription_count(), model.subscriptions());
}
