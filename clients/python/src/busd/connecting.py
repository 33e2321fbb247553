"""``connect``: the address and identity options, the handshake, and a
:class:`~busd.client.Client` for the connection."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from .auth import Identity
from .client import Client
from .endpoint import default_url, inherited_url, parse_endpoint
from .handshake import open_session

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType


class connect:  # noqa: N801 - used as a function: `await connect()`, `async with connect()`
    """Connects to the daemon and performs the handshake.

    ``url`` is ``tcp://127.0.0.1:PORT``, ``unix:///path/busd.sock`` or
    ``fd://N``; by default, where the Rust SDK's ``connect_default``
    looks: the connection the daemon handed this process if it started it
    as a service (``BUSD_FD``), else ``BUSD_URL``, else the default unix
    socket (``$XDG_RUNTIME_DIR/busd/busd.sock``, or ``/run/busd/busd.sock``).

    ``pfn`` claims a package, proven by ``token_file`` (an HMAC challenge;
    the token never crosses the socket) or, without one, by this process's
    uid (and executable) as the daemon reads them from the socket.

    Both ``client = await connect(...)`` and ``async with connect(...) as
    client:`` work.

    Raises:
        Config: a malformed package name, a token file without a package,
            or one that cannot be read (nothing is sent).
        Connect: an invalid URL, or the connection or handshake failed.
        Unsupported: an ``shm://`` URL.
        AuthFailed: the daemon refused the identity proof.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pfn: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        name: str | None = None,
        request_timeout: float = 5.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._pfn = pfn
        self._token_file = token_file
        self._name = name
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._client: Client | None = None

    async def _connect(self) -> Client:
        identity = Identity.of(self._pfn, self._token_file)
        url = self._url or inherited_url() or default_url()
        endpoint = parse_endpoint(url)
        name = self._name or os.path.basename(sys.argv[0] or "") or "busd-python"
        wire, welcome, early = await open_session(endpoint, identity, name, self._connect_timeout)
        self._client = Client(wire, welcome, endpoint, early, self._request_timeout)
        return self._client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def __aenter__(self) -> Client:
        return await self._connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
