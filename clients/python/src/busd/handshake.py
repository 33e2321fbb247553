"""Connecting and the handshake: ``Hello``, then ``Challenge`` and ``Auth``
when the daemon asks for a token proof, until ``Welcome`` or the daemon's
``Error``.

Nothing but the handshake is written until ``Welcome``, so a refused client
has sent nothing else (the daemon closes a connection that sends anything
else first).
"""

from __future__ import annotations

import asyncio

from .auth import Identity, auth_mac
from .endpoint import Endpoint
from .errors import AuthFailed, BusdError, Connect, Protocol, class_for_code, from_daemon
from .frame import Frame, encode_frame
from .ops import Auth, Challenge, Error, Hello, Welcome
from .transport import Wire, open_wire

#: The protocol version this client speaks.
PROTOCOL_VERSION = 1

#: The frame limit while the daemon's is not known yet (``Welcome`` is small).
HANDSHAKE_MAX_FRAME = 64 * 1024

#: Slack over ``max_frame`` for frames the daemon sends: a ``Msg`` header
#: (with the sender's identity) can be longer than the ``Pub`` it came from.
INBOUND_SLACK = 64 * 1024


async def open_session(
    endpoint: Endpoint, identity: Identity, name: str, timeout: float
) -> tuple[Wire, Welcome, asyncio.Queue[Frame | None]]:
    """Connects to ``endpoint`` and performs the handshake, within ``timeout``.

    Returns the connection, the daemon's ``Welcome`` and the queue where
    what arrives after it waits (``None``: the connection was lost) until
    the client takes over the connection's callbacks.

    Raises:
        Config: the token file cannot be read (nothing is sent).
        Connect: the transport or the handshake failed or timed out.
        AuthFailed: the daemon refused the identity proof (as every other
            refusal, it keeps its code's class).
    """
    secret = identity.secret()  # read first: a bad token file sends nothing
    try:
        return await asyncio.wait_for(_open(endpoint, identity, secret, name), timeout)
    except TimeoutError:
        raise Connect(f"no handshake with busd at {endpoint} within {timeout:g}s") from None


async def _open(
    endpoint: Endpoint, identity: Identity, secret: bytes | None, name: str
) -> tuple[Wire, Welcome, asyncio.Queue[Frame | None]]:
    wire = await open_wire(endpoint, HANDSHAKE_MAX_FRAME)
    frames: asyncio.Queue[Frame | None] = asyncio.Queue()
    wire.on_frame = frames.put_nowait
    wire.on_lost = lambda exc: frames.put_nowait(None)
    try:
        hello = Hello(PROTOCOL_VERSION, identity.pfn, name, identity.auth)
        _send(wire, encode_frame(hello))
        welcome = await _await_welcome(wire, frames, identity, secret, endpoint)
    except BaseException:
        wire.close()
        raise
    _check_welcome(identity, welcome, endpoint)
    wire.decoder.max_frame = welcome.limits.max_frame + INBOUND_SLACK
    return wire, welcome, frames


def _send(wire: Wire, data: bytes) -> None:
    wire.write(data)
    wire.flush()


async def _await_welcome(
    wire: Wire,
    frames: asyncio.Queue[Frame | None],
    identity: Identity,
    secret: bytes | None,
    endpoint: Endpoint,
) -> Welcome:
    challenged = False
    while True:
        frame = await frames.get()
        if frame is None:
            if wire.failure is not None:
                raise Connect(f"bad handshake from {endpoint}: {wire.failure}") from wire.failure
            raise Connect(f"busd at {endpoint} closed the connection during the handshake")
        op = frame.op
        if isinstance(op, Welcome):
            return op
        if isinstance(op, Challenge):
            if challenged:
                raise Protocol(f"busd at {endpoint} sent a second Challenge")
            challenged = True
            _send(wire, encode_frame(Auth(_answer(identity, secret, op.nonce, endpoint))))
        elif isinstance(op, Error):
            cause = from_daemon(op.code, op.message)
            err: BusdError = class_for_code(op.code)(
                f"busd at {endpoint} refused the connection: {cause}", code=op.code
            )
            raise err from cause
        else:
            raise Protocol(f"busd at {endpoint} sent {op.NAME} instead of Welcome")


def _answer(identity: Identity, secret: bytes | None, nonce: bytes, endpoint: Endpoint) -> bytes:
    if identity.pfn is None:
        raise AuthFailed(f"busd at {endpoint} asks an unpackaged client for a token proof")
    if secret is None:
        raise AuthFailed(
            f"busd at {endpoint} asks for a token to prove package {identity.pfn}, and no "
            "token file is set (token_file=...)"
        )
    return auth_mac(secret, nonce, identity.pfn)


def _check_welcome(identity: Identity, welcome: Welcome, endpoint: Endpoint) -> None:
    # The daemon welcomes the claimed package or refuses; anything else is
    # a daemon this client must not trust with its claim. (An inherited
    # connection claims nothing and is welcomed as its package.)
    if identity.pfn is not None and welcome.pfn != identity.pfn:
        got = "an unpackaged client" if welcome.pfn is None else f"package {welcome.pfn}"
        raise Protocol(
            f"busd at {endpoint} welcomed this client as {got}, not as package {identity.pfn}"
        )
