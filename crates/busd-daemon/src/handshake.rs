//! The handshake's I/O: frames in, the `Challenge` out, within
//! `auth_timeout`. What each frame means, and every proof, is decided by
//! `busd_core::Session`; this module only moves bytes and keeps the clock.

use std::time::Duration;

use busd_core::{NONCE_LEN, Peer, ProtocolError, Session, Step};
use busd_policy::Identity;
use busd_proto::{CodecError, ErrorCode, Frame, Op};
use busd_transport::{BoxReader, BoxWriter, FrameReader, PeerInfo};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::shared::Shared;

/// Why a connection ended before `Welcome`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The peer closed the connection.
    #[error("the peer left")]
    PeerLeft,
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// `auth_timeout` passed.
    #[error("handshake not completed within {}", humantime_serde::re::humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// A frame the codec refused.
    #[error(transparent)]
    Frame(#[from] CodecError),
    /// A frame the protocol refused, or a failed proof.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl HandshakeError {
    /// The code to tell the peer before closing, if there is anyone to tell.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::PeerLeft | Self::ShuttingDown => None,
            Self::TimedOut(_) => Some(ErrorCode::ProtocolViolation),
            Self::Frame(e) => Some(e.code()),
            Self::Protocol(e) => Some(e.code()),
        }
    }
}

/// Reads the `Hello` and proves the identity it claims, all within
/// `auth_timeout`; the session, open, and the identity proven.
pub(crate) async fn handshake(
    shared: &Shared,
    frames: &mut FrameReader<BoxReader>,
    writer: &mut BoxWriter,
    peer: &PeerInfo,
) -> Result<(Session, Identity), HandshakeError> {
    let timeout = shared.config.limits.auth_timeout;
    let deadline = Instant::now() + timeout;
    let proven = Peer {
        uid: peer.uid,
        pid: peer.pid,
        exe: peer.exe.as_deref(),
    };
    let mut session = Session::new();
    loop {
        let op = next_op(shared, frames, deadline, timeout).await?;
        let policy = shared.policy();
        match session.on_handshake(op, &policy, &proven)? {
            Step::Welcome(identity) => return Ok((session, identity)),
            Step::Challenge => {
                let challenge = session.challenge(nonce())?;
                write_frame(writer, Frame::new(challenge)).await;
            }
            // The session yields nothing else before Welcome.
            _ => {}
        }
    }
}

/// Fresh randomness for a token challenge; `None` (logged) if the
/// system has none to give.
fn nonce() -> Option<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    match getrandom::fill(&mut nonce) {
        Ok(()) => Some(nonce),
        Err(e) => {
            tracing::error!(cause = %e, "no randomness for a challenge");
            None
        }
    }
}

/// The next frame's op, before `deadline`.
async fn next_op(
    shared: &Shared,
    frames: &mut FrameReader<BoxReader>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Op, HandshakeError> {
    let next = tokio::select! {
        () = shared.shutdown.cancelled() => return Err(HandshakeError::ShuttingDown),
        next = tokio::time::timeout_at(deadline, frames.next()) => next,
    };
    match next {
        Err(_) => Err(HandshakeError::TimedOut(timeout)),
        Ok(None) => Err(HandshakeError::PeerLeft),
        Ok(Some(frame)) => Ok(frame?.op),
    }
}

/// Writes one frame straight to the socket (before the writer task exists).
async fn write_frame(writer: &mut BoxWriter, frame: Frame) {
    let mut buf = BytesMut::new();
    if frame.encode(&mut buf).is_ok() {
        // A failed write shows up as the peer's EOF on the next read.
        let _ = writer.write_all(&buf).await;
    }
}

/// Sends `code` with `message` and closes.
pub(crate) async fn refuse(writer: &mut BoxWriter, code: ErrorCode, message: String) {
    let error = Op::Error {
        code,
        message,
        refers: None,
    };
    write_frame(writer, Frame::new(error)).await;
    let _ = writer.shutdown().await;
}
