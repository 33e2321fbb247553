//! Guessing a package's secret: every failed proof makes the next claims
//! of the same uid wait twice as long (100 ms, 200 ms, … 3.2 s), one claim
//! at a time however many connections ask, until the uid has been quiet
//! for ten seconds. The client is told `AuthFailed`, as for any failed proof.
//!
//! Time is tokio's paused clock (the daemon runs on the test's runtime):
//! the waits pass at once, and what a client measures is what the daemon
//! made it wait.

use std::time::Duration;

use busd_client::{Error, ErrorKind};
use busd_e2e::{Package, TestDaemon, Transport};
use futures::future::join_all;
use tokio::time::Instant;

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const GUESS: &str = "tokens/guess.key";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A daemon where Weather proves itself by its token, and a wrong token
/// for it at [`GUESS`].
async fn daemon(weather: &Package) -> TestDaemon {
    let d = TestDaemon::start_with_packages("same-uid", std::slice::from_ref(weather)).await;
    d.write_token(GUESS, "a guessed secret");
    d
}

/// A claim of Weather with the guessed token: the error, and how long it
/// took to come.
async fn guess(d: &TestDaemon) -> (Error, Duration) {
    let started = Instant::now();
    let e = d
        .try_connect_token(Transport::Unix, WEATHER, GUESS)
        .await
        .expect_err("a guessed token is refused");
    assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
    (e, started.elapsed())
}

/// `took` is `expected` ms, give or take the paused clock's millisecond.
fn about(took: Duration, expected: u64) -> bool {
    took >= ms(expected) && took <= ms(expected + 5)
}

#[tokio::test(start_paused = true)]
async fn repeated_failed_proofs_from_one_uid_are_slowed_exponentially() {
    let weather = Package::new(WEATHER);
    let d = daemon(&weather).await;
    // The first guess is answered at once, each later one after twice the
    // wait of the one before, with the same answer.
    let (first, took) = guess(&d).await;
    assert!(about(took, 0), "{took:?}");
    for wait in [100, 200, 400, 800, 1600, 3200, 3200] {
        let (e, took) = guess(&d).await;
        assert!(about(took, wait), "expected {wait} ms, took {took:?}");
        assert_eq!(e.to_string(), first.to_string());
    }
    // An unpackaged client of the same uid claims nothing: not delayed.
    let started = Instant::now();
    d.connect_unpackaged(Transport::Unix).await;
    assert!(about(started.elapsed(), 0), "{:?}", started.elapsed());
    // The right secret waits its turn too, and proving it forgives
    // nothing: the next guess still waits the longest delay.
    let started = Instant::now();
    d.connect_as(Transport::Unix, &weather).await;
    assert!(about(started.elapsed(), 3200), "{:?}", started.elapsed());
    let (_, took) = guess(&d).await;
    assert!(about(took, 3200), "{took:?}");
    // Ten quiet seconds later the uid starts from nothing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, took) = guess(&d).await;
    assert!(about(took, 0), "{took:?}");
    let (_, took) = guess(&d).await;
    assert!(about(took, 100), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn parallel_guesses_from_one_uid_are_judged_one_delay_apart() {
    let d = daemon(&Package::new(WEATHER)).await;
    let (_, took) = guess(&d).await;
    assert!(about(took, 0), "{took:?}");
    // Forty guesses at once, after one failure: one judged every 100 ms
    // for 3.2 s, the eight with no turn that soon refused at once (the
    // same answer, unjudged), none judged together.
    let mut took: Vec<Duration> = join_all((0..40).map(|_| guess(&d)))
        .await
        .into_iter()
        .map(|(_, took)| took)
        .collect();
    took.sort();
    let (at_once, waited) = took.split_at(8);
    assert!(at_once.iter().all(|t| about(*t, 0)), "{took:?}");
    for (n, t) in waited.iter().enumerate() {
        let expected = 100 * (n as u64 + 1);
        assert!(
            about(*t, expected),
            "{n}: expected {expected} ms in {took:?}"
        );
    }
}
