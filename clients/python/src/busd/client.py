"""The client's calls: publish, subscribe, request, serve, flush, close.

The state they share and the routing of what arrives are the
connection's (``connection.py``); this module is what a user calls.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

from .connection import Connection, Payload, _headers, _payload
from .errors import FrameTooLarge, Timeout
from .frame import encode_header
from .messages import Response
from .ops import Headers, Limits, Overflow, Pub, Req, Serve, Sub
from .service import Handler, Service
from .subject import check as check_subject
from .subject import literal
from .subscription import Subscription

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

#: How much longer than a request's timeout the client waits on its own,
#: in case the daemon dies without answering (the daemon times requests out).
GUARD_MARGIN = 1.0

#: Messages a subscription holds before the client stops reading.
DEFAULT_CAPACITY = 4096

#: Handlers a service runs at once by default.
DEFAULT_CONCURRENCY = 64

_WORDS = struct.Struct(">II")


class Client(Connection):
    """A connection to busd: publish, subscribe, request and serve.

    Made by :func:`~busd.connect`; use it as ``async with`` or
    :meth:`close` it.
    """

    # ------------------------------------------------------------ properties

    @property
    def client_id(self) -> int:
        """The daemon's id for this connection, what receivers see as
        ``sender.client_id``."""
        return self._welcome.client_id

    @property
    def pfn(self) -> str | None:
        """The package the daemon proved for this connection; ``None`` for
        an unpackaged client."""
        return self._welcome.pfn

    @property
    def limits(self) -> Limits:
        """The limits the daemon set for this connection."""
        return self._welcome.limits

    @property
    def endpoint(self) -> str:
        """Where this client is connected, as a URL."""
        return str(self._endpoint)

    @property
    def is_closed(self) -> bool:
        """Whether the connection is gone (closed, or lost)."""
        return self._error is not None or self._closing

    # ------------------------------------------------------------ publishing

    async def publish(
        self, subject: str, payload: Payload = b"", headers: Headers | None = None
    ) -> None:
        """Publishes ``payload`` to the literal ``subject``.

        Returns once the message is queued for the connection; :meth:`flush`
        waits until the daemon has handled it. The access rules decide,
        silently, who receives it (a publisher never learns who listens).

        Raises:
            InvalidSubject: a malformed or wildcard subject (nothing sent).
            FrameTooLarge: over the daemon's ``max_frame`` (nothing sent).
            Closed, Disconnected: the connection is gone.
        """
        self._check_open()
        data = _payload(payload)
        if headers is None:
            header = self._pub_heads.get(subject)
            if header is None:
                header = self._pub_head(subject)
        else:
            header = encode_header(Pub(literal(subject, "publish to"), _headers(headers)))
        total = 4 + len(header) + len(data)
        if total > self._max_frame:
            raise FrameTooLarge(
                f"cannot publish to {subject}: a frame of {total} bytes is over the "
                f"daemon's max_frame of {self._max_frame}"
            )
        wire = self._wire
        wire.write(_WORDS.pack(total, len(header)) + header)
        wire.write(data)
        if wire.write_paused:
            await wire.drain()

    def _pub_head(self, subject: str) -> bytes:
        header = encode_header(Pub(literal(subject, "publish to")))
        if len(self._pub_heads) >= 1024:
            self._pub_heads.clear()  # a stream of ever new subjects: stay small
        self._pub_heads[subject] = header
        return header

    # ------------------------------------------------------------ subscribing

    async def subscribe(
        self,
        subject: str,
        queue: str | None = None,
        *,
        overflow: Overflow | str = Overflow.DISCONNECT,
        capacity: int = DEFAULT_CAPACITY,
    ) -> Subscription:
        """Subscribes to ``subject``: ``*`` matches one token, ``>`` one or
        more trailing ones. With ``queue``, joins that queue group: each
        message goes to one member of the group (and to every plain
        subscriber). ``overflow`` is what the daemon does when this
        subscriber falls behind: ``"Disconnect"`` (``SlowConsumer``),
        ``"DropOldest"`` (counted in ``dropped``) or ``"Block"`` (the
        publisher waits, within the daemon's limits).

        Returns once the daemon has the subscription: a message published
        after this returns is delivered to it.

        Raises:
            InvalidSubject: a malformed subject.
            LimitExceeded: the daemon's subscription limit.
            Closed, Disconnected: the connection is gone.
        """
        self._check_open()
        check_subject(subject)
        overflow = Overflow(overflow)
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        sid = self._take_id()
        sub = Subscription(self, sid, subject, queue, overflow, capacity)
        self._subs[sid] = sub
        await self._register(sid, Sub(sid, subject, queue, overflow))
        return sub

    # ------------------------------------------------------------ requests

    async def request(
        self,
        service: str,
        payload: Payload = b"",
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Response:
        """Calls ``service`` with ``payload`` and returns its ``Success``
        answer; the daemon waits ``timeout`` seconds (default: the client's
        ``request_timeout``, 5 s) for it.

        Raises:
            ServiceFailure: the service answered ``Failure`` (its answer is
                the exception's ``response``).
            NoResponders, NotAuthorized, Timeout, ResponderGone,
            UnknownService, LimitExceeded: the daemon's verdict.
            InvalidSubject, FrameTooLarge: locally, nothing sent.
            Closed, Disconnected: the connection is gone.
        """
        self._check_open()
        literal(service, "call")
        seconds = self._request_timeout if timeout is None else timeout
        timeout_ms = min(max(int(seconds * 1000), 1), 0xFFFFFFFF)
        rid = self._take_id()
        future: asyncio.Future[Response] = self._loop.create_future()
        self._write(Req(rid, service, timeout_ms, _headers(headers)), _payload(payload))
        self._requests[rid] = (service, future)
        try:
            # asyncio.wait, not wait_for: the daemon's own Timeout verdict is
            # a TimeoutError too, and must not pass for the local guard's.
            done, _ = await asyncio.wait({future}, timeout=timeout_ms / 1000 + GUARD_MARGIN)
        finally:
            self._requests.pop(rid, None)
        if not done:
            future.cancel()
            raise Timeout(
                f"request to service {service} got no answer within {seconds:g}s, "
                "not even from busd"
            )
        return future.result()

    # ------------------------------------------------------------ serving

    async def serve(
        self,
        service: str,
        handler: Handler,
        *,
        require_capability: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Service:
        """Registers ``handler`` as a responder of ``service`` (a literal
        name): it is called with each :class:`~busd.messages.Request` and
        answers with what it returns, or ``Failure`` if it raises. With
        ``require_capability``, only packages granted that custom
        capability may call.

        Returns once the daemon has the registration.

        Raises:
            InvalidSubject: a malformed or wildcard name.
            NotAuthorized: the name belongs to another package.
            Closed, Disconnected: the connection is gone.
        """
        self._check_open()
        literal(service, "serve")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        sid = self._take_id()
        svc = Service(self, sid, service, handler, concurrency)
        self._services[sid] = svc
        await self._register(sid, Serve(sid, service, require_capability))
        return svc

    # ------------------------------------------------------------ flush, close

    async def flush(self, timeout: float | None = None) -> None:
        """Waits until the daemon has handled everything sent before (a
        ``Ping`` answered by its ``Pong``).

        Raises:
            Timeout: no answer within ``timeout`` seconds.
            Closed, Disconnected: the connection is gone.
        """
        self._check_open()
        future = self._ping(None)
        done, _ = await asyncio.wait({future}, timeout=timeout)
        if not done:
            raise Timeout(f"busd did not answer a Ping within {timeout:g}s")
        future.result()

    async def close(self) -> None:
        """Sends what is buffered and closes the connection. Waiting calls
        fail with :class:`~busd.errors.Closed`; iterations end."""
        if not self._closing:
            self._closing = True
            self._wire.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._wire.lost), 5.0)
        except TimeoutError:
            if self._wire.transport is not None:
                self._wire.transport.abort()
            await self._wire.lost

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        who = self.pfn or "unpackaged"
        return f"<busd.Client {self._endpoint} {who}#{self.client_id}>"
