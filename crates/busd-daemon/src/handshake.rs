//! The handshake: `Hello`, then the proof of a package claim.
//!
//! Identity is proven, never taken from the client: an unpackaged client
//! is whoever the socket says it is; a package claim must pass one of the
//! proofs the policy configures for that package: peer credentials (uid,
//! and the executable pinned at accept) or an HMAC over a fresh nonce
//! under the package's token. A failed claim is refused with `AuthFailed`
//! and written to the audit log.

use std::time::Duration;

use busd_policy::{Identity, Policy};
use busd_proto::{AUTH_MAC_LEN, AuthKind, ErrorCode, Frame, Hello, Op, PROTOCOL_VERSION, Pfn};
use busd_transport::{BoxReader, BoxWriter, FrameReader, PeerInfo};
use bytes::BytesMut;
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::shared::Shared;

/// Bytes of randomness in each challenge.
const NONCE_LEN: usize = 32;

/// Why the handshake ended without an identity: `None` when the peer left
/// or the daemon is stopping, else the error to send before closing.
pub(crate) type Refusal = Option<(ErrorCode, String)>;

/// Reads the `Hello` and proves the identity it claims, all within
/// `auth_timeout`.
pub(crate) async fn handshake(
    shared: &Shared,
    frames: &mut FrameReader<BoxReader>,
    writer: &mut BoxWriter,
    peer: &PeerInfo,
) -> Result<Identity, Refusal> {
    let deadline = Instant::now() + shared.config.limits.auth_timeout;
    let hello = match next_frame(shared, frames, deadline).await? {
        Op::Hello(h) => h,
        other => return Err(violation(format!("expected Hello, got {}", other.name()))),
    };
    if hello.version != PROTOCOL_VERSION {
        return Err(violation(format!(
            "protocol version {} is not supported (this daemon speaks {PROTOCOL_VERSION})",
            hello.version
        )));
    }
    tracing::debug!(name = %hello.name, uid = ?peer.uid, pid = ?peer.pid, "hello");
    let Hello { pfn, auth, .. } = hello;
    let pfn = match (pfn, auth) {
        (None, AuthKind::None) => return Ok(Identity::unpackaged(peer.uid)),
        (None, auth) => return Err(violation(format!("auth {auth:?} without a package name"))),
        (Some(pfn), _) => pfn,
    };
    let policy = shared.policy();
    let proven = match auth {
        AuthKind::Peer => prove_peer(&policy, &pfn, peer),
        AuthKind::Token => prove_token(shared, &policy, &pfn, frames, writer, deadline).await?,
        AuthKind::None => Err("a package claim needs a proof: peer credentials or a token"),
    };
    match proven {
        Ok(()) => {
            tracing::info!(target: "busd::audit", %pfn, uid = ?peer.uid, pid = ?peer.pid, ?auth, "package proven");
            Ok(Identity::package(pfn, peer.uid))
        }
        Err(reason) => {
            tracing::warn!(
                target: "busd::audit", %pfn, uid = ?peer.uid, pid = ?peer.pid, exe = ?peer.exe,
                ?auth, reason, "authentication failed"
            );
            Err(Some((
                ErrorCode::AuthFailed,
                format!("cannot prove package {pfn}: {reason}"),
            )))
        }
    }
}

fn prove_peer(policy: &Policy, pfn: &Pfn, peer: &PeerInfo) -> Result<(), &'static str> {
    let rules = policy.package(pfn).ok_or("no such package is configured")?;
    if rules.proofs.uids.is_empty() {
        return Err("the package has no peer-credential proof configured");
    }
    if rules.proofs.check_peer(peer.uid, peer.exe.as_deref()) {
        Ok(())
    } else {
        Err("the peer's uid or executable does not match")
    }
}

async fn prove_token(
    shared: &Shared,
    policy: &Policy,
    pfn: &Pfn,
    frames: &mut FrameReader<BoxReader>,
    writer: &mut BoxWriter,
    deadline: Instant,
) -> Result<Result<(), &'static str>, Refusal> {
    let Some(rules) = policy.package(pfn) else {
        return Ok(Err("no such package is configured"));
    };
    let Some(token) = rules.proofs.token.as_ref() else {
        return Ok(Err("the package has no token configured"));
    };
    let mut nonce = vec![0u8; NONCE_LEN];
    if let Err(e) = getrandom::fill(&mut nonce) {
        tracing::error!(cause = %e, "no randomness for a challenge");
        return Ok(Err("the daemon cannot make a challenge"));
    }
    let challenge = Op::Challenge {
        nonce: ByteBuf::from(nonce.clone()),
    };
    write_frame(writer, Frame::new(challenge)).await;
    let mac = match next_frame(shared, frames, deadline).await? {
        Op::Auth { hmac } => hmac,
        other => return Err(violation(format!("expected Auth, got {}", other.name()))),
    };
    if mac.len() == AUTH_MAC_LEN && token.verify(&nonce, pfn, &mac) {
        Ok(Ok(()))
    } else {
        Ok(Err("the token proof does not match"))
    }
}

/// The next frame's op, before `deadline`.
async fn next_frame(
    shared: &Shared,
    frames: &mut FrameReader<BoxReader>,
    deadline: Instant,
) -> Result<Op, Refusal> {
    let next = tokio::select! {
        () = shared.shutdown.cancelled() => return Err(None),
        next = tokio::time::timeout_at(deadline, frames.next()) => next,
    };
    match next {
        Err(_) => {
            let timeout = shared.config.limits.auth_timeout;
            Err(violation(format!(
                "handshake not completed within {}",
                human(timeout)
            )))
        }
        Ok(None) => Err(None),
        Ok(Some(Err(e))) => Err(Some((e.code(), e.to_string()))),
        Ok(Some(Ok(frame))) => Ok(frame.op),
    }
}

fn violation(message: String) -> Refusal {
    Some((ErrorCode::ProtocolViolation, message))
}

fn human(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// Writes one frame straight to the socket (before the writer task exists).
async fn write_frame(writer: &mut BoxWriter, frame: Frame) {
    let mut buf = BytesMut::new();
    if frame.encode(&mut buf).is_ok() {
        // A failed write shows up as the peer's EOF on the next read.
        let _ = writer.write_all(&buf).await;
    }
}

/// Sends the refusal and closes.
pub(crate) async fn refuse(writer: &mut BoxWriter, code: ErrorCode, message: String) {
    write_frame(
        writer,
        Frame::new(Op::Error {
            code,
            message,
            refers: None,
        }),
    )
    .await;
    let _ = writer.shutdown().await;
}
