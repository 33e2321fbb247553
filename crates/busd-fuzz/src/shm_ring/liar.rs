//! Memfds that claim to be a ring, opened as a peer's would be.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use busd_shm::{HEADER_SIZE, RING_SEALS, Ring, create_memfd, seal};

use super::ring::Peer;
use super::{CAPACITY, HEAD, HEADER_SIZE_FIELD, Liar, MAGIC, TAIL, VERSION};

/// Writes a genuine header for a ring of `capacity` bytes into a memfd of
/// `liar`'s size, seals and pokes it as `liar` says, and opens it.
///
/// # Panics
/// If it opens while its size, seals or header (read back after the
/// pokes) are not a fresh ring's, or fails to open while they all are.
pub fn open_liar(capacity: u64, liar: &Liar) {
    let honest = HEADER_SIZE as u64 + capacity;
    let size = liar.size.map_or(honest, |units| u64::from(units) * 16);
    let fd = create_memfd("fuzz-liar", size).expect("memfd");
    let peer = Peer(File::from(fd.try_clone().expect("dup")));
    if size >= HEADER_SIZE as u64 {
        peer.poke(0, &MAGIC.to_ne_bytes());
        peer.poke(CAPACITY, &capacity.to_ne_bytes());
        peer.poke(VERSION, &1_u32.to_ne_bytes());
        peer.poke(HEADER_SIZE_FIELD, &(HEADER_SIZE as u32).to_ne_bytes());
    }
    let seals = liar.seal_flags();
    if !seals.is_empty() {
        seal(fd.as_fd(), seals).expect("seal");
    }
    for (at, bytes) in &liar.pokes {
        let at = u64::from(*at) % HEADER_SIZE as u64;
        // Within the memfd: a write past its end would grow it, or fail.
        let n = bytes.len().min(size.saturating_sub(at) as usize);
        peer.poke(at, &bytes[..n]);
    }
    // What the header says now, pokes and all (zeros past a short memfd).
    let field = |at: u64, width: usize| {
        let mut b = [0; 8];
        let n = (size.saturating_sub(at) as usize).min(width);
        peer.0.read_exact_at(&mut b[..n], at).expect("pread");
        match width {
            4 => u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
            _ => u64::from_ne_bytes(b),
        }
    };
    let said = field(CAPACITY, 8);
    let genuine = size >= HEADER_SIZE as u64
        && field(0, 8) == MAGIC
        && field(VERSION, 4) == 1
        && field(HEADER_SIZE_FIELD, 4) == HEADER_SIZE as u64
        && said.is_power_of_two()
        && (busd_shm::MIN_CAPACITY..=busd_shm::MAX_CAPACITY).contains(&said)
        && size == HEADER_SIZE as u64 + said
        && field(TAIL, 8) == 0
        && field(HEAD, 8) == 0
        && seals == RING_SEALS;
    match Ring::open(fd) {
        Ok(ring) => {
            assert!(genuine, "a lying memfd opened: {liar:?}");
            assert_eq!(ring.capacity(), said);
        }
        Err(e) => assert!(!genuine, "a genuine ring refused: {e}: {liar:?}"),
    }
}
