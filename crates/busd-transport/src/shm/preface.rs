//! The shm preface: the first bytes an shm client sends on the unix socket,
//! with the fds of its two rings (and of its payload pool) attached
//! (`SCM_RIGHTS`).
//!
//! ```text
//! offset 0   ff ff ff ff        a busd frame length no daemon accepts
//!        4   "SHM1" or "SHM2"   magic and version
//!        8   u64 big-endian     ring capacity in bytes (both rings)
//!       16   u64 big-endian     SHM2 only: the client's pool size (0: none)
//! fds        c2d memfd, c2d readable, c2d writable,
//!            d2c memfd, d2c readable, d2c writable,
//!            SHM2 with a pool: the client's pool memfd
//! ```
//!
//! `c2d` is the ring the client writes and the daemon reads, `d2c` the other
//! way. A plain unix client starts with its `Hello` frame, whose first four
//! bytes are a length below `max_frame`: never `u32::MAX`, so the daemon
//! tells the two apart from the first four bytes. The daemon answers [`ACK`]
//! once it has mapped both rings, or closes the socket; to an SHM2 client
//! the ACK carries the daemon's pool memfd, unless it gives it none.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Bytes of an SHM1 preface, and the first bytes of an SHM2 one.
pub(crate) const LEN: usize = 16;
/// Bytes an SHM2 preface carries after the first [`LEN`]: the pool size.
pub(crate) const V2_EXTRA: usize = 8;
/// The first four bytes: `u32::MAX`, a frame length no daemon accepts.
pub(crate) const MARKER: [u8; 4] = u32::MAX.to_be_bytes();
/// Bytes 4..8 of a preface without pools.
const MAGIC_V1: &[u8; 4] = b"SHM1";
/// Bytes 4..8 of a preface with pools.
const MAGIC_V2: &[u8; 4] = b"SHM2";
/// The fds of the rings, which travel with every preface.
pub(crate) const FD_COUNT: usize = 6;
/// The most fds a preface carries: the rings' and a pool.
pub(crate) const MAX_FDS: usize = FD_COUNT + 1;
/// The daemon's one-byte answer: both rings are mapped (and the client's
/// pool, if it offered one), start talking.
pub(crate) const ACK: u8 = 0x06;
/// The answer when the rings are mapped but the client's pool was not
/// taken (the daemon has pools off, or the pool is over its limit): the
/// client sends large payloads another way.
pub(crate) const ACK_WITHOUT_POOL: u8 = 0x07;

/// The SHM2 preface asking for rings of `capacity` bytes, the client
/// offering a pool of `pool` bytes (0: none).
pub(crate) fn encode(capacity: u64, pool: u64) -> [u8; LEN + V2_EXTRA] {
    let mut out = [0; LEN + V2_EXTRA];
    out[..4].copy_from_slice(&MARKER);
    out[4..8].copy_from_slice(MAGIC_V2);
    out[8..16].copy_from_slice(&capacity.to_be_bytes());
    out[16..].copy_from_slice(&pool.to_be_bytes());
    out
}

/// What the first [`LEN`] bytes of a preface say: the ring capacity, and
/// whether [`V2_EXTRA`] bytes with the pool size follow (SHM2).
///
/// # Errors
/// A description of what is wrong when it is not a busd shm preface.
pub(crate) fn decode(preface: &[u8; LEN]) -> Result<(u64, bool), &'static str> {
    if preface[..4] != MARKER {
        return Err("not an shm preface");
    }
    let v2 = match &preface[4..8] {
        m if m == MAGIC_V1 => false,
        m if m == MAGIC_V2 => true,
        _ => return Err("unknown shm protocol version"),
    };
    let mut capacity = [0; 8];
    capacity.copy_from_slice(&preface[8..]);
    Ok((u64::from_be_bytes(capacity), v2))
}

/// Sends `bytes` with `fds` attached to the first of them, then the rest of
/// `bytes` if the kernel took only part.
pub(crate) async fn send(
    stream: &mut UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::other("too many fds for one message"));
            }
            let iov = [IoSlice::new(bytes)];
            Ok(rustix::net::sendmsg(
                &*stream,
                &iov,
                &mut control,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            )?)
        })
        .await?;
    if sent == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    stream.write_all(&bytes[sent..]).await
}

/// What one [`recv`] got.
pub(crate) struct Received {
    /// Bytes read into the buffer; 0 means end of stream.
    pub(crate) len: usize,
    /// Whether fds were dropped because more came than fit (`MSG_CTRUNC`).
    pub(crate) truncated: bool,
}

/// Reads into `buf`, appending any fds that came along (close-on-exec) to
/// `fds`. At most as many fds as one message carries are taken per call
/// (the caller counts them); more are closed by the kernel and reported as
/// `truncated`.
pub(crate) async fn recv(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Received> {
    stream
        .async_io(Interest::READABLE, || {
            let (len, received, truncated) = crate::unix_fds::recv_with_fds(stream, buf)?;
            fds.extend(received);
            Ok(Received { len, truncated })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(4 << 20, 1 << 24);
        assert_eq!(bytes[..4], MARKER);
        let head: [u8; LEN] = bytes[..LEN].try_into().unwrap();
        assert_eq!(decode(&head), Ok((4 << 20, true)));
        assert_eq!(bytes[LEN..], (1u64 << 24).to_be_bytes());
        let mut v1 = head;
        v1[7] = b'1';
        assert_eq!(decode(&v1), Ok((4 << 20, false)));
        let mut bad = head;
        bad[7] = b'3';
        assert!(decode(&bad).is_err());
        bad[0] = 0;
        assert!(decode(&bad).is_err());
    }
}
