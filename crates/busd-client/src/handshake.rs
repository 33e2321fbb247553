//! Connecting and the handshake: `Hello`, then `Challenge` and `Auth` when
//! the daemon asks for a token proof, until `Welcome` or the daemon's refusal.
//!
//! Nothing but the handshake is read or written until `Welcome`, so a
//! refused client has sent nothing else.

use std::time::Duration;

use busd_proto::{Frame, Hello, Op, PROTOCOL_VERSION, Welcome, auth_mac, encode_head};
use busd_transport::{BoxReader, BoxWriter, ConnectOptions, FdSender, FrameReader};
use bytes::BytesMut;
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;

use crate::dial::Dial;
use crate::error::{Error, ErrorKind};
use crate::identity::{Identity, Proof};

/// How long connecting plus the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The frame limit while the daemon's is not known yet (`Welcome` is small).
const HANDSHAKE_MAX_FRAME: u32 = 64 * 1024;

/// Slack over `max_frame` for frames the daemon sends: a `Msg` header (with
/// the sender's identity) can be longer than the `Pub` header it came from.
const INBOUND_SLACK: u32 = 64 * 1024;

/// What the client says about itself in `Hello`, and how it proves it; the
/// same at every reconnect.
#[derive(Debug, Clone)]
pub(crate) struct HelloOptions {
    pub(crate) name: String,
    pub(crate) identity: Identity,
    /// How to connect (the shm ring size).
    pub(crate) connect: ConnectOptions,
    /// Whether to ask for fd passing ([`Hello::fds`]).
    pub(crate) fds: bool,
}

/// An established, welcomed connection, not yet split into tasks.
pub(crate) struct Session {
    pub(crate) reader: FrameReader<BoxReader>,
    pub(crate) writer: BoxWriter,
    pub(crate) welcome: Welcome,
    /// Passes payload segments to the daemon (shm connections only).
    pub(crate) fds: Option<FdSender>,
}

/// Connects to `endpoint` and performs the handshake.
///
/// # Errors
/// [`ErrorKind::Config`] when the token file cannot be read (nothing is
/// sent); [`ErrorKind::Connect`] when the transport or the handshake fails
/// or times out; the daemon's refusal (`Error{code}`) keeps its code's kind,
/// e.g. [`ErrorKind::AuthFailed`].
pub(crate) async fn open(endpoint: &Dial, hello: &HelloOptions) -> Result<Session, Error> {
    let proof = hello.identity.proof()?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, open_inner(endpoint, hello, &proof)).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Connect,
            format!("no handshake with busd at {endpoint} within {HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}

async fn open_inner(
    endpoint: &Dial,
    hello: &HelloOptions,
    proof: &Proof,
) -> Result<Session, Error> {
    let conn = endpoint
        .connect(&hello.connect)
        .await
        .map_err(|e| connect_error("cannot connect to busd", e))?;
    let mut writer = conn.writer;
    let (codec, fds) = busd_transport::frame_codec(
        conn.fds,
        HANDSHAKE_MAX_FRAME,
        busd_transport::Mapping::Mapped,
    );
    let mut reader = FrameReader::new(conn.reader, codec);
    // Taken from the start when asked for: the daemon passes none before
    // `Welcome` grants them, and it grants them only if the transport can.
    if let Some(fds) = fds.as_ref().filter(|_| hello.fds) {
        fds.accept();
    }
    // Set pools likewise: asked for on every shm connection (they only
    // spare copies), and mapped from the first frame that names one.
    let set_pools = fds.as_ref().and_then(FdSender::set_pools);
    if let Some(set_pools) = set_pools {
        set_pools.accept();
    }

    let op = Op::Hello(Hello {
        version: PROTOCOL_VERSION,
        pfn: proof.pfn.clone(),
        name: hello.name.clone(),
        auth: proof.auth,
        fds: hello.fds,
        set_pools: set_pools.is_some(),
    });
    send(&mut writer, &op, endpoint).await?;
    let welcome = await_welcome(&mut reader, &mut writer, proof, endpoint).await?;
    check_welcome(proof, &welcome, endpoint)?;
    reader
        .codec_mut()
        .set_max_frame(welcome.limits.max_frame.saturating_add(INBOUND_SLACK));
    Ok(Session {
        reader,
        writer,
        welcome,
        fds,
    })
}

/// Reads the daemon's side of the handshake after `Hello`: answers one
/// `Challenge` with the token proof, until `Welcome` or a refusal.
async fn await_welcome(
    reader: &mut FrameReader<BoxReader>,
    writer: &mut BoxWriter,
    proof: &Proof,
    endpoint: &Dial,
) -> Result<Welcome, Error> {
    let mut challenged = false;
    loop {
        match reader.next().await {
            Some(Ok(Frame {
                op: Op::Welcome(welcome),
                ..
            })) => return Ok(welcome),
            Some(Ok(Frame {
                op: Op::Challenge { nonce },
                ..
            })) => {
                if challenged {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("busd at {endpoint} sent a second Challenge"),
                    ));
                }
                challenged = true;
                let hmac = answer_challenge(proof, &nonce, endpoint)?;
                send(writer, &Op::Auth { hmac }, endpoint).await?;
            }
            Some(Ok(Frame {
                op: Op::Error { code, message, .. },
                ..
            })) => {
                let err = Error::from_daemon(code, &message);
                return Err(Error::new(
                    err.kind(),
                    format!("busd at {endpoint} refused the connection: {err}"),
                )
                .with_source(err));
            }
            Some(Ok(frame)) => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "busd at {endpoint} sent {} instead of Welcome",
                        frame.op.name()
                    ),
                ));
            }
            Some(Err(e)) => {
                return Err(connect_error(&format!("bad handshake from {endpoint}"), e));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Connect,
                    format!("busd at {endpoint} closed the connection during the handshake"),
                ));
            }
        }
    }
}

/// The `Auth{hmac}` answer to a `Challenge{nonce}`.
///
/// # Errors
/// [`ErrorKind::AuthFailed`] when the client has no token to answer with.
fn answer_challenge(proof: &Proof, nonce: &[u8], endpoint: &Dial) -> Result<ByteBuf, Error> {
    match (&proof.pfn, &proof.token) {
        (Some(pfn), Some(token)) => {
            Ok(ByteBuf::from(auth_mac(token.secret(), nonce, pfn).to_vec()))
        }
        (Some(pfn), None) => Err(Error::new(
            ErrorKind::AuthFailed,
            format!(
                "busd at {endpoint} asks for a token to prove package {pfn}, and no \
                 token file is set (ClientBuilder::token_file, --token-file)"
            ),
        )),
        (None, _) => Err(Error::new(
            ErrorKind::AuthFailed,
            format!("busd at {endpoint} asks an unpackaged client for a token proof"),
        )),
    }
}

/// Checks that the daemon welcomed the package this client claimed.
fn check_welcome(proof: &Proof, welcome: &Welcome, endpoint: &Dial) -> Result<(), Error> {
    match &proof.pfn {
        Some(claimed) if welcome.pfn.as_ref() != Some(claimed) => {
            let got = welcome.pfn.as_ref().map_or_else(
                || "an unpackaged client".to_owned(),
                |p| format!("package {p}"),
            );
            Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "busd at {endpoint} welcomed this client as {got}, not as package {claimed}"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Writes one payload-less handshake frame.
async fn send(writer: &mut BoxWriter, op: &Op, endpoint: &Dial) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    encode_head(op, 0, &mut buf)
        .map_err(|e| connect_error(&format!("cannot encode {}", op.name()), e))?;
    writer
        .write_all(&buf)
        .await
        .map_err(|e| connect_error(&format!("cannot send {} to {endpoint}", op.name()), e))
}

/// A [`ErrorKind::Connect`] error: `what` failed because of `err`, its source.
fn connect_error(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Connect, format!("{what}: {err}")).with_source(err)
}
