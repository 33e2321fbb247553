"""One connection's state, and routing what the daemon sends.

Every call appends its frame to the connection's outgoing buffer (in
order: a request sent after a publish reaches the daemon after it); the
reader routes what arrives synchronously, as it is decoded: a ``Msg`` to
its subscription's queue, a ``Call`` to its service's handler, a ``Resp``
or an ``Error`` naming a request to the waiting caller, a ``Pong`` to the
oldest ``Ping`` waiter.

A subscription or service is confirmed the way the Rust SDK confirms it:
the registration is followed by a ``Ping``, and the daemon answers the
``Ping`` after it has handled the registration, so an ``Error`` naming
the registration arrives before that ``Pong`` or never.

Unlike the Rust SDK, this client does not reconnect: when the connection
is lost, waiting calls fail with ``Disconnected`` (or the daemon's reason,
``SlowConsumer``…), iterations end with it, and the client is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from .endpoint import Endpoint
from .errors import (
    BusdError,
    Closed,
    Disconnected,
    FrameTooLarge,
    Protocol,
    ServiceFailure,
    class_for_code,
    from_daemon,
)
from .frame import Frame, encode_header, frame_head
from .messages import Message, Response
from .ops import (
    Call,
    Dropped,
    Error,
    Headers,
    Msg,
    Ping,
    Pong,
    Resp,
    Serve,
    Status,
    Sub,
    Unsub,
    Welcome,
)

if TYPE_CHECKING:
    from .service import Service
    from .subscription import Subscription
    from .transport import Wire

log = logging.getLogger("busd")

Payload = bytes | bytearray | memoryview | str


def _payload(data: Payload) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a payload is bytes or str, not {type(data).__name__}")


def _headers(headers: Headers | None) -> Headers | None:
    if headers is None:
        return None
    for k, v in headers.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("headers map strings to strings")
    return dict(headers)


class Connection:
    """The state of one connection and the routing of its frames; the
    public calls are :class:`~busd.client.Client`'s."""

    def __init__(
        self,
        wire: Wire,
        welcome: Welcome,
        endpoint: Endpoint,
        early: asyncio.Queue[Frame | None],
        request_timeout: float,
    ) -> None:
        self._wire = wire
        self._welcome = welcome
        self._endpoint = endpoint
        self._request_timeout = request_timeout
        self._loop = asyncio.get_running_loop()
        self._next_id = 1  # sids and rids: unique per connection, never 0
        self._subs: dict[int, Subscription] = {}
        self._services: dict[int, Service] = {}
        self._requests: dict[int, tuple[str, asyncio.Future[Response]]] = {}
        # Waiters in the order their Pings were written: (sid or None, future).
        self._pongs: deque[tuple[int | None, asyncio.Future[None]]] = deque()
        # Registrations awaiting their Pong, with the error that came first.
        self._unconfirmed: dict[int, BusdError | None] = {}
        # Subscriptions and services whose queue is full: reading waits.
        self._holders: set[int] = set()
        # The encoded header of a Pub without headers, per subject.
        self._pub_heads: dict[str, bytes] = {}
        self._max_frame = welcome.limits.max_frame
        self._closing = False
        # Why the connection ended; None while it is open.
        self._error: BusdError | None = None
        # The daemon's last Error without `refers`: why it closes, if it does.
        self._reason: BusdError | None = None
        wire.on_frame = self._route
        wire.on_lost = self._lost
        # What came between Welcome and now, in order.
        while not early.empty():
            frame = early.get_nowait()
            if frame is None:
                self._lost(wire.failure)
            else:
                self._route(frame)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise Closed("the client is closed")

    def _take_id(self) -> int:
        n = self._next_id
        self._next_id = n + 1
        return n

    def _write(self, op: Any, payload: bytes = b"") -> None:
        """Appends a frame.

        Raises:
            FrameTooLarge: over the daemon's ``max_frame`` (nothing appended).
        """
        header = encode_header(op)
        try:
            head = frame_head(header, len(payload), max_frame=self._max_frame)
        except FrameTooLarge as e:
            raise FrameTooLarge(f"cannot send {op.NAME}: {e}") from None
        self._wire.write(head)
        if payload:
            self._wire.write(payload)

    def _ping(self, sid: int | None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._write(Ping())
        self._pongs.append((sid, future))
        return future

    async def _register(self, sid: int, op: Sub | Serve) -> None:
        """Sends a registration and waits for the daemon to confirm it."""
        self._write(op)
        self._unconfirmed[sid] = None
        try:
            await self._ping(sid)
        except BaseException:
            self._forget(sid)
            raise

    def _unregister(self, sid: int) -> None:
        """Ends a subscription or service (its handle asked)."""
        if self._forget(sid) and self._wire.is_open and self._error is None:
            self._write(Unsub(sid))

    def _forget(self, sid: int) -> bool:
        self._unconfirmed.pop(sid, None)
        found = self._subs.pop(sid, None) or self._services.pop(sid, None)
        if sid in self._holders:
            self._unhold_sid(sid)
        return found is not None

    def _hold(self, holder: Subscription | Service) -> None:
        self._holders.add(holder.sid)
        self._wire.pause_reading()

    def _unhold(self, holder: Subscription | Service) -> None:
        self._unhold_sid(holder.sid)

    def _unhold_sid(self, sid: int) -> None:
        self._holders.discard(sid)
        if not self._holders:
            self._wire.resume_reading()

    def _respond(
        self, rid: int, service: str, status: Status, headers: Headers | None, body: bytes
    ) -> None:
        """Answers call ``rid``; an answer over ``max_frame`` is replaced by
        a ``Failure`` saying so, so the caller does not wait for its timeout."""
        if self._error is not None or not self._wire.is_open:
            log.debug("answer to call %s of %s dropped: the connection is gone", rid, service)
            return
        try:
            self._write(Resp(rid, status, _headers(headers)), body)
        except FrameTooLarge:
            why = (
                f"service {service} could not answer: its answer ({len(body)} bytes) is "
                f"over the daemon's max_frame ({self._max_frame})"
            )
            self._write(Resp(rid, Status.FAILURE), why.encode())

    # -- routing what arrives

    def _route(self, frame: Frame) -> None:
        if frame.fd_count or frame.segment_len is not None or frame.pool is not None:
            # Never asked for: fds, segments and pools are unix/shm features.
            self._wire.fail(Protocol(f"busd sent a {frame.op.NAME} with fds or shared memory"))
            return
        op = frame.op
        if isinstance(op, Msg):
            sub = self._subs.get(op.sid)
            if sub is not None:
                sub._deliver(Message(op.subject, frame.payload, op.sender, op.headers))
        elif isinstance(op, Resp):
            self._answer(op, frame.payload)
        elif isinstance(op, Call):
            svc = self._services.get(op.sid)
            if svc is not None:
                svc._call(op, frame.payload)
            else:
                # Unsubscribed meanwhile: the caller hears why, not a timeout.
                why = f"service {op.service} is no longer served on this connection"
                self._respond(op.rid, op.service, Status.FAILURE, None, why.encode())
        elif isinstance(op, Pong):
            self._pong()
        elif isinstance(op, Ping):
            self._write(Pong())
        elif isinstance(op, Error):
            self._daemon_error(op)
        elif isinstance(op, Dropped):
            dropped = self._subs.get(op.sid)
            if dropped is not None:
                dropped.dropped += op.count
        else:
            log.warning("unexpected %s frame from busd ignored", op.NAME)

    def _answer(self, op: Resp, payload: bytes) -> None:
        pending = self._requests.pop(op.rid, None)
        if pending is None:
            return  # its caller gave up (local guard, cancelled)
        service, future = pending
        if future.done():
            return
        response = Response(op.status, payload, op.headers)
        if op.status is Status.SUCCESS:
            future.set_result(response)
        elif op.status is Status.FAILURE:
            reason = payload.decode(errors="replace")
            future.set_exception(
                ServiceFailure(f"service {service} failed: {reason}", response=response)
            )
        else:
            future.set_exception(_verdict(op.status, service, payload))

    def _pong(self) -> None:
        if not self._pongs:
            log.debug("unexpected Pong from busd ignored")
            return
        sid, future = self._pongs.popleft()
        error = None if sid is None else self._unconfirmed.pop(sid, None)
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _daemon_error(self, op: Error) -> None:
        err = from_daemon(op.code, op.message)
        if op.refers is None:
            # Usually the daemon's last frame before it closes, but a few
            # leave the connection open (a Pub to a wildcard, a Block
            # subscriber cut off): kept as the reason if it closes, and
            # reading goes on, as the Rust SDK does.
            log.warning("busd: %s", err)
            self._reason = err
            return
        if op.refers.kind == "Rid":
            pending = self._requests.pop(op.refers.id, None)
            if pending is not None and not pending[1].done():
                pending[1].set_exception(err)
            return
        sid = op.refers.id
        if sid in self._unconfirmed:
            self._unconfirmed[sid] = err
            return
        sub, svc = self._subs.get(sid), self._services.get(sid)
        self._forget(sid)
        if sub is not None:
            sub._end(err)
        elif svc is not None:
            svc._end(err)
        else:
            log.warning("busd ended registration %s: %s", sid, err)

    def _lost(self, cause: BaseException | None) -> None:
        if self._error is None:
            if self._closing:
                self._error = Closed("the client is closed")
            elif self._reason is not None:
                self._error = self._reason
            elif isinstance(cause, BusdError):
                self._error = cause
            else:
                why = f"{cause}" if cause is not None else "closed by busd"
                self._error = Disconnected(f"connection to busd lost: {why}")
        err = self._error
        clean = self._closing
        for _, pong in self._pongs:
            if not pong.done():
                pong.set_exception(err)
        self._pongs.clear()
        for _, answer in self._requests.values():
            if not answer.done():
                answer.set_exception(err)
        self._requests.clear()
        for sub in list(self._subs.values()):
            sub._end(None if clean else err)
        for svc in list(self._services.values()):
            svc._end(None if clean else err, cancel=True)
        self._subs.clear()
        self._services.clear()
        self._holders.clear()


def _verdict(status: Status | str, service: str, payload: bytes) -> BusdError:
    """The error for a status that is the daemon's verdict, in the Rust
    SDK's words; a ``NotAuthorized`` payload is the daemon's reason."""
    if status is Status.NO_RESPONDERS:
        message = f"no responders for service {service}"
    elif status is Status.NOT_AUTHORIZED:
        try:
            why = payload.decode()
        except UnicodeDecodeError:
            why = ""
        message = f"not authorized to call service {service}"
        if why and len(payload) <= 1024:
            message += f": {why}"
    elif status is Status.TIMEOUT:
        message = f"request to service {service} timed out"
    elif status is Status.RESPONDER_GONE:
        message = f"the responder of service {service} went away before answering"
    else:
        message = f"request to service {service} failed: {status}"
    return class_for_code(str(status))(message, code=str(status))
