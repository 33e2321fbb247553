//! [`WakeBudget`]: what a peer's wake-ups that bring nothing may cost.
//!
//! The peer holds the eventfd a reader parks on (it must, to wake it), so a
//! hostile peer can signal it in a tight loop with nothing in the ring: each
//! signal would cost the reader a reactor wake-up, a task poll and an empty
//! look at the ring, and the daemon could be kept busy by one client
//! spending no more than a write per wake-up. A well-behaved peer signals
//! only after pushing a message, though one may come late (the reader found
//! the message before it parked), so an empty wake-up is allowed for each
//! message read, plus [`REFILL`] per [`WINDOW`]. Past that the reader stops
//! parking on the eventfd until the window ends: the signals coalesce in
//! it, so one connection costs at most [`REFILL`] wake-ups a window more
//! than its messages, and only that peer's messages wait (at most a window).

use std::time::{Duration, Instant};

/// The window in which the allowance refills.
pub(super) const WINDOW: Duration = Duration::from_millis(100);
/// Empty wake-ups allowed per window beyond one per message read.
pub(super) const REFILL: u32 = 100;
/// The most empty wake-ups that can be saved up (ten windows' worth, or
/// messages read recently).
const MAX_TOKENS: u32 = 1000;

/// Empty wake-ups a reader still allows its peer.
#[derive(Debug)]
pub(super) struct WakeBudget {
    tokens: u32,
    /// When the allowance was last refilled.
    refilled: Option<Instant>,
    /// A wake-up was taken and the ring has not been found non-empty since.
    woken: bool,
}

impl WakeBudget {
    pub(super) fn new() -> Self {
        Self {
            tokens: MAX_TOKENS,
            refilled: None,
            woken: false,
        }
    }

    /// The eventfd signalled (it had a count).
    #[inline]
    pub(super) fn woken(&mut self) {
        self.woken = true;
    }

    /// A message was read: the wake-up, if any, brought something.
    #[inline]
    pub(super) fn read(&mut self) {
        self.woken = false;
        if self.tokens < MAX_TOKENS {
            self.tokens += 1;
        }
    }

    /// The ring is empty and the reader is about to park: `None` if it may
    /// park on its eventfd, or when to look again without it, if the peer
    /// has used up its empty wake-ups.
    pub(super) fn before_parking(&mut self, now: impl FnOnce() -> Instant) -> Option<Instant> {
        if !std::mem::take(&mut self.woken) {
            return None;
        }
        if let Some(spent) = self.tokens.checked_sub(1) {
            self.tokens = spent;
            return None;
        }
        let now = now();
        let refilled = *self.refilled.get_or_insert(now);
        let due = refilled + WINDOW;
        if now < due {
            return Some(due);
        }
        let windows = (now - refilled).as_millis() / WINDOW.as_millis();
        let refill = u32::try_from(windows)
            .unwrap_or(u32::MAX)
            .saturating_mul(REFILL);
        // This wake-up is paid for out of the refill.
        self.tokens = refill.min(MAX_TOKENS) - 1;
        self.refilled = Some(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spends empty wake-ups until one is refused; how many were allowed.
    fn allowed(budget: &mut WakeBudget, at: Instant) -> u32 {
        let mut n = 0;
        loop {
            budget.woken();
            if budget.before_parking(|| at).is_some() {
                return n;
            }
            n += 1;
        }
    }

    #[test]
    fn a_storm_gets_the_saved_allowance_then_the_refill_per_window() {
        let t0 = Instant::now();
        let mut b = WakeBudget::new();
        assert_eq!(allowed(&mut b, t0), MAX_TOKENS);
        b.woken();
        assert_eq!(b.before_parking(|| t0), Some(t0 + WINDOW));
        let t1 = t0 + WINDOW;
        assert_eq!(allowed(&mut b, t1), REFILL);
        let t2 = t1 + WINDOW * 3;
        assert_eq!(allowed(&mut b, t2), 3 * REFILL);
    }

    #[test]
    fn each_message_pays_for_one_late_wake_up() {
        let t0 = Instant::now();
        let mut b = WakeBudget::new();
        allowed(&mut b, t0);
        for _ in 0..10_000 {
            b.read();
            b.woken();
            assert_eq!(b.before_parking(|| t0), None);
        }
    }

    #[test]
    fn parking_without_a_wake_up_costs_nothing() {
        let t0 = Instant::now();
        let mut b = WakeBudget::new();
        allowed(&mut b, t0);
        for _ in 0..10 {
            assert_eq!(b.before_parking(|| panic!("no clock needed")), None);
        }
    }

    #[test]
    fn a_wake_up_that_brought_a_message_is_not_empty() {
        let t0 = Instant::now();
        let mut b = WakeBudget::new();
        allowed(&mut b, t0);
        b.woken();
        b.read();
        b.tokens = 0;
        assert_eq!(b.before_parking(|| t0), None);
    }
}
