//! Slowing down identity guessing, per uid: after a failed proof, the
//! package claims of the same uid are judged one at a time, each a delay
//! after the one before, a delay that doubles with every failed proof
//! ([`proof_failure_delay`]) until the uid has failed none for
//! [`FAILURES_FORGOTTEN_AFTER`].
//!
//! One at a time, because a guesser opens connections in parallel: were
//! every waiting claim judged when the delay ran out, N connections would
//! buy N guesses per delay. So each claim takes the next turn, a delay
//! after the turn before, and a claim whose turn would come later than
//! [`MAX_PROOF_DELAY`] from now is refused at once, unjudged, with the
//! answer a failed proof gets: a uid has at most that much waiting, and a
//! flood of claims holds no connections open.
//!
//! A proven claim does not clear the count: a hostile app that can prove
//! its own package would otherwise prove it between guesses at another
//! one's token, and never wait. Unpackaged clients prove nothing, have
//! nothing to guess, and never wait; other uids never wait at all.
//!
//! Sans-IO like the rest of the crate: [`FailedProofs`] counts and says
//! when a claim may be judged, with the time passed in; the daemon holds
//! one for all its connections and does the waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use busd_proto::Pfn;

use crate::error::ProtocolError;
use crate::proof::{Peer, refused};

/// The delay after the first failed proof.
pub const FIRST_PROOF_DELAY: Duration = Duration::from_millis(100);

/// The longest delay, reached after six failures in a row; also how far
/// ahead a claim's turn may be (the SDK gives a handshake 10 s).
pub const MAX_PROOF_DELAY: Duration = Duration::from_millis(3200);

/// A uid that has failed no proof for this long, with no claim waiting,
/// starts again from nothing.
///
/// Short, because while a uid is remembered its honest claims wait their
/// turns too (one bad client slows every package client of its uid); a
/// guesser gains little from it: six guesses, then ten quiet seconds.
pub const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(10);

/// How many uids are remembered at once. Uids are the kernel's word, so
/// only as many exist as the machine has users; past this, those quiet
/// long enough are forgotten, then the one that failed longest ago.
const MAX_UIDS: usize = 4096;

/// How long apart a uid's claims are judged after `failures` failed
/// proofs: not at all after none, then [`FIRST_PROOF_DELAY`], doubling
/// with each failure, at most [`MAX_PROOF_DELAY`].
///
/// ```
/// use std::time::Duration;
/// use busd_core::proof_failure_delay;
/// let ms = |n| proof_failure_delay(n).as_millis();
/// assert_eq!([0, 1, 2, 3, 6, 7, 1000].map(ms), [0, 100, 200, 400, 3200, 3200, 3200]);
/// ```
pub fn proof_failure_delay(failures: u32) -> Duration {
    match failures.checked_sub(1) {
        None => Duration::ZERO,
        Some(doublings) => FIRST_PROOF_DELAY
            .saturating_mul(1 << doublings.min(16))
            .min(MAX_PROOF_DELAY),
    }
}

/// One uid's failed proofs since it was last quiet.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// When the last one failed.
    last: Instant,
    /// When the uid's next claim may be judged.
    next_turn: Instant,
}

impl Failures {
    fn forgotten(&self, now: Instant) -> bool {
        now >= self.next_turn
            && now.saturating_duration_since(self.last) >= FAILURES_FORGOTTEN_AFTER
    }
}

/// Failed proofs per peer uid (`None`: the peers whose uid the transport
/// could not tell, together), for at most a few thousand uids.
#[derive(Debug, Default)]
pub struct FailedProofs {
    by_uid: HashMap<Option<u32>, Failures>,
}

impl FailedProofs {
    /// Nothing failed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the turn of `peer`'s claim of `pfn` at `now`: `None` to judge
    /// it at once, or the instant to judge it at.
    ///
    /// # Errors
    /// [`ProtocolError::AuthFailed`], written to the audit log, when the
    /// uid's turns are taken for longer than [`MAX_PROOF_DELAY`]: the claim
    /// is refused unjudged, with the answer a failed proof gets.
    pub fn claim(
        &mut self,
        pfn: &Pfn,
        peer: &Peer<'_>,
        now: Instant,
    ) -> Result<Option<Instant>, ProtocolError> {
        let Some(failures) = self.by_uid.get_mut(&peer.uid) else {
            return Ok(None);
        };
        if failures.forgotten(now) {
            self.by_uid.remove(&peer.uid);
            return Ok(None);
        }
        let turn = failures.next_turn.max(now);
        if turn - now > MAX_PROOF_DELAY {
            let reason = "the uid's claims already wait out its failed proofs";
            return Err(refused(pfn.clone(), Some(peer), reason));
        }
        failures.next_turn = turn + proof_failure_delay(failures.count);
        Ok((turn > now).then_some(turn))
    }

    /// A claim from `uid` failed its proof at `now`: the uid's next claim
    /// waits the longer delay from now, if no turn already waits longer.
    pub fn failed(&mut self, uid: Option<u32>, now: Instant) {
        if !self.by_uid.contains_key(&uid) && self.by_uid.len() >= MAX_UIDS {
            self.make_room(now);
        }
        let fresh = Failures {
            count: 0,
            last: now,
            next_turn: now,
        };
        let failures = self.by_uid.entry(uid).or_insert(fresh);
        if failures.forgotten(now) {
            *failures = fresh;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        failures.next_turn = failures
            .next_turn
            .max(now + proof_failure_delay(failures.count));
    }

    /// Forgets the uids that have been quiet long enough, and if none has,
    /// the one whose last failure is oldest (a scan, but only with
    /// `MAX_UIDS` uids failing within [`FAILURES_FORGOTTEN_AFTER`]).
    fn make_room(&mut self, now: Instant) {
        self.by_uid.retain(|_, f| !f.forgotten(now));
        if self.by_uid.len() < MAX_UIDS {
            return;
        }
        let oldest = self.by_uid.iter().min_by_key(|(_, f)| f.last);
        if let Some(&uid) = oldest.map(|(uid, _)| uid) {
            self.by_uid.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Option<u32> = Some(1000);
    const BOB: Option<u32> = Some(1001);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn weather() -> Pfn {
        Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").expect("pfn")
    }

    /// A claim of Weather by a peer of `uid` at `now`: when it is judged.
    fn claim(sut: &mut FailedProofs, uid: Option<u32>, now: Instant) -> Option<Instant> {
        let peer = Peer {
            uid,
            ..Peer::default()
        };
        match sut.claim(&weather(), &peer, now) {
            Ok(turn) => turn,
            Err(e) => panic!("refused: {e:?}"),
        }
    }

    #[test]
    fn each_failure_doubles_the_wait_of_that_uid_only() {
        let mut sut = FailedProofs::new();
        let t0 = Instant::now();
        assert_eq!(claim(&mut sut, ALICE, t0), None, "no failure, no wait");
        sut.failed(ALICE, t0);
        assert_eq!(claim(&mut sut, BOB, t0), None, "another uid");
        assert_eq!(claim(&mut sut, None, t0), None, "an unknown uid");
        // Alice's claims, one after the other, each failing when judged.
        let mut now = t0;
        for wait in [100, 200, 400, 800, 1600, 3200, 3200] {
            let turn = claim(&mut sut, ALICE, now + ms(1));
            assert_eq!(turn, Some(now + ms(wait)));
            now += ms(wait);
            sut.failed(ALICE, now);
        }
        // Waited out, a claim is judged at once.
        now += MAX_PROOF_DELAY;
        assert_eq!(claim(&mut sut, ALICE, now), None);
    }

    #[test]
    fn claims_waiting_together_are_judged_one_delay_apart() {
        let mut sut = FailedProofs::new();
        let t0 = Instant::now();
        sut.failed(ALICE, t0);
        // Forty claims at once: judged 100 ms apart, as far as 3.2 s
        // ahead; the rest refused at once.
        let peer = Peer {
            uid: ALICE,
            ..Peer::default()
        };
        let turns: Vec<_> = (0..40).map(|_| sut.claim(&weather(), &peer, t0)).collect();
        for (n, turn) in turns[..32].iter().enumerate() {
            let expected = t0 + ms(100) * (n as u32 + 1);
            assert_eq!(turn.as_ref().ok(), Some(&Some(expected)), "claim {n}");
        }
        for turn in &turns[32..] {
            let e = turn.as_ref().expect_err("no turn left within 3.2 s");
            assert!(
                matches!(e, ProtocolError::AuthFailed { pfn, .. } if *pfn == weather()),
                "{e:?}"
            );
        }
        assert_eq!(claim(&mut sut, BOB, t0), None, "other uids never wait");
    }

    #[test]
    fn a_quiet_spell_starts_again_but_a_proof_does_not() {
        let mut sut = FailedProofs::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            sut.failed(ALICE, t0);
        }
        // A proven claim changes nothing (this module is not told of it),
        // and its turn counts: the next waits a delay after it.
        let t1 = t0 + ms(400);
        assert_eq!(claim(&mut sut, ALICE, t1), None);
        assert_eq!(claim(&mut sut, ALICE, t1), Some(t1 + ms(400)));
        // Quiet long enough after the last failure, no claim waiting: forgotten.
        let quiet = t0 + FAILURES_FORGOTTEN_AFTER;
        assert_eq!(claim(&mut sut, ALICE, quiet), None);
        assert!(sut.by_uid.is_empty(), "forgotten when looked up");
        sut.failed(ALICE, quiet);
        assert_eq!(claim(&mut sut, ALICE, quiet), Some(quiet + ms(100)));
    }

    #[test]
    fn a_uid_with_a_claim_waiting_is_not_forgotten() {
        let mut sut = FailedProofs::new();
        let t0 = Instant::now();
        for _ in 0..6 {
            sut.failed(ALICE, t0);
        }
        // The claim taken just before they would be forgotten waits past it.
        let late = t0 + FAILURES_FORGOTTEN_AFTER - ms(1);
        assert_eq!(claim(&mut sut, ALICE, late), None);
        let after = t0 + FAILURES_FORGOTTEN_AFTER;
        assert_eq!(claim(&mut sut, ALICE, after), Some(late + MAX_PROOF_DELAY));
        // That one fails in its turn, after they would have been forgotten.
        let judged = late + MAX_PROOF_DELAY;
        sut.failed(ALICE, judged);
        assert_eq!(
            claim(&mut sut, ALICE, judged),
            Some(judged + MAX_PROOF_DELAY)
        );
    }

    #[test]
    fn the_uids_remembered_are_bounded() {
        let mut sut = FailedProofs::new();
        let t0 = Instant::now();
        for uid in 0..MAX_UIDS as u32 {
            sut.failed(Some(uid), t0 + ms(u64::from(uid)));
        }
        assert_eq!(sut.by_uid.len(), MAX_UIDS);
        let later = t0 + ms(MAX_UIDS as u64);
        sut.failed(Some(u32::MAX), later);
        assert_eq!(sut.by_uid.len(), MAX_UIDS);
        assert_eq!(claim(&mut sut, Some(0), later), None, "the oldest went");
        assert!(claim(&mut sut, Some(u32::MAX), later).is_some());
        // Making room again, the ones quiet long enough all go.
        let quiet = later + FAILURES_FORGOTTEN_AFTER;
        sut.failed(Some(u32::MAX - 1), quiet);
        assert_eq!(sut.by_uid.len(), 1, "only the new one is left");
        let turn = claim(&mut sut, Some(u32::MAX - 1), quiet);
        assert_eq!(turn, Some(quiet + ms(100)));
    }
}
