//! The physical floors under busd's latency on this machine: round trips
//! between two processes, with no daemon, no async runtime and no protocol.
//!
//! ```text
//! cargo run --release -p busd-shm --example floors -- [--json] [ROUNDS] [SIZE]
//! ```
//!
//! In one run, one child process, `ROUNDS` (default 20,000) round trips of
//! `SIZE` bytes (default 128) each way over:
//! - `tcp`: a loopback TCP connection with `TCP_NODELAY`, blocking reads;
//! - `unix`: a unix stream socket pair, blocking reads;
//! - `shm-park`: two busd-shm rings, each side waiting as busd does (a short
//!   spin, then parking on the ring's eventfd);
//! - `shm-spin`: the same rings, each side spinning on the ring without ever
//!   parking (two spinners: one core each, on a 2-core machine).
//!
//! Prints p50/p99/mean round-trip µs per transport, as a table or (with
//! `--json`, for `bench/compare.sh`) one JSON object per line. The child is
//! this binary again, handed dups of the fds without `FD_CLOEXEC`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use busd_shm::{Consumer, EventFd, Events, Options, Ring};

const CHILD_ARG: &str = "--floors-child";
const RING: u64 = 1 << 20;
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

mod child;

use child::{Failure, dup};

fn main() -> Result<(), Failure> {
    let mut args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_ARG) {
        return child(&args[2..]);
    }
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let rounds: usize = args.get(1).map_or(Ok(20_000), |a| a.parse())?;
    let size: usize = args.get(2).map_or(Ok(128), |a| a.parse())?;

    let (links, child) = spawn_echo(rounds, size)?;
    let floors = measure_floors(links, child, rounds, size)?;
    if json {
        print_json(&floors, size, rounds);
    } else {
        print_table(&floors, size, rounds);
    }
    Ok(())
}

/// This process's ends of the links to the child, one per transport.
struct Links {
    tcp: TcpStream,
    sock: UnixStream,
    /// The ring the child writes to, and its eventfds.
    c2p: (Ring, Events),
    /// The ring this process writes to, and its eventfds.
    p2c: (Ring, Events),
}

/// Opens the links and starts the child at their other ends, handed dups
/// of its ends by number.
fn spawn_echo(rounds: usize, size: usize) -> Result<(Links, Child), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let tcp = TcpStream::connect(listener.local_addr()?)?;
    let (child_tcp, _) = listener.accept()?;
    tcp.set_nodelay(true)?;
    child_tcp.set_nodelay(true)?;
    let (sock, child_sock) = UnixStream::pair()?;
    let (c2p, p2c) = (Ring::create(RING)?, Ring::create(RING)?);
    let (c2p_events, p2c_events) = (Events::new()?, Events::new()?);
    let inherit = [
        dup(&child_tcp)?,
        dup(&child_sock)?,
        dup(c2p.fd())?,
        dup(&c2p_events.readable)?,
        dup(&c2p_events.writable)?,
        dup(p2c.fd())?,
        dup(&p2c_events.readable)?,
        dup(&p2c_events.writable)?,
    ];
    let numbers: Vec<String> = inherit
        .iter()
        .map(|fd| fd.as_raw_fd().to_string())
        .collect();
    let child = Command::new(std::env::current_exe()?)
        .arg(CHILD_ARG)
        .args([rounds.to_string(), size.to_string()])
        .args(&numbers)
        .spawn()?;
    drop((inherit, child_tcp, child_sock));
    let links = Links {
        tcp,
        sock,
        c2p: (c2p, c2p_events),
        p2c: (p2c, p2c_events),
    };
    Ok((links, child))
}

/// Times the round trips over each link in turn, the child echoing, then
/// waits for the child; the floors in print order.
fn measure_floors(
    links: Links,
    mut child: Child,
    rounds: usize,
    size: usize,
) -> Result<[(&'static str, Stats); 4], Failure> {
    let Links {
        mut tcp,
        mut sock,
        c2p: (c2p, c2p_events),
        p2c: (p2c, p2c_events),
    } = links;
    let msg = vec![0x5a; size];
    let mut buf = vec![0; size];
    let tcp = measure(rounds, || {
        tcp.write_all(&msg)?;
        tcp.read_exact(&mut buf)?;
        Ok(())
    })?;
    let unix = measure(rounds, || {
        sock.write_all(&msg)?;
        sock.read_exact(&mut buf)?;
        Ok(())
    })?;
    let mut tx = p2c.producer(p2c_events, Options::default());
    let mut rx = c2p.consumer(c2p_events, Options::default());
    let mut got = Vec::with_capacity(size);
    let park = measure(rounds, || {
        tx.push_wait(&msg, TIMEOUT)?;
        rx.pop_wait(&mut got, TIMEOUT)?.ok_or("timed out")?;
        Ok(())
    })?;
    let spin = measure(rounds, || {
        tx.try_push(&msg)?;
        spin_pop(&mut rx, &mut got)
    })?;
    if !child.wait()?.success() {
        return Err("the child failed".into());
    }
    Ok([
        ("tcp", tcp),
        ("unix", unix),
        ("shm-park", park),
        ("shm-spin", spin),
    ])
}

/// One JSON object per floor, the lines `bench/compare.sh` collects.
fn print_json(floors: &[(&str, Stats)], size: usize, rounds: usize) {
    for (name, stats) in floors {
        println!(
            r#"{{"floor":"{name}","size":{size},"rounds":{rounds},"p50_us":{:.2},"p99_us":{:.2},"mean_us":{:.2}}}"#,
            stats.p50, stats.p99, stats.mean
        );
    }
}

/// A table for people: one row per floor.
fn print_table(floors: &[(&str, Stats)], size: usize, rounds: usize) {
    println!("round trips between two processes, {size} B each way, {rounds} rounds");
    println!(
        "{:<10} {:>9} {:>9} {:>9}",
        "transport", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, stats) in floors {
        println!(
            "{name:<10} {:>9.2} {:>9.2} {:>9.2}",
            stats.p50, stats.p99, stats.mean
        );
    }
}

/// The echoing side: the same three phases, answering each message.
fn child(args: &[String]) -> Result<(), Failure> {
    let rounds: usize = args[0].parse()?;
    let size: usize = args[1].parse()?;
    let mut fds = child::inherited(&args[2..]);
    let mut next = || fds.next().ok_or("missing fd")?;
    let mut tcp = TcpStream::from(next()?);
    let mut sock = UnixStream::from(next()?);
    let (c2p, c2p_rd, c2p_wr) = (next()?, next()?, next()?);
    let (p2c, p2c_rd, p2c_wr) = (next()?, next()?, next()?);
    let mut tx = Ring::open(c2p)?.producer(events(c2p_rd, c2p_wr)?, Options::default());
    let mut rx = Ring::open(p2c)?.consumer(events(p2c_rd, p2c_wr)?, Options::default());

    let mut buf = vec![0; size];
    for _ in 0..rounds {
        tcp.read_exact(&mut buf)?;
        tcp.write_all(&buf)?;
    }
    for _ in 0..rounds {
        sock.read_exact(&mut buf)?;
        sock.write_all(&buf)?;
    }
    for _ in 0..rounds {
        rx.pop_wait(&mut buf, TIMEOUT)?.ok_or("timed out")?;
        tx.push_wait(&buf, TIMEOUT)?;
    }
    for _ in 0..rounds {
        spin_pop(&mut rx, &mut buf)?;
        tx.try_push(&buf)?;
    }
    Ok(())
}

fn events(readable: OwnedFd, writable: OwnedFd) -> Result<Events, Failure> {
    Ok(Events {
        readable: EventFd::from_fd(readable)?,
        writable: EventFd::from_fd(writable)?,
    })
}

/// Pops one message, spinning on the ring (never parking), for at most
/// [`TIMEOUT`].
fn spin_pop(rx: &mut Consumer, out: &mut Vec<u8>) -> Result<(), Failure> {
    let start = Instant::now();
    loop {
        if rx.try_pop(out)?.is_some() {
            return Ok(());
        }
        std::hint::spin_loop();
        if TIMEOUT.is_some_and(|t| start.elapsed() > t) {
            return Err("timed out spinning".into());
        }
    }
}

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

/// Times `rounds` calls of `round_trip` (after a tenth as many to warm up).
fn measure(
    rounds: usize,
    mut round_trip: impl FnMut() -> Result<(), Failure>,
) -> Result<Stats, Failure> {
    let warmup = rounds / 10;
    let mut micros = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        round_trip()?;
        if i >= warmup {
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    Ok(Stats {
        p50: at(0.5),
        p99: at(0.99),
        mean: micros.iter().sum::<f64>() / micros.len() as f64,
    })
}
