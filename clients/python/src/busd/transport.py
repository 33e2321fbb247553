"""One socket to the daemon: frames in, bytes out.

:class:`Wire` is the asyncio protocol of the connection. Frames are decoded
as bytes arrive and handed, in order, to ``on_frame``, synchronously, so
routing a delivery costs no task switch. Writes are coalesced: frames
appended in one turn of the event loop go to the kernel in one ``send``
(a publisher in a loop pays a memory copy per message, not a system call),
and a writer waits only when the kernel's buffer is full.

Only tcp and unix sockets (and an inherited unix socket, ``fd://N``): the
shm transport needs memfds and futex-like wake-ups this client does not
implement.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from .endpoint import Endpoint
from .errors import BusdError, Connect, Unsupported
from .frame import Frame, FrameDecoder

#: Coalesced bytes past which a write goes out at once, not at the end of
#: the loop's turn: bounds what a tight loop of publishes holds.
FLUSH_AT = 64 * 1024


class Wire(asyncio.Protocol):
    """The connection's protocol object; see the module's doc."""

    def __init__(self, max_frame: int) -> None:
        self.decoder = FrameDecoder(max_frame)
        #: Where decoded frames go; the handshake, then the client.
        self.on_frame: Callable[[Frame], None] = lambda frame: None
        #: Called once when the socket is gone, with why (None: a clean EOF).
        self.on_lost: Callable[[BaseException | None], None] = lambda exc: None
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._out = bytearray()
        self._scheduled = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        #: Why the stream broke on this side (a frame that does not decode).
        self.failure: BusdError | None = None
        self.lost: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.failure is not None:
            return
        self.decoder.feed(data)
        self._pump()

    def _pump(self) -> None:
        """Hands out the whole frames received, until a consumer is full.

        Frames before a bad one are handled, as the daemon reads them: the
        stream is cut only where it breaks.
        """
        decoder = self.decoder
        while self.failure is None and not self._reading_paused:
            try:
                frame = decoder.next_frame()
            except BusdError as e:
                self.fail(e)
                return
            if frame is None:
                return
            self.on_frame(frame)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)
        self.on_lost(self.failure or exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # -- writing

    @property
    def is_open(self) -> bool:
        """Whether bytes written now may still reach the daemon."""
        return self.transport is not None and not self.transport.is_closing()

    @property
    def write_paused(self) -> bool:
        """Whether the kernel's buffer is full: writers should :meth:`drain`."""
        return self._write_paused

    def write(self, data: bytes) -> None:
        """Appends bytes to go out at the end of this turn of the loop."""
        out = self._out
        out += data
        if len(out) >= FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hands what is appended to the transport now."""
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Waits while the kernel's buffer is full."""
        if not self._write_paused or self.transport is None:
            return
        if self._drained is None:
            self._drained = self._loop.create_future()
        await self._drained

    # -- reading and closing

    def pause_reading(self) -> None:
        """Stops handing out frames and reading: a consumer is full, so the
        socket pushes back and the daemon's overflow policy decides (never
        a silent drop here)."""
        if not self._reading_paused:
            self._reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Hands out the frames already received, then reads again, once
        consumers have room."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        self._pump()
        if not self._reading_paused and self.transport is not None:
            self.transport.resume_reading()

    def fail(self, error: BusdError) -> None:
        """Closes the connection because its stream broke: ``error`` says why."""
        if self.failure is None:
            self.failure = error
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Writes what is appended, then closes (the transport sends its
        buffer before it closes)."""
        self.flush()
        if self.transport is not None:
            self.transport.close()


async def open_wire(endpoint: Endpoint, max_frame: int) -> Wire:
    """Connects a :class:`Wire` to ``endpoint``.

    Raises:
        Unsupported: ``shm://`` (use ``unix://`` with the same path).
        Connect: the socket cannot be opened.
    """
    loop = asyncio.get_running_loop()
    wire = Wire(max_frame)
    try:
        if endpoint.scheme == "tcp":
            await loop.create_connection(lambda: wire, endpoint.host, endpoint.port)
        elif endpoint.scheme == "unix":
            await loop.create_unix_connection(lambda: wire, endpoint.path)
        elif endpoint.scheme == "fd":
            sock = socket.socket(fileno=endpoint.fd)
            if sock.family == socket.AF_UNIX:
                await loop.create_unix_connection(lambda: wire, sock=sock)
            else:
                await loop.create_connection(lambda: wire, sock=sock)
        elif endpoint.scheme == "shm":
            raise Unsupported(
                f"cannot connect to {endpoint}: the Python client has no shared-memory "
                f"transport; use unix://{endpoint.path}, the same daemon socket"
            )
        else:  # pragma: no cover - parse_endpoint knows no other scheme
            raise Unsupported(f"cannot connect to {endpoint}: unknown transport")
    except OSError as e:
        raise Connect(f"cannot connect to busd: cannot connect to {endpoint}: {e}") from e
    return wire
