//! Set pools as a client's decoder takes them: the pool's fd passed beside
//! the stream before the first frame naming it, mapped once, its blocks
//! handed back with its id; forgotten on `PoolGone`; refused where not
//! agreed to.

use busd_proto::{Body, POOL_ID_SHIFT, PoolFd, encode_head_with};
use busd_transport::{PoolOut, SetPoolsIn};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::pools::{End, next, pair, pub_op};
use super::{PROMPT, Server, timeout};

const ID: u32 = 7;

/// Writes `payload` into `pool` and sends it to the client as pooled in
/// set pool [`ID`], passing the pool's fd first if `pass`; the block's
/// offset in the pool.
async fn send_in_set(
    daemon: &mut End,
    pool: &PoolOut,
    fd: &PoolFd,
    payload: &[u8],
    pass: bool,
) -> u64 {
    if pass {
        assert!(daemon.fds.try_pass_pool(fd).unwrap(), "room on the socket");
    }
    let Some(Body::Pooled { offset, len }) = pool.lend(payload) else {
        panic!("room in the pool");
    };
    let body = Body::Pooled {
        offset: (u64::from(ID) << POOL_ID_SHIFT) | offset,
        len,
    };
    let mut head = BytesMut::new();
    encode_head_with(&pub_op(), body, &mut head).unwrap();
    daemon.writer.write_all(&head).await.unwrap();
    daemon.writer.flush().await.unwrap();
    offset
}

fn set_pools(end: &End) -> &SetPoolsIn {
    end.fds.set_pools().expect("shm")
}

#[tokio::test]
async fn a_set_pool_is_mapped_from_its_first_frame_and_its_blocks_come_back_tagged() {
    let mut server = Server::start().await;
    let (mut daemon, mut client) = pair(&mut server).await;
    set_pools(&client).accept();
    let (pool, fd) = PoolOut::create("test-set-pool", 4 << 20).unwrap();
    let fd = PoolFd::new(fd, ID);
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 241) as u8).collect();

    let first = send_in_set(&mut daemon, &pool, &fd, &big, true).await;
    let frame = next(&mut client).await;
    assert_eq!(frame.payload, big);
    assert_eq!(set_pools(&client).len(), 1, "mapped");
    // Named again: read from the mapping it has, no fd this time.
    let second = send_in_set(&mut daemon, &pool, &fd, &big[..5000], false).await;
    let again = next(&mut client).await;
    assert_eq!(again.payload, big[..5000]);
    drop((frame, again));
    let tag = u64::from(ID) << POOL_ID_SHIFT;
    let releases = client.fds.releases().unwrap();
    assert_eq!(releases.take(), [tag | first, tag | second]);

    // Gone: a frame naming it later needs its fd passed again.
    set_pools(&client).gone(ID);
    assert!(set_pools(&client).is_empty());
    pool.handed_back(&[first, second]).unwrap();
    send_in_set(&mut daemon, &pool, &fd, &big[..100], false).await;
    let refused = timeout(PROMPT, client.frames.next())
        .await
        .expect("an answer in time")
        .expect("a result");
    let err = refused.expect_err("no fd came with it");
    assert!(err.to_string().contains("set pool 7"), "{err}");
}

#[tokio::test]
async fn a_set_pool_on_a_connection_that_did_not_agree_is_refused() {
    let mut server = Server::start().await;
    let (mut daemon, mut client) = pair(&mut server).await;
    let (pool, fd) = PoolOut::create("test-set-pool", 1 << 20).unwrap();
    let fd = PoolFd::new(fd, ID);
    send_in_set(&mut daemon, &pool, &fd, &[1; 20_000], true).await;
    let refused = timeout(PROMPT, client.frames.next())
        .await
        .expect("an answer in time")
        .expect("a result");
    let err = refused.expect_err("not agreed");
    assert!(err.to_string().contains("takes none"), "{err}");
    assert!(set_pools(&client).is_empty());
}
