//! What the payload pool tests share: payloads to recognise, the pools
//! this process maps (from `/proc/self/maps`), subscribers and a daemon
//! with small pools and short block timeouts.

use std::ops::Range;
use std::time::Duration;

use busd_client::{Client, Subscriber};
use busd_e2e::{RawClient, TestDaemon};
use busd_proto::ErrorCode;
use bytes::Bytes;
use futures::StreamExt;

/// A payload whose every byte depends on its position.
pub(crate) fn pattern(len: usize, seed: usize) -> Bytes {
    (0..len).map(|i| ((i + seed) * 31 % 251) as u8).collect()
}

/// A shared mapping of a memfd in this process. Tests run side by side
/// in it, so a pool is known by its inode.
pub(crate) struct Mapped {
    pub(crate) range: Range<usize>,
    pub(crate) inode: u64,
}

/// The mappings of memfd `name` with permissions `perms` (`r--s`: a
/// client's view of a daemon's pool; `rw-s`: a pool of its own).
pub(crate) fn mappings(name: &str, perms: &str) -> Vec<Mapped> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter(|line| line.contains(&format!("memfd:{name} ")))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = fields.first()?.split_once('-')?;
            let range =
                usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?;
            let inode = fields.get(4)?.parse().ok()?;
            (*fields.get(1)? == perms).then_some(Mapped { range, inode })
        })
        .collect()
}

/// The inode of the mapping of memfd `name` with `perms` that holds
/// `bytes`, if one does.
fn mapping_of(bytes: &[u8], name: &str, perms: &str) -> Option<u64> {
    let addr = bytes.as_ptr() as usize;
    mappings(name, perms)
        .into_iter()
        .find(|m| m.range.contains(&addr))
        .map(|m| m.inode)
}

/// Whether `bytes` are a read-only view of the pool the daemon gave this
/// connection.
pub(crate) fn in_own_pool(bytes: &[u8]) -> bool {
    mapping_of(bytes, "busd-pool", "r--s").is_some()
}

/// Whether `bytes` lie in a writable pool of this process (a client's own).
pub(crate) fn in_writable_pool(bytes: &[u8]) -> bool {
    mapping_of(bytes, "busd-pool", "rw-s").is_some()
}

/// The set pool whose read-only view holds `bytes`, by inode.
pub(crate) fn set_pool_of(bytes: &[u8]) -> Option<u64> {
    mapping_of(bytes, "busd-set-pool", "r--s")
}

pub(crate) fn in_set_pool(bytes: &[u8]) -> bool {
    set_pool_of(bytes).is_some()
}

pub(crate) async fn next(sub: &mut Subscriber, what: &str) -> busd_client::Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no message for {what}"))
        .unwrap_or_else(|| panic!("subscription for {what} ended"))
}

/// A `block` subscriber to `subject` on `client`.
pub(crate) async fn block_sub(client: &Client, subject: &str) -> Subscriber {
    let options = busd_client::SubscribeOptions {
        overflow: busd_client::Overflow::Block,
        ..Default::default()
    };
    client.subscribe_with(subject, options).await.unwrap()
}

/// A daemon with 1 MiB pools (16 blocks of 64 KiB) and 300 ms block
/// timeouts.
pub(crate) async fn small_pools_short_timeouts() -> TestDaemon {
    TestDaemon::start_with(|c| {
        c.limits.shm_pool_bytes = 1 << 20;
        c.limits.block_timeout = Duration::from_millis(300);
        c.limits.foreign_block_timeout = Duration::from_millis(300);
    })
    .await
}

/// Waits for the daemon to close `raw`, which must have been told it broke
/// the protocol.
pub(crate) async fn closed_for_violation(raw: &mut RawClient) {
    let frames = tokio::time::timeout(Duration::from_secs(10), raw.recv_until_closed())
        .await
        .expect("the daemon closes the connection");
    assert_eq!(
        RawClient::error_code(&frames),
        Some(ErrorCode::ProtocolViolation),
        "{frames:?}"
    );
}
