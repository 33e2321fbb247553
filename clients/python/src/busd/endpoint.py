"""Where the daemon is: ``tcp://IP:PORT``, ``unix:///ABSOLUTE/PATH``, or
``fd://N`` for a connection the daemon handed this process when it started
it as a service; and the default, found as the ``busd`` command finds it.

``shm:///PATH`` parses (it is a valid busd URL) but this client cannot use
shared memory: connecting to it raises :class:`~busd.errors.Unsupported`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from .errors import Connect

#: The socket path used when ``XDG_RUNTIME_DIR`` is not usable.
SYSTEM_SOCKET_PATH = "/run/busd/busd.sock"

_FORMS = "tcp://127.0.0.1:PORT, unix:///ABSOLUTE/PATH, shm:///ABSOLUTE/PATH or fd://N"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed daemon URL: ``scheme`` is ``tcp``, ``unix``, ``shm`` or ``fd``."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.scheme == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp://{host}:{self.port}"
        if self.scheme == "fd":
            return f"fd://{self.fd}"
        return f"{self.scheme}://{self.path}"


def parse_endpoint(url: str) -> Endpoint:
    """Parses a daemon URL (scheme case-insensitive, surrounding white
    space ignored; ``localhost`` means 127.0.0.1).

    Raises:
        Connect: not one of the accepted forms (as the Rust SDK, whose
            ``connect`` fails with ``ErrorKind::Connect`` for a bad URL).
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise Connect(f"invalid busd URL {url!r}: use {_FORMS}")
    if scheme == "tcp":
        return _tcp(url, rest)
    if scheme in ("unix", "shm"):
        if not rest.startswith("/"):
            raise Connect(
                f"invalid busd URL {url!r}: a {scheme} path must be absolute ({scheme}:///…)"
            )
        return Endpoint(scheme, path=rest)
    if scheme == "fd":
        if rest.isdigit() and int(rest) > 2:
            return Endpoint("fd", fd=int(rest))
    raise Connect(f"invalid busd URL {url!r}: use {_FORMS}")


def _tcp(url: str, rest: str) -> Endpoint:
    def bad(why: str) -> Connect:
        return Connect(f"invalid busd URL {url!r}: {why} (e.g. tcp://127.0.0.1:4223)")

    if "/" in rest:
        raise bad("a tcp endpoint has no path")
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        raise bad("missing :PORT")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise bad("the port must be a number from 0 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad("not an IPv6 address") from None
    elif host.lower() == "localhost":
        host = "127.0.0.1"
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise bad(
                "the host must be an IP address or localhost (names are not resolved)"
            ) from None
    return Endpoint("tcp", host=host, port=int(port_text))


def default_unix_path() -> str:
    """``$XDG_RUNTIME_DIR/busd/busd.sock`` if ``XDG_RUNTIME_DIR`` is an
    absolute path, else ``/run/busd/busd.sock``: where a daemon with no
    configured path listens."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        return os.path.join(runtime, "busd", "busd.sock")
    return SYSTEM_SOCKET_PATH


def inherited_url() -> str | None:
    """``fd://N`` when this process is a service the daemon started and
    handed connection N (``BUSD_FD``): it is its package already, with no
    token to prove."""
    fd = os.environ.get("BUSD_FD")
    return None if fd is None else f"fd://{fd.strip()}"


def default_url() -> str:
    """The daemon's URL when none is given: ``BUSD_URL`` if set and not
    empty, else ``unix://`` and :func:`default_unix_path`."""
    url = os.environ.get("BUSD_URL", "")
    return url if url else f"unix://{default_unix_path()}"
