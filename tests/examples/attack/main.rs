//! Hostile local clients, at the byte level, against a running daemon: for
//! measuring what each attack costs it (`bench/attack.sh` takes the
//! daemon's RSS, CPU and fds before, during and after).
//!
//! Each attack opens its connections, holds them for `--hold`, then closes
//! them all and exits:
//!
//! - `stall`: `--conns` connections each send a `--size` frame but its
//!   last byte (the daemon holds what it read, until `frame_timeout`);
//! - `queue`: `--conns` subscribers that never read, and one publisher
//!   sending `--count` messages of `--size` to them;
//! - `requests`: a responder that never answers and one requester with
//!   `--count` requests of one hour pending;
//! - `wake-storm`: `--conns` shm connections, set up by hand so that the
//!   attacker holds the eventfd the daemon waits on for each, signalled
//!   in a tight loop with nothing in the ring, for the whole `--hold`.
//!
//! `cargo run --release -p busd-e2e --example attack -- stall --url unix:///…`

use std::time::Duration;

mod storm;

use busd_e2e::RawClient;
use busd_proto::{Frame, Op, Overflow, Subject};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Attack {
    Stall,
    Queue,
    Requests,
    WakeStorm,
}

#[derive(Debug, Parser)]
struct Args {
    attack: Attack,
    /// The daemon's URL.
    #[arg(long)]
    url: String,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Frame or message size, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    size: usize,
    /// Messages or requests.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// How long to hold the connections open, in seconds.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let hold = Duration::from_secs_f64(args.hold);
    if let Attack::WakeStorm = args.attack {
        storm::run(&args.url, args.conns, hold).await;
        return;
    }
    let held = match args.attack {
        Attack::Stall => stall(&args).await,
        Attack::Queue => queue(&args).await,
        Attack::Requests => requests(&args).await,
        Attack::WakeStorm => unreachable!("run above"),
    };
    eprintln!("attack: {} connections open; holding", held.len());
    tokio::time::sleep(hold).await;
    drop(held);
}

async fn stall(args: &Args) -> Vec<RawClient> {
    let mut frame = bytes::BytesMut::new();
    publish("stall", args.size.saturating_sub(64))
        .encode(&mut frame)
        .expect("encode");
    let partial = &frame[..frame.len() - 1];
    let mut held = Vec::new();
    for _ in 0..args.conns {
        let (mut c, _) = RawClient::connect_hello(&args.url).await;
        c.send_bytes(partial).await;
        held.push(c);
    }
    held
}

async fn queue(args: &Args) -> Vec<RawClient> {
    let mut held = Vec::new();
    for _ in 0..args.conns {
        let (mut r, _) = RawClient::connect_hello(&args.url).await;
        r.send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("flood"),
            queue: None,
            overflow: Overflow::DropOldest,
        })
        .await;
        settle(&mut r).await;
        held.push(r);
    }
    let (mut publisher, _) = RawClient::connect_hello(&args.url).await;
    for _ in 0..args.count {
        publisher
            .send_frame(publish("flood", args.size.saturating_sub(64)))
            .await;
    }
    settle(&mut publisher).await;
    held.push(publisher);
    held
}

async fn requests(args: &Args) -> Vec<RawClient> {
    let service = Subject::from_static("attack.silent");
    let (mut responder, _) = RawClient::connect_hello(&args.url).await;
    responder
        .send(Op::Serve {
            sid: 1,
            service: service.clone(),
            require_capability: None,
        })
        .await;
    settle(&mut responder).await;
    let (mut requester, _) = RawClient::connect_hello(&args.url).await;
    for rid in 0..args.count as u64 {
        let op = Op::Req {
            rid,
            service: service.clone(),
            timeout_ms: 3_600_000,
            headers: None,
        };
        requester
            .send_frame(Frame::with_payload(op, RawClient::payload(args.size)))
            .await;
    }
    settle(&mut requester).await;
    vec![responder, requester]
}

/// Waits until the daemon has taken everything sent on `c`: its `Pong`,
/// or its closing `c` (an attack may cost the attacker its connection).
async fn settle(c: &mut RawClient) {
    c.send(Op::Ping).await;
    while let Some(f) = c.recv().await {
        if f.op == Op::Pong {
            return;
        }
    }
    eprintln!("attack: the daemon closed a connection");
}

fn publish(subject: &'static str, size: usize) -> Frame {
    let op = Op::Pub {
        subject: Subject::from_static(subject),
        headers: None,
    };
    Frame::with_payload(op, RawClient::payload(size))
}
