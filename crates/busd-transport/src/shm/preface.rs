//! The shm preface: the first bytes an shm client sends on the unix socket,
//! with the six fds of its two rings attached (`SCM_RIGHTS`).
//!
//! ```text
//! offset 0   ff ff ff ff        a busd frame length no daemon accepts
//!        4   "SHM1"             magic and version
//!        8   u64 big-endian     ring capacity in bytes (both rings)
//! fds        c2d memfd, c2d readable, c2d writable,
//!            d2c memfd, d2c readable, d2c writable
//! ```
//!
//! `c2d` is the ring the client writes and the daemon reads, `d2c` the other
//! way. A plain unix client starts with its `Hello` frame, whose first four
//! bytes are a length below `max_frame`: never `u32::MAX`, so the daemon
//! tells the two apart from the first four bytes. The daemon answers [`ACK`]
//! once it has mapped both rings, or closes the socket.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Bytes of the preface.
pub(crate) const LEN: usize = 16;
/// The first four bytes: `u32::MAX`, a frame length no daemon accepts.
pub(crate) const MARKER: [u8; 4] = u32::MAX.to_be_bytes();
/// Bytes 4..8.
const MAGIC: &[u8; 4] = b"SHM1";
/// The fds that travel with the preface.
pub(crate) const FD_COUNT: usize = 6;
/// The daemon's one-byte answer: both rings are mapped, start talking.
pub(crate) const ACK: u8 = 0x06;

/// The preface asking for rings of `capacity` bytes.
pub(crate) fn encode(capacity: u64) -> [u8; LEN] {
    let mut out = [0; LEN];
    out[..4].copy_from_slice(&MARKER);
    out[4..8].copy_from_slice(MAGIC);
    out[8..].copy_from_slice(&capacity.to_be_bytes());
    out
}

/// The ring capacity a complete preface asks for.
///
/// # Errors
/// A description of what is wrong when it is not a busd shm preface.
pub(crate) fn decode(preface: &[u8; LEN]) -> Result<u64, &'static str> {
    if preface[..4] != MARKER {
        return Err("not an shm preface");
    }
    if &preface[4..8] != MAGIC {
        return Err("unknown shm protocol version");
    }
    let mut capacity = [0; 8];
    capacity.copy_from_slice(&preface[8..]);
    Ok(u64::from_be_bytes(capacity))
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
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FD_COUNT))];
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
        let bytes = encode(4 << 20);
        assert_eq!(bytes[..4], MARKER);
        assert_eq!(decode(&bytes), Ok(4 << 20));
        let mut bad = bytes;
        bad[7] = b'2';
        assert!(decode(&bad).is_err());
        bad[0] = 0;
        assert!(decode(&bad).is_err());
    }
}
