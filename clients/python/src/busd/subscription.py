"""A subscription: an async iterator of the :class:`Message`\\ s the daemon
routes to it.

Deliveries wait in a queue of ``capacity`` messages. When it is full the
client stops reading the socket until the subscriber catches up: the
daemon then holds the messages and applies the subscription's overflow
policy (``disconnect``, ``drop-oldest``, ``block``). Nothing is dropped
here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from .errors import BusdError, Timeout
from .messages import Message
from .ops import Overflow

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .connection import Connection


class Subscription:
    """Messages on ``subject`` (wildcards allowed), for ``async for``.

    Iteration ends when the subscription is unsubscribed or the client
    closed; if the daemon ends it or the connection is lost, the next
    iteration raises why (``SlowConsumer``, ``Disconnected``…) once the
    messages received before are taken.
    """

    def __init__(
        self,
        client: Connection,
        sid: int,
        subject: str,
        queue: str | None,
        overflow: Overflow,
        capacity: int,
    ) -> None:
        self._client = client
        self.sid = sid
        self.subject = subject
        self.queue = queue
        self.overflow = overflow
        self._capacity = capacity
        self._items: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # None: live; True: ended cleanly; an error: ended by it.
        self._ended: BusdError | bool | None = None
        self._holding = False
        #: Messages the daemon dropped for this subscription
        #: (``drop-oldest``), as it reported them.
        self.dropped = 0

    # -- fed by the client's reader

    def _deliver(self, message: Message) -> None:
        self._items.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if len(self._items) >= self._capacity and not self._holding:
            self._holding = True
            self._client._hold(self)

    def _end(self, error: BusdError | None) -> None:
        if self._ended is not None:
            return
        self._ended = error if error is not None else True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self._client._unhold(self)

    # -- taken by the user

    @property
    def pending(self) -> int:
        """Messages received and not yet taken."""
        return len(self._items)

    async def next(self, timeout: float | None = None) -> Message:
        """The next message, waiting at most ``timeout`` seconds.

        Raises:
            StopAsyncIteration: the subscription ended (unsubscribed, or
                the client closed).
            Timeout: nothing came within ``timeout``.
            BusdError: why the daemon or the connection ended it.
        """
        while not self._items:
            if self._ended is True:
                raise StopAsyncIteration
            if isinstance(self._ended, BusdError):
                raise self._ended
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await self._waiter
                else:
                    await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                raise Timeout(f"no message on {self.subject} within {timeout:g}s") from None
            finally:
                self._waiter = None
        message = self._items.popleft()
        if self._holding and len(self._items) <= self._capacity // 2:
            self._release()
        return message

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        return await self.next()

    async def unsubscribe(self) -> None:
        """Ends the subscription: the daemon stops routing to it, and
        messages not yet taken are discarded."""
        if self._ended is None:
            self._client._unregister(self.sid)
        self._items.clear()
        self._end(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.unsubscribe()

    def __repr__(self) -> str:
        queue = f" queue={self.queue!r}" if self.queue else ""
        return f"<Subscription {self.sid} {self.subject!r}{queue}>"
