//! Round trips of a small message through one connection, echoed by a
//! listener on another thread: `cargo run --release --example pingpong -- shm`.

use std::time::Instant;

use busd_transport::{Endpoint, Listener, UnixListener, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let shm = std::env::args().nth(1).as_deref() == Some("shm");
    let rounds: usize = std::env::args()
        .nth(2)
        .map_or(20_000, |n| n.parse().expect("rounds"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("busd.sock");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server_path = path.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut listener = UnixListener::bind(&server_path).await.expect("bind");
            ready_tx.send(()).expect("ready");
            let mut conn = listener.accept().await.expect("accept");
            let mut buf = [0u8; 128];
            while conn.reader.read_exact(&mut buf).await.is_ok() {
                conn.writer.write_all(&buf).await.expect("echo");
            }
        });
    });
    ready_rx.recv().expect("server ready");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let endpoint = if shm {
            Endpoint::Shm(path)
        } else {
            Endpoint::Unix(path)
        };
        let mut conn = connect(&endpoint).await.expect("connect");
        let msg = [7u8; 128];
        let mut buf = [0u8; 128];
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            conn.writer.write_all(&msg).await.expect("write");
            conn.reader.read_exact(&mut buf).await.expect("read");
            samples.push(t.elapsed());
        }
        samples.sort();
        println!(
            "{} p50 {:?} p99 {:?}",
            if shm { "shm " } else { "unix" },
            samples[rounds / 2],
            samples[rounds * 99 / 100]
        );
        // Idle: both readers parked; the process should burn no CPU.
        let before = cpu_ticks();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        println!("idle for 1 s: {} CPU ticks", cpu_ticks() - before);
        conn.writer.shutdown().await.expect("shutdown");
    });
    server.join().expect("server");
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}
