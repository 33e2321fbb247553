//! The floor under busd's payload pools: what writing and copying a large
//! payload costs on this machine, with no daemon, no rings and no wake-ups.
//!
//! ```text
//! cargo run --release -p busd-shm --example copy_floor -- [--json] [COUNT] [SIZE]
//! ```
//!
//! Over `COUNT` (default 5,000) payloads of `SIZE` bytes (default 1 MiB),
//! cycling through the blocks of two 16 MiB pools as a steady stream does
//! (so the bytes are not in cache when they are next touched):
//! - `fill`: a publisher writing the payload into a block of its pool (the
//!   work iceoryx2's publisher does too);
//! - `copy`: the daemon's copy of it into a block of a pool its receivers
//!   map (busd's isolation: no receiver maps the publisher's pool), once
//!   per receiver set.
//!
//! Prints the µs each costs per payload, and what follows from them: the
//! CPU floor of a message (one fill, one copy) and the most a 1→N fan-out
//! can deliver (its receivers share the copy in their set's pool, and the
//! publisher fills the next payload while the daemon copies one).
//! `--json` prints them as one line for `bench/compare.sh`.

use std::time::Instant;

use busd_shm::PoolWriter;

const POOL: u64 = 16 << 20;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let json = args.next_if(|a| a == "--json").is_some();
    let count: usize = args.next().map_or(5_000, |a| a.parse().expect("COUNT"));
    let size: usize = args.next().map_or(1 << 20, |a| a.parse().expect("SIZE"));
    let (mut publisher, _) = PoolWriter::create("busd-floor-publisher", POOL).expect("pool");
    let (mut receiver, _) = PoolWriter::create("busd-floor-receiver", POOL).expect("pool");
    let blocks = (POOL as usize / size.next_power_of_two()).max(1);
    // Every block touched once first: the pages are mapped in steady state.
    let mut src: Vec<_> = (0..blocks)
        .map(|_| publisher.alloc(size).expect("room"))
        .collect();
    let mut dst: Vec<_> = (0..blocks)
        .map(|_| receiver.alloc(size).expect("room"))
        .collect();
    for (s, d) in src.iter_mut().zip(&mut dst) {
        s.as_mut_slice().fill(1);
        d.as_mut_slice().fill(1);
    }
    let (mut fill, mut copy) = (0.0, 0.0);
    for i in 0..count {
        let seq = i as u8;
        let block = i % blocks;
        let start = Instant::now();
        src[block].as_mut_slice().fill(seq);
        let filled = Instant::now();
        let from = src[block].as_slice();
        dst[(block + blocks / 2) % blocks]
            .as_mut_slice()
            .copy_from_slice(from);
        let copied = Instant::now();
        fill += (filled - start).as_secs_f64();
        copy += (copied - filled).as_secs_f64();
    }
    let per = |total: f64| total / count as f64 * 1e6;
    let (fill, copy) = (per(fill), per(copy));
    if json {
        println!(
            r#"{{"copy_floor":{{"size":{size},"count":{count},"fill_us":{fill:.2},"copy_us":{copy:.2}}}}}"#
        );
        return;
    }
    println!("{size}-byte payloads, {count} of them, {blocks} blocks per pool:");
    println!("fill {fill:.1} us ({:.1} GB/s)", size as f64 / fill / 1e3);
    println!("copy {copy:.1} us ({:.1} GB/s)", size as f64 / copy / 1e3);
    println!(
        "CPU floor of a message (fill + copy): {:.1} us",
        fill + copy
    );
    // The publisher fills while the daemon copies the one before: the
    // slower of the two paces a stream.
    let paced = fill.max(copy);
    for n in [4, 8] {
        let delivered = (n * size) as f64 / paced / 1e3;
        println!("1->{n} (one copy for the set): {delivered:.1} GB/s delivered at most");
    }
}
