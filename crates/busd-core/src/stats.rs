//! Router counters, for `busd ctl stats` and the metrics endpoint.
//!
//! Every request routed to a responder ends exactly once, so these
//! balance: `requests = replies + timeouts + responder_gone +
//! requester_gone + Router::pending_requests()`.

/// What the router has counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages published.
    pub published: u64,
    /// Deliveries made (one per receiving subscription).
    pub delivered: u64,
    /// Deliveries the access rules denied.
    pub denied: u64,
    /// Requests routed to a responder.
    pub requests: u64,
    /// Routed requests whose responder's answer was passed back.
    pub replies: u64,
    /// Requests answered `NoResponders`.
    pub no_responders: u64,
    /// Requests answered `NotAuthorized`.
    pub not_authorized: u64,
    /// Requests answered `UnknownService`: a name no package owns, with
    /// `[daemon] services = "configured-only"`.
    pub unknown_services: u64,
    /// Requests refused (`LimitExceeded`) because their connection had
    /// `max_pending_requests` in flight.
    pub requests_over_limit: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests failed with `ResponderGone`.
    pub responder_gone: u64,
    /// Routed requests forgotten because their requester left before the
    /// answer (an answer that comes later is a late reply).
    pub requester_gone: u64,
    /// Replies dropped: late, second, or from a connection that was not asked.
    pub late_replies: u64,
}

/// How the requests for one configured service ended (the router keeps
/// these for configured names only, so callers cannot grow the table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    /// Answered `Success` by a responder.
    pub success: u64,
    /// Answered `Failure` by a responder.
    pub failure: u64,
    /// Answered `NoResponders` at once.
    pub no_responders: u64,
    /// Answered `NotAuthorized` at once.
    pub not_authorized: u64,
    /// Timed out.
    pub timeouts: u64,
    /// Their responder left first.
    pub responder_gone: u64,
    /// Their requester left first.
    pub requester_gone: u64,
    /// Refused: the requester had `max_pending_requests` in flight.
    pub over_limit: u64,
}
