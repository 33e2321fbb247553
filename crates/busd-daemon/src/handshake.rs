//! The handshake's I/O: frames in, the `Challenge` out, within
//! `auth_timeout`. What each frame means, and every proof, is decided by
//! `busd_core::Session`; this module only moves bytes and keeps the clock,
//! and waits the turns that failed proofs impose on their uid: a package
//! claim is judged when `busd_core::FailedProofs` says (a wait that does
//! not count against `auth_timeout`, the client has done nothing slow).

use std::time::Duration;

use busd_core::{NONCE_LEN, Peer, ProtocolError, Session, Step};
use busd_policy::Identity;
use busd_proto::{CodecError, ErrorCode, Frame, Op, Pfn};
use busd_transport::{BoxReader, BoxWriter, FrameReader, PeerInfo};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::shared::Shared;
use crate::sync::lock;

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
    /// Why, as the metrics count refused handshakes: a failed proof's
    /// reason, else the error code; `None` when no one was refused (the
    /// peer left, the daemon is stopping).
    pub(crate) fn reason(&self) -> Option<&'static str> {
        match self {
            Self::PeerLeft | Self::ShuttingDown => None,
            Self::TimedOut(_) => Some("handshake timed out"),
            Self::Protocol(ProtocolError::AuthFailed { reason, .. }) => Some(reason),
            Self::Frame(e) => Some(e.code().as_str()),
            Self::Protocol(e) => Some(e.code().as_str()),
        }
    }

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

/// What a handshake established.
pub(crate) struct Proven {
    /// The protocol session, open.
    pub(crate) session: Session,
    pub(crate) identity: Identity,
    /// Whether the client asked to pass fds ([`Hello::fds`]).
    pub(crate) wants_fds: bool,
    /// Whether the client asked for set pools ([`Hello::set_pools`]).
    pub(crate) wants_set_pools: bool,
}

/// Reads the `Hello` and proves the identity it claims, all within
/// `auth_timeout` (plus the claim's wait for its turn).
pub(crate) async fn handshake(
    shared: &Shared,
    frames: &mut FrameReader<BoxReader>,
    writer: &mut BoxWriter,
    peer: &PeerInfo,
) -> Result<Proven, HandshakeError> {
    let timeout = shared.config.limits.auth_timeout;
    let mut deadline = Instant::now() + timeout;
    let proven = Peer {
        uid: peer.uid,
        pid: peer.pid,
        exe: peer.exe.as_deref(),
        granted: peer.granted.as_ref(),
    };
    let mut session = Session::new();
    let mut wants_fds = false;
    let mut wants_set_pools = false;
    loop {
        let op = next_op(shared, frames, deadline, timeout).await?;
        if let Op::Hello(hello) = &op {
            wants_fds = hello.fds;
            wants_set_pools = hello.set_pools;
            if let Some(pfn) = &hello.pfn {
                deadline += wait_turn(shared, pfn, &proven).await?;
            }
        }
        let policy = shared.policy();
        match session.on_handshake(op, &policy, &proven) {
            Ok(Step::Welcome(identity)) => {
                return Ok(Proven {
                    session,
                    identity,
                    wants_fds,
                    wants_set_pools,
                });
            }
            Ok(Step::Challenge) => {
                let challenge = session.challenge(nonce())?;
                write_frame(writer, Frame::new(challenge)).await;
            }
            // The session yields nothing else before Welcome.
            Ok(_) => {}
            Err(e) => {
                if let ProtocolError::AuthFailed { .. } = e {
                    let now = Instant::now().into_std();
                    lock(&shared.failed_proofs).failed(peer.uid, now);
                }
                return Err(e.into());
            }
        }
    }
}

/// Waits for the turn of `peer`'s claim of `pfn`, after the proofs its
/// uid failed; how long that was. A claim with no turn left is refused
/// here, unjudged (`AuthFailed`, which is not counted as a failure).
async fn wait_turn(
    shared: &Shared,
    pfn: &Pfn,
    peer: &Peer<'_>,
) -> Result<Duration, HandshakeError> {
    let now = Instant::now();
    let turn = lock(&shared.failed_proofs).claim(pfn, peer, now.into_std())?;
    let Some(turn) = turn.map(Instant::from_std) else {
        return Ok(Duration::ZERO);
    };
    tracing::debug!(uid = ?peer.uid, wait = ?(turn - now), "package claim waits its turn after failed proofs");
    tokio::select! {
        () = shared.shutdown.cancelled() => Err(HandshakeError::ShuttingDown),
        () = tokio::time::sleep_until(turn) => Ok(turn - now),
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

#[cfg(test)]
mod tests {
    use busd_proto::{AuthKind, FrameCodec, Hello, PROTOCOL_VERSION, Pfn, auth_mac};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::codec::Decoder;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::Config;
    use crate::hooks::Hooks;

    const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
    const MAPS: &str = "Fabrikam.Maps_1234567890abc";
    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;
    const SECRET: &str = "the secret of maps";

    /// Weather is proven by Alice's uid, Maps by Bob's or by its token
    /// (written in `dir`).
    fn shared(dir: &tempfile::TempDir) -> Shared {
        let token = dir.path().join("maps.key");
        std::fs::write(&token, SECRET).expect("token");
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&token, mode).expect("chmod");
        let text = format!(
            "[[package]]\npfn = \"{WEATHER}\"\nloopback = true\nuids = [{ALICE}]\n\n\
             [[package]]\npfn = \"{MAPS}\"\nloopback = true\nuids = [{BOB}]\n\
             token_file = \"maps.key\"\n"
        );
        let config = Config::parse_at("<test>", &text, dir.path(), &[]).expect("test config");
        Shared::new(config, CancellationToken::new(), Hooks::default())
    }

    fn encode(op: Op) -> BytesMut {
        let mut bytes = BytesMut::new();
        Frame::new(op).encode(&mut bytes).expect("encode");
        bytes
    }

    fn hello_op(pfn: Option<&str>, auth: AuthKind) -> Op {
        Op::Hello(Hello {
            version: PROTOCOL_VERSION,
            pfn: pfn.map(|p| Pfn::parse(p).expect("pfn")),
            name: "test".into(),
            auth,
            fds: false,
            set_pools: false,
        })
    }

    /// The daemon's handshake with a peer of `uid` at the other end of
    /// `daemon_end`; how it ended, and how long it took.
    async fn handshake_with(
        shared: &Shared,
        uid: u32,
        daemon_end: DuplexStream,
    ) -> (Result<Identity, HandshakeError>, Duration) {
        let (reader, writer) = tokio::io::split(daemon_end);
        let mut frames = FrameReader::new(Box::new(reader) as BoxReader, FrameCodec::new(1 << 16));
        let mut writer: BoxWriter = Box::new(writer);
        let peer = PeerInfo {
            uid: Some(uid),
            ..PeerInfo::default()
        };
        let started = Instant::now();
        let ended = handshake(shared, &mut frames, &mut writer, &peer).await;
        (ended.map(|proven| proven.identity), started.elapsed())
    }

    /// A peer of `uid` says `Hello`, claiming `pfn` (if any) by its
    /// credentials.
    async fn hello(
        shared: &Shared,
        uid: u32,
        pfn: Option<&str>,
    ) -> (Result<Identity, HandshakeError>, Duration) {
        let (daemon_end, mut client_end) = tokio::io::duplex(4096);
        let auth = if pfn.is_some() {
            AuthKind::Peer
        } else {
            AuthKind::None
        };
        let hello = encode(hello_op(pfn, auth));
        client_end.write_all(&hello).await.expect("write");
        handshake_with(shared, uid, daemon_end).await
    }

    /// A peer of `uid` claims Maps by its token, and answers the challenge.
    async fn token_hello(
        shared: &Shared,
        uid: u32,
    ) -> (Result<Identity, HandshakeError>, Duration) {
        let (daemon_end, mut client_end) = tokio::io::duplex(4096);
        let client = async move {
            let hello = encode(hello_op(Some(MAPS), AuthKind::Token));
            client_end.write_all(&hello).await.expect("write");
            let mut codec = FrameCodec::new(1 << 16);
            let mut buf = BytesMut::new();
            let nonce = loop {
                if let Some(frame) = codec.decode(&mut buf).expect("decode") {
                    match frame.op {
                        Op::Challenge { nonce } => break nonce,
                        other => panic!("expected a challenge, got {other:?}"),
                    }
                }
                assert_ne!(client_end.read_buf(&mut buf).await.expect("read"), 0);
            };
            let maps = Pfn::parse(MAPS).expect("pfn");
            let hmac = auth_mac(SECRET.as_bytes(), &nonce, &maps).to_vec().into();
            client_end
                .write_all(&encode(Op::Auth { hmac }))
                .await
                .expect("write");
            client_end
        };
        let (ended, _client_end) = tokio::join!(handshake_with(shared, uid, daemon_end), client);
        ended
    }

    fn refused(ended: &Result<Identity, HandshakeError>) -> bool {
        matches!(
            ended,
            Err(HandshakeError::Protocol(ProtocolError::AuthFailed { .. }))
        )
    }

    /// `took` is `expected` ms, to the timer's millisecond.
    fn took(took: Duration, expected: u64) -> bool {
        let expected = Duration::from_millis(expected);
        took >= expected && took <= expected + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn failed_proofs_slow_down_only_the_claims_of_their_uid() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = shared(&dir);
        // Bob claims Weather: refused, at once.
        let (ended, t) = hello(&shared, BOB, Some(WEATHER)).await;
        assert!(refused(&ended) && took(t, 0), "{ended:?} {t:?}");
        // His next claims wait 100 ms, then 200 ms: each failure doubles it.
        let (ended, t) = hello(&shared, BOB, Some(WEATHER)).await;
        assert!(refused(&ended) && took(t, 100), "{ended:?} {t:?}");
        let (ended, t) = hello(&shared, BOB, Some(WEATHER)).await;
        assert!(refused(&ended) && took(t, 200), "{ended:?} {t:?}");
        // Alice is not delayed, nor is Bob's unpackaged client.
        let (ended, t) = hello(&shared, ALICE, Some(WEATHER)).await;
        assert!(ended.is_ok() && took(t, 0), "{ended:?} {t:?}");
        let (ended, t) = hello(&shared, BOB, None).await;
        assert!(ended.is_ok() && took(t, 0), "{ended:?} {t:?}");
        // A claim of his own package waits out his 400 ms and is proven;
        // that clears nothing (a guesser would prove its own package
        // between guesses), his next claim waits its 400 ms after it.
        let (ended, t) = hello(&shared, BOB, Some(MAPS)).await;
        assert!(ended.is_ok() && took(t, 400), "{ended:?} {t:?}");
        let (ended, t) = hello(&shared, BOB, Some(WEATHER)).await;
        assert!(refused(&ended) && took(t, 400), "{ended:?} {t:?}");
        // After ten quiet seconds he starts from nothing.
        tokio::time::advance(busd_core::FAILURES_FORGOTTEN_AFTER).await;
        let (ended, t) = hello(&shared, BOB, Some(WEATHER)).await;
        assert!(refused(&ended) && took(t, 0), "{ended:?} {t:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_does_not_count_against_auth_timeout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut shared = shared(&dir);
        shared.config.limits.auth_timeout = Duration::from_millis(150);
        for _ in 0..3 {
            let (ended, _) = hello(&shared, ALICE, Some(MAPS)).await;
            assert!(refused(&ended), "{ended:?}");
        }
        // 400 ms to wait, longer than the handshake may take, and then
        // the challenge is still answered in time.
        let (ended, t) = token_hello(&shared, ALICE).await;
        assert!(ended.is_ok() && took(t, 400), "{ended:?} {t:?}");
    }
}
