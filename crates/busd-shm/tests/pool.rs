//! Payload pools through their public API, as two processes would use them:
//! the writer's side and a reader opening the memfd it was passed.

use std::os::fd::{AsFd, OwnedFd};

use busd_shm::{MIN_POOL, POOL_SEALS, PoolError, PoolReader, PoolWriter, ShmError, create_memfd};

const MIB: usize = 1 << 20;

fn pool(size: u64) -> (PoolWriter, PoolReader, OwnedFd) {
    let (writer, fd) = PoolWriter::create("busd-test-pool", size).unwrap();
    let reader = PoolReader::open(fd.as_fd()).unwrap();
    (writer, reader, fd)
}

#[test]
fn a_payload_written_in_a_block_is_read_in_place_and_the_block_comes_back() {
    let (mut writer, reader, _fd) = pool(4 * MIB as u64);
    let mut slot = writer.alloc(MIB).unwrap();
    slot.as_mut_slice().fill(0xab);
    slot.as_mut_slice()[..5].copy_from_slice(b"hello");
    let (offset, len) = (slot.offset(), slot.len() as u64);
    let view = reader.view(offset, len).unwrap();
    assert_eq!(&view.as_slice()[..5], b"hello");
    assert!(view.as_slice()[5..].iter().all(|&b| b == 0xab));
    let mut copied = [0; 5];
    reader.copy_to(offset, &mut copied).unwrap();
    assert_eq!(&copied, b"hello");
    assert_eq!(writer.in_use(), MIB as u64);
    drop(view);
    writer.release(offset).unwrap();
    assert_eq!(writer.in_use(), 0);
}

#[test]
fn the_reader_cannot_write_the_pool_nor_resize_it() {
    let (_writer, _reader, fd) = pool(MIN_POOL);
    let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
    assert!(seals.contains(POOL_SEALS), "{seals:?}");
    // FUTURE_WRITE refuses write() as it refuses a writable mapping.
    let written = rustix::io::pwrite(&fd, b"tamper", 0);
    assert_eq!(written, Err(rustix::io::Errno::PERM));
    assert!(rustix::fs::ftruncate(&fd, 0).is_err());
    assert!(rustix::fs::ftruncate(&fd, 2 * MIN_POOL).is_err());
}

#[test]
fn what_a_peer_says_about_blocks_is_checked() {
    let (mut writer, reader, _fd) = pool(MIN_POOL);
    let slot = writer.alloc(100).unwrap();
    let offset = slot.offset();
    assert_eq!(
        reader.view(MIN_POOL - 10, 11).unwrap_err(),
        PoolError::OutOfBounds {
            offset: MIN_POOL - 10,
            len: 11,
            size: MIN_POOL
        }
    );
    assert!(reader.view(u64::MAX, 2).is_err(), "no overflow");
    assert!(reader.copy_to(1, &mut vec![0; MIN_POOL as usize]).is_err());
    assert_eq!(
        writer.release(offset + 8),
        Err(PoolError::NotLent(offset + 8))
    );
    writer.release(offset).unwrap();
    assert_eq!(writer.release(offset), Err(PoolError::NotLent(offset)));
}

#[test]
fn a_memfd_that_is_not_a_sealed_pool_is_refused() {
    let plain = create_memfd("not-a-pool", MIN_POOL).unwrap();
    let err = PoolReader::open(plain.as_fd()).unwrap_err();
    assert!(matches!(err, ShmError::MissingSeals { .. }), "{err}");
    let odd = create_memfd("odd", MIN_POOL + 4096).unwrap();
    assert!(matches!(
        PoolReader::open(odd.as_fd()),
        Err(ShmError::BadSize { .. })
    ));
    assert!(PoolWriter::create("odd", 3 * MIN_POOL).is_err());
}

#[test]
fn a_busy_pool_lends_nothing_more_until_blocks_come_back() {
    let (mut writer, _reader, _fd) = pool(4 * MIB as u64);
    let slots: Vec<_> = (0..4).map(|_| writer.alloc(MIB).unwrap()).collect();
    assert!(writer.alloc(1).is_none());
    assert!(writer.alloc(5 * MIB).is_none(), "larger than the pool");
    writer.release(slots[2].offset()).unwrap();
    assert_eq!(writer.alloc(MIB).unwrap().offset(), slots[2].offset());
}

/// This thread's minor page faults so far (`/proc/thread-self/stat`,
/// field 10): other test threads' faults are not counted.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // After the command name's closing parenthesis: state is field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[10 - 3].parse().unwrap()
}

#[test]
fn steady_traffic_through_a_pool_takes_no_page_faults() {
    let (mut writer, reader, _fd) = pool(8 * MIB as u64);
    let payload = vec![7u8; MIB];
    let round = |writer: &mut PoolWriter| {
        let mut slot = writer.alloc(MIB).unwrap();
        slot.as_mut_slice().copy_from_slice(&payload);
        let view = reader.view(slot.offset(), MIB as u64).unwrap();
        assert_eq!(view.as_slice()[MIB - 1], 7);
        drop(view);
        writer.release(slot.offset()).unwrap();
    };
    // The first rounds touch the pages: the faults a pool costs once.
    for _ in 0..4 {
        round(&mut writer);
    }
    let before = minor_faults();
    for _ in 0..1000 {
        round(&mut writer);
    }
    let faults = minor_faults() - before;
    eprintln!("minor page faults in 1,000 rounds of 1 MiB through a pool: {faults}");
    // 1 GiB moved; a fresh memfd per message would fault 256 times each.
    assert!(faults < 10, "{faults} page faults in 1,000 rounds of 1 MiB");
}
