//! The idle workload: `--conns` connections, each subscribed to
//! `--subjects` subjects of its own so that the daemon holds real state
//! for each, opened a bounded number at a time and then held, silent, for
//! `--hold` seconds.
//!
//! It measures connecting (how long, how many failed) and whether every
//! connection survived the hold. What holding costs the daemon (memory,
//! CPU) is read from outside, by `bench/scale.sh`, between the `ready:`
//! line this prints on stderr and the end of the hold.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt as _;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, Conn};
use crate::error::{BenchError, chain, ensure};
use crate::reqrep::histogram;
use crate::runner::progress_bar;
use crate::spec::{CommonArgs, Workload, unix_ns};

/// Connections being opened at once: enough to keep the daemon busy,
/// few enough to stay clear of listen backlogs and the auth timeout.
const CONNECT_CONCURRENCY: usize = 128;
/// Subscriptions of one connection being made at once.
const SUBSCRIBE_CONCURRENCY: usize = 256;
/// How long a held connection may take to answer the final round trip.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most failures quoted in a summary.
const MAX_FAILURES: usize = 5;

/// The result of an idle run, printed as a JSON line or a table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleSummary {
    /// `busd` or `nats`.
    pub system: String,
    /// Always `idle`.
    pub workload: String,
    /// `tcp`, `unix` or `shm`.
    pub transport: String,
    /// Connections asked for.
    pub conns: u32,
    /// Subscriptions each holds.
    pub subjects: u32,
    /// Connected and subscribed.
    pub established: u32,
    /// Could not connect or subscribe.
    pub failed: u32,
    /// Established, but gone or silent to a round trip when the hold ended.
    pub dropped: u32,
    /// From the first connect to the last subscription confirmed, in seconds.
    pub connect_s: f64,
    /// Connections established per second.
    pub conns_per_s: f64,
    /// Time to connect and subscribe one connection, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// How long they were held, in seconds.
    pub hold_s: f64,
    /// Why connections failed or dropped, if any did (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl IdleSummary {
    /// Whether every connection was established and survived the hold.
    pub fn is_clean(&self) -> bool {
        self.established == self.conns && self.failed == 0 && self.dropped == 0
    }

    /// Prints the summary as one JSON line, or as a table and its failures.
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string(self) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("bench: cannot encode a result: {e}"),
            }
            return;
        }
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<6} {:<8} {:<9} {:>7} {:>11} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "system",
            "workload",
            "transport",
            "conns",
            "established",
            "failed",
            "dropped",
            "connect s",
            "conns/s",
            "p50 µs",
            "p99 µs",
            "hold s"
        );
        println!(
            "{:<6} {:<8} {:<9} {:>7} {:>11} {:>7} {:>8} {:>10.2} {:>9.0} {:>9} {:>9} {:>7.1}",
            self.system,
            self.workload,
            self.transport,
            self.conns,
            self.established,
            self.failed,
            self.dropped,
            self.connect_s,
            self.conns_per_s,
            us(self.p50_us),
            us(self.p99_us),
            self.hold_s
        );
        if !self.is_clean() {
            eprintln!(
                "{} idle {}: NOT CLEAN: {} of {} established, {} failed, {} dropped",
                self.system,
                self.transport,
                self.established,
                self.conns,
                self.failed,
                self.dropped
            );
        }
        for f in &self.failures {
            eprintln!("  {f}");
        }
    }
}

/// A held connection: the connection and its subscriptions.
type Held<C> = (C, Vec<BoxStream<'static, Bytes>>);

/// Opens `args.conns` connections to `url` with `bus`, each subscribed to
/// a subject of its own, prints `ready: N connections` on stderr, holds
/// them, then checks each with a round trip.
///
/// # Errors
/// When `args` is not an idle run; failed connections are results, not errors.
pub async fn idle<B: Bus>(
    bus: &B,
    args: &CommonArgs,
    url: &str,
    transport: &str,
) -> Result<IdleSummary, BenchError> {
    args.validate()?;
    ensure(args.workload == Workload::Idle, || "not an idle run".into())?;
    let mut s = IdleSummary {
        system: bus.system().into(),
        workload: Workload::Idle.name().into(),
        transport: transport.into(),
        conns: args.conns,
        subjects: args.subjects,
        ..IdleSummary::default()
    };
    // Subjects of this run only, so runs sharing a daemon never meet.
    let run = format!(
        "bench.{}.{}.idle",
        std::process::id(),
        unix_ns() % 1_000_000_007
    );
    let bar = progress_bar(Some(u64::from(args.conns)), args.json);
    let mut latency = histogram();
    let mut held = Vec::with_capacity(args.conns as usize);
    let started = Instant::now();
    let mut opening = stream::iter(0..args.conns)
        .map(|i| open(bus, url, &run, i, args.subjects))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some((took, result)) = opening.next().await {
        bar.inc(1);
        match result {
            Ok(conn) => {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                latency.saturating_record(ns.clamp(1, latency.high()));
                held.push(conn);
            }
            Err(e) => {
                s.failed += 1;
                if s.failures.len() < MAX_FAILURES {
                    s.failures.push(chain(&e));
                }
            }
        }
    }
    drop(opening);
    bar.finish_and_clear();
    let connect_s = started.elapsed().as_secs_f64();
    s.established = u32::try_from(held.len()).unwrap_or(u32::MAX);
    s.connect_s = round(connect_s);
    if connect_s > 0.0 {
        s.conns_per_s = round(f64::from(s.established) / connect_s);
    }
    if !latency.is_empty() {
        let us = |q: f64| round(latency.value_at_quantile(q) as f64 / 1e3);
        (s.p50_us, s.p99_us) = (Some(us(0.50)), Some(us(0.99)));
    }
    match s.failed {
        0 => eprintln!("ready: {} connections", s.established),
        failed => eprintln!("ready: {} connections ({failed} failed)", s.established),
    }
    let holding = Instant::now();
    hold(args.hold).await;
    s.hold_s = round(holding.elapsed().as_secs_f64());
    let dropped = stream::iter(held)
        .map(check)
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(|r| async move { r.err() })
        .collect::<Vec<String>>()
        .await;
    s.dropped = u32::try_from(dropped.len()).unwrap_or(u32::MAX);
    let room = MAX_FAILURES.saturating_sub(s.failures.len());
    s.failures.extend(dropped.into_iter().take(room));
    Ok(s)
}

/// Connects, subscribes to `{run}.{i}.{j}` for each of `subjects` and
/// makes sure the server has the subscriptions; returns how long that took.
async fn open<B: Bus>(
    bus: &B,
    url: &str,
    run: &str,
    i: u32,
    subjects: u32,
) -> (Duration, Result<Held<B::Conn>, BenchError>) {
    let started = Instant::now();
    let result = async {
        let conn = (bus.connect(url, &format!("bench-idle-{i}")).await)
            .map_err(|e| BenchError::bus(format!("cannot connect to {url}"), e))?;
        let subscriptions = stream::iter(0..subjects)
            .map(|j| {
                let conn = &conn;
                async move { conn.subscribe(&format!("{run}.{i}.{j}")).await }
            })
            .buffer_unordered(SUBSCRIBE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BenchError::bus("cannot subscribe", e))?;
        (conn.flush().await).map_err(|e| BenchError::bus("cannot flush", e))?;
        Ok((conn, subscriptions))
    }
    .await;
    (started.elapsed(), result)
}

/// Waits out the hold: `duration`, Ctrl-C, or the end of stdin if it is a pipe.
async fn hold(duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        Ok(()) = tokio::signal::ctrl_c() => {}
        () = stdin_closed() => {}
    }
}

/// Resolves when stdin, a pipe or a socket, reaches its end; never for a
/// terminal or a file (`/dev/null` would end every hold at once).
async fn stdin_closed() {
    use rustix::fs::FileType;
    let piped = rustix::fs::fstat(std::io::stdin()).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket
        )
    });
    if !piped {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread: a blocking stdin read must not hold up the runtime's exit.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Whether a held connection is still there: its subscriptions open and
/// the server answering a round trip.
async fn check<C: Conn>((conn, mut subscriptions): Held<C>) -> Result<(), String> {
    for messages in &mut subscriptions {
        if let Some(None) = messages.next().now_or_never() {
            return Err("a subscription ended during the hold (disconnected?)".into());
        }
    }
    match tokio::time::timeout(CHECK_TIMEOUT, conn.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("after the hold: {}", chain(&e))),
        Err(_) => Err(format!(
            "after the hold: no answer within {CHECK_TIMEOUT:?}"
        )),
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
