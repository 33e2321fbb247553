"""Serving: a :class:`Service` runs an async handler for each request the
daemon routes to it, and answers with what the handler returns.

A handler returns the answer's payload (``bytes``, ``str``, or ``None``
for an empty one) or a :class:`~busd.messages.Reply` with headers; it
answers ``Failure`` by raising: :class:`~busd.errors.ServiceFailure`
with the payload to send, or any other exception, whose text is sent.
Up to ``concurrency`` handlers run at once; past that, the client stops
reading the socket until one finishes (the daemon then holds the
requests, which time out there as usual).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .errors import BusdError, ServiceFailure
from .messages import Reply, Request
from .ops import Call, Headers, Status

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .connection import Connection

log = logging.getLogger("busd")

Answer = bytes | bytearray | memoryview | str | Reply | None
Handler = Callable[[Request], Awaitable[Answer]]


class Service:
    """A registration as a responder of ``name``; see the module's doc.

    The daemon balances requests round robin over every responder of a
    service. :meth:`stop` (or leaving ``async with``) ends the
    registration; :meth:`wait` waits until it ends.
    """

    def __init__(
        self, client: Connection, sid: int, name: str, handler: Handler, concurrency: int
    ) -> None:
        self._client = client
        self.sid = sid
        self.name = name
        self._handler = handler
        self._concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._backlog: deque[tuple[Call, bytes]] = deque()
        self._holding = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: Requests answered, ``Success`` and ``Failure`` alike.
        self.answered = 0

    # -- fed by the client's reader

    def _call(self, call: Call, payload: bytes) -> None:
        if self._done.done():
            return
        if len(self._running) < self._concurrency:
            self._start(call, payload)
            return
        self._backlog.append((call, payload))
        if not self._holding:
            self._holding = True
            self._client._hold(self)

    def _start(self, call: Call, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(call, payload))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answering a call of %s failed", self.name, exc_info=task.exception())
        if self._backlog and not self._done.done():
            self._start(*self._backlog.popleft())
        if self._holding and not self._backlog:
            self._holding = False
            self._client._unhold(self)

    async def _answer(self, call: Call, payload: bytes) -> None:
        request = Request(call.service, payload, call.sender, call.headers)
        status, headers, body = Status.SUCCESS, None, b""
        try:
            body, headers = _answer_of(await self._handler(request))
        except ServiceFailure as e:
            status, body = Status.FAILURE, e.payload
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure is the service's answer
            log.debug("handler of %s failed", self.name, exc_info=True)
            status, body = Status.FAILURE, (str(e) or type(e).__name__).encode()
        self._client._respond(call.rid, self.name, status, headers, body)
        self.answered += 1

    def _end(self, error: BusdError | None, *, cancel: bool = False) -> None:
        """Ends the registration; with ``cancel`` (the connection is gone,
        no answer can be sent) the running handlers too."""
        self._backlog.clear()
        if cancel:
            for task in self._running:
                task.cancel()
        if self._holding:
            self._holding = False
            self._client._unhold(self)
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
                # Retrieved by wait(), if anyone waits; never a loop warning.
                self._done.exception()

    # -- the user's handle

    async def stop(self) -> None:
        """Ends the registration; handlers already running still answer."""
        if not self._done.done():
            self._client._unregister(self.sid)
        self._end(None)

    async def wait(self) -> None:
        """Waits until the service ends.

        Raises:
            BusdError: why the daemon or the connection ended it.
        """
        await asyncio.shield(self._done)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<Service {self.sid} {self.name!r}>"


def _answer_of(result: Answer) -> tuple[bytes, Headers | None]:
    """A handler's return value as the answer's payload and headers.

    Raises:
        TypeError: not an answer (the caller then gets ``Failure`` saying so).
    """
    if isinstance(result, Reply):
        payload, headers = result.payload, result.headers
        if headers is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise TypeError("a Reply's headers map strings to strings")
        return (payload.encode() if isinstance(payload, str) else bytes(payload)), headers
    if result is None:
        return b"", None
    if isinstance(result, str):
        return result.encode(), None
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), None
    raise TypeError(f"a handler returns bytes, str, Reply or None, not {type(result).__name__}")
