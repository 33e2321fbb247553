//! The ceiling on moving large payloads as sealed memfds, the way busd's
//! shm transport does, measured between two processes with no daemon, no
//! async runtime and no protocol in between.
//!
//! ```text
//! cargo run --release -p busd-shm --example segments -- [COUNT] [SIZE]
//! ```
//!
//! A one-way stream of `COUNT` (default 20,000) payloads of `SIZE` bytes
//! (default 64 KiB) from this process to a child, in one run:
//! - `unix`: each payload written to a unix stream socket and read into a
//!   buffer by the child (two copies, as busd's unix transport);
//! - `segment`: each payload written into a fresh memfd mapped in place
//!   (`SegmentMut`), sealed, and its fd passed with `SCM_RIGHTS`; the child
//!   checks the seals and maps it (`Segment::open`), reads its first bytes
//!   (as busd's bench does) and lets it go: busd's zero-copy path, minus
//!   the daemon. The memfd's pages are new each time: the kernel zeroes
//!   them and both processes fault them in.
//!
//! Both sides keep at most `WINDOW` payloads in flight (the child returns a
//! credit every half window), as busd's bounded queues do. Prints MB/s for
//! each and their ratio.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Instant;

use busd_shm::{Segment, SegmentMut};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

const CHILD_ARG: &str = "--segments-child";
/// Payloads in flight at most, on either path.
const WINDOW: usize = 256;

mod child;

use child::{Failure, dup};

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_ARG) {
        return child(&args[2..]);
    }
    let count: usize = args.get(1).map_or(Ok(20_000), |a| a.parse())?;
    let size: usize = args.get(2).map_or(Ok(64 * 1024), |a| a.parse())?;

    let (mut bytes, child_bytes) = UnixStream::pair()?;
    let (mut fds, child_fds) = UnixStream::pair()?;
    let inherit = [dup(&child_bytes)?, dup(&child_fds)?];
    let mut child = Command::new(std::env::current_exe()?)
        .arg(CHILD_ARG)
        .args([count.to_string(), size.to_string()])
        .args(inherit.iter().map(|fd| fd.as_raw_fd().to_string()))
        .spawn()?;
    drop((inherit, child_bytes, child_fds));

    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut credit = [0u8; 1];
    let unix = timed(count, size, |i| {
        if i >= WINDOW && i % (WINDOW / 2) == 0 {
            bytes.read_exact(&mut credit)?;
        }
        bytes.write_all(&payload)?;
        Ok(())
    })?;
    let segment = timed(count, size, |i| {
        if i >= WINDOW && i % (WINDOW / 2) == 0 {
            fds.read_exact(&mut credit)?;
        }
        let mut seg = SegmentMut::new("busd-floor", size)?;
        seg.as_mut_slice().copy_from_slice(&payload);
        send_fd(&fds, seg.seal()?.as_fd())
    })?;
    if !child.wait()?.success() {
        return Err("the child failed".into());
    }
    println!("a one-way stream of {count} payloads of {size} B between two processes");
    println!("{:<8} {:>10}", "path", "MB/s");
    println!("{:<8} {:>10.0}", "unix", unix);
    println!("{:<8} {:>10.0}", "segment", segment);
    println!("segment/unix {:.2}×", segment / unix);
    Ok(())
}

/// The receiving side: both streams, in order, returning credits.
fn child(args: &[String]) -> Result<(), Failure> {
    let count: usize = args[0].parse()?;
    let size: usize = args[1].parse()?;
    let mut fds = child::inherited(&args[2..]);
    let mut next = || fds.next().ok_or("missing fd")?;
    let mut bytes = UnixStream::from(next()?);
    let mut fds = UnixStream::from(next()?);

    let mut buf = vec![0; size];
    let mut seen = 0u64;
    for i in 1..=count {
        bytes.read_exact(&mut buf)?;
        seen = seen.wrapping_add(u64::from(buf[size - 1]));
        if i % (WINDOW / 2) == 0 {
            bytes.write_all(&[1])?;
        }
    }
    for i in 1..=count {
        let fd = recv_fd(&fds)?;
        let segment = Segment::open(fd.as_fd())?;
        if segment.len() != size {
            return Err("a segment of the wrong size".into());
        }
        let head = segment.as_bytes().first_chunk::<8>().ok_or("short")?;
        seen = seen.wrapping_add(u64::from_le_bytes(*head));
        if i % (WINDOW / 2) == 0 {
            fds.write_all(&[1])?;
        }
    }
    // Keeps the reads from being optimised away.
    std::hint::black_box(seen);
    Ok(())
}

/// Runs `send` for each of `count` payloads of `size` bytes; MB/s.
fn timed(
    count: usize,
    size: usize,
    mut send: impl FnMut(usize) -> Result<(), Failure>,
) -> Result<f64, Failure> {
    let start = Instant::now();
    for i in 0..count {
        send(i)?;
    }
    Ok((count * size) as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Sends one marker byte with `fd` attached.
fn send_fd(sock: &UnixStream, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), Failure> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err("no room for the fd".into());
    }
    let sent = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != 1 {
        return Err("the marker byte was not sent".into());
    }
    Ok(())
}

/// Receives one marker byte and the fd attached to it.
fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, Failure> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes != 1 {
        return Err("the parent closed the fd stream".into());
    }
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err("a marker byte without an fd".into())
}
