"""The frame header: one class per protocol operation, and its MessagePack
shape.

The daemon writes headers with rmp-serde's default (compact) layout, so:

- an operation with fields is a map of one entry, its name to the array
  of its fields in declaration order: ``{"Pub": ["a.b", None]}``;
- an operation without fields is its name alone: ``"Ping"``;
- a struct inside (``Sender``, ``Limits``…) is the array of its fields;
- an ``Option`` is ``nil`` or the value; enum values without data
  (``Status``, ``ErrorCode``, ``Overflow``…) are their names as strings;
  ``Ref`` is ``{"Sid": n}`` or ``{"Rid": n}``;
- message headers are a map, written in key order (a ``BTreeMap``);
- ``Hello`` and ``Welcome`` carry trailing flags (``fds``, ``set_pools``)
  only up to the last one that is true, so a frame without any is the one
  older peers know.

Decoding is strict, as the daemon's is: names are validated, and an
operation with missing, extra or mistyped fields is a protocol error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .enums import AuthKind, EventKind, Headers, Overflow, Status
from .fields import (
    Malformed,
    _bool,
    _bytes,
    _code,
    _enum,
    _fail,
    _fields,
    _headers,
    _list,
    _opt,
    _pfn,
    _status,
    _str,
    _subject,
    _uint,
    _wire_headers,
)
from .structs import (
    CtlCommand,
    ExplainQuery,
    GrantRequest,
    Limits,
    MonitorEvent,
    Party,
    Ref,
    Sender,
)

__all__ = [
    "OPS", "Auth", "AuthKind", "Call", "Challenge", "Ctl", "CtlCommand", "Dropped", "Error",
    "Event", "EventKind", "ExplainQuery", "GrantRequest", "Headers", "Hello", "Limits",
    "Malformed", "Monitor", "MonitorEvent", "Msg", "Op", "Overflow", "Party", "Ping",
    "PoolGone", "Pong", "Pub", "Ref", "Release", "Req", "Resp", "Sender", "Serve", "Status",
    "Sub", "Unsub", "Welcome", "op_from_wire",
]  # fmt: skip


class _Op:
    """What every operation has: its wire name, and its fields as the
    array rmp-serde writes."""

    __slots__ = ()
    NAME: ClassVar[str]

    def fields(self) -> list[Any]:
        raise NotImplementedError

    def to_wire(self) -> Any:
        return {self.NAME: self.fields()}


@dataclass(frozen=True, slots=True)
class Hello(_Op):
    """Client → daemon, first frame: who the client says it is."""

    NAME: ClassVar[str] = "Hello"
    version: int
    pfn: str | None
    name: str
    auth: AuthKind
    fds: bool = False
    set_pools: bool = False

    def fields(self) -> list[Any]:
        head: list[Any] = [self.version, self.pfn, self.name, str(self.auth)]
        flags = [self.fds, self.set_pools]
        # Sent up to the last flag that is up; none up: the four fields alone.
        up = max((i + 1 for i, f in enumerate(flags) if f), default=0)
        return head + flags[:up]

    @classmethod
    def from_fields(cls, v: Any) -> Hello:
        version, pfn, name, auth, fds, pools = _fields(v, 6, "Hello", optional_tail=2)
        return cls(
            _uint(version, 16),
            _opt(_pfn)(pfn),
            _str(name),
            _enum(AuthKind)(auth),
            bool(_opt(_bool)(fds)),
            bool(_opt(_bool)(pools)),
        )


@dataclass(frozen=True, slots=True)
class Challenge(_Op):
    """Daemon → client: prove the claim by HMAC over this nonce."""

    NAME: ClassVar[str] = "Challenge"
    nonce: bytes

    def fields(self) -> list[Any]:
        return [self.nonce]

    @classmethod
    def from_fields(cls, v: Any) -> Challenge:
        (nonce,) = _fields(v, 1, "Challenge")
        return cls(_bytes(nonce))


@dataclass(frozen=True, slots=True)
class Auth(_Op):
    """Client → daemon: HMAC-SHA256 of the nonce under the package token."""

    NAME: ClassVar[str] = "Auth"
    hmac: bytes

    def fields(self) -> list[Any]:
        return [self.hmac]

    @classmethod
    def from_fields(cls, v: Any) -> Auth:
        (mac,) = _fields(v, 1, "Auth")
        return cls(_bytes(mac))


@dataclass(frozen=True, slots=True)
class Welcome(_Op):
    """Daemon → client: the handshake succeeded."""

    NAME: ClassVar[str] = "Welcome"
    client_id: int
    pfn: str | None
    limits: Limits
    fds: bool = False
    set_pools: bool = False

    def fields(self) -> list[Any]:
        head: list[Any] = [self.client_id, self.pfn, self.limits.to_wire()]
        flags = [self.fds, self.set_pools]
        up = max((i + 1 for i, f in enumerate(flags) if f), default=0)
        return head + flags[:up]

    @classmethod
    def from_fields(cls, v: Any) -> Welcome:
        cid, pfn, limits, fds, pools = _fields(v, 5, "Welcome", optional_tail=2)
        return cls(
            _uint(cid),
            _opt(_pfn)(pfn),
            Limits.from_wire(limits),
            bool(_opt(_bool)(fds)),
            bool(_opt(_bool)(pools)),
        )


@dataclass(frozen=True, slots=True)
class Sub(_Op):
    """Subscribe ``sid`` to ``subject`` (wildcards allowed)."""

    NAME: ClassVar[str] = "Sub"
    sid: int
    subject: str
    queue: str | None = None
    overflow: Overflow = Overflow.DISCONNECT

    def fields(self) -> list[Any]:
        return [self.sid, self.subject, self.queue, str(self.overflow)]

    @classmethod
    def from_fields(cls, v: Any) -> Sub:
        sid, subject, queue, overflow = _fields(v, 4, "Sub")
        return cls(_uint(sid), _subject(subject), _opt(_str)(queue), _enum(Overflow)(overflow))


@dataclass(frozen=True, slots=True)
class Unsub(_Op):
    """Remove the subscription or service registered under ``sid``."""

    NAME: ClassVar[str] = "Unsub"
    sid: int

    def fields(self) -> list[Any]:
        return [self.sid]

    @classmethod
    def from_fields(cls, v: Any) -> Unsub:
        (sid,) = _fields(v, 1, "Unsub")
        return cls(_uint(sid))


@dataclass(frozen=True, slots=True)
class Pub(_Op):
    """Publish the payload to a literal subject."""

    NAME: ClassVar[str] = "Pub"
    subject: str
    headers: Headers | None = None

    def fields(self) -> list[Any]:
        return [self.subject, _wire_headers(self.headers)]

    @classmethod
    def from_fields(cls, v: Any) -> Pub:
        subject, headers = _fields(v, 2, "Pub")
        return cls(_subject(subject), _headers(headers))


@dataclass(frozen=True, slots=True)
class Msg(_Op):
    """Daemon → client: a delivery for subscription ``sid``."""

    NAME: ClassVar[str] = "Msg"
    sid: int
    subject: str
    sender: Sender
    headers: Headers | None = None

    def fields(self) -> list[Any]:
        return [self.sid, self.subject, self.sender.to_wire(), _wire_headers(self.headers)]

    @classmethod
    def from_fields(cls, v: Any) -> Msg:
        sid, subject, sender, headers = _fields(v, 4, "Msg")
        return cls(_uint(sid), _subject(subject), Sender.from_wire(sender), _headers(headers))


@dataclass(frozen=True, slots=True)
class Serve(_Op):
    """Offer to answer requests to ``service`` under id ``sid``."""

    NAME: ClassVar[str] = "Serve"
    sid: int
    service: str
    require_capability: str | None = None

    def fields(self) -> list[Any]:
        return [self.sid, self.service, self.require_capability]

    @classmethod
    def from_fields(cls, v: Any) -> Serve:
        sid, service, cap = _fields(v, 3, "Serve")
        return cls(_uint(sid), _subject(service), _opt(_str)(cap))


@dataclass(frozen=True, slots=True)
class Req(_Op):
    """Client → daemon: a request to ``service``."""

    NAME: ClassVar[str] = "Req"
    rid: int
    service: str
    timeout_ms: int
    headers: Headers | None = None

    def fields(self) -> list[Any]:
        return [self.rid, self.service, self.timeout_ms, _wire_headers(self.headers)]

    @classmethod
    def from_fields(cls, v: Any) -> Req:
        rid, service, timeout, headers = _fields(v, 4, "Req")
        return cls(_uint(rid), _subject(service), _uint(timeout, 32), _headers(headers))


@dataclass(frozen=True, slots=True)
class Call(_Op):
    """Daemon → responder: a request to answer with ``Resp{rid}``."""

    NAME: ClassVar[str] = "Call"
    rid: int
    sid: int
    service: str
    sender: Sender
    headers: Headers | None = None

    def fields(self) -> list[Any]:
        return [
            self.rid,
            self.sid,
            self.service,
            self.sender.to_wire(),
            _wire_headers(self.headers),
        ]

    @classmethod
    def from_fields(cls, v: Any) -> Call:
        rid, sid, service, sender, headers = _fields(v, 5, "Call")
        return cls(
            _uint(rid), _uint(sid), _subject(service), Sender.from_wire(sender), _headers(headers)
        )


@dataclass(frozen=True, slots=True)
class Resp(_Op):
    """An answer: responder → daemon with the call's rid, daemon →
    requester with the request's."""

    NAME: ClassVar[str] = "Resp"
    rid: int
    status: Status | str
    headers: Headers | None = None

    def fields(self) -> list[Any]:
        return [self.rid, str(self.status), _wire_headers(self.headers)]

    @classmethod
    def from_fields(cls, v: Any) -> Resp:
        rid, status, headers = _fields(v, 3, "Resp")
        return cls(_uint(rid), _status(status), _headers(headers))


@dataclass(frozen=True, slots=True)
class Ping(_Op):
    """Liveness and flush: answered with ``Pong`` after every earlier frame."""

    NAME: ClassVar[str] = "Ping"

    def to_wire(self) -> Any:
        return self.NAME


@dataclass(frozen=True, slots=True)
class Pong(_Op):
    """The answer to ``Ping``."""

    NAME: ClassVar[str] = "Pong"

    def to_wire(self) -> Any:
        return self.NAME


@dataclass(frozen=True, slots=True)
class Error(_Op):
    """Something went wrong; ``refers`` names the subscription or request."""

    NAME: ClassVar[str] = "Error"
    code: str
    message: str
    refers: Ref | None = None

    def fields(self) -> list[Any]:
        return [self.code, self.message, None if self.refers is None else self.refers.to_wire()]

    @classmethod
    def from_fields(cls, v: Any) -> Error:
        code, message, refers = _fields(v, 3, "Error")
        return cls(_code(code), _str(message), _opt(Ref.from_wire)(refers))


@dataclass(frozen=True, slots=True)
class Ctl(_Op):
    """Client → daemon: an administrative command, answered by ``Resp{rid}``."""

    NAME: ClassVar[str] = "Ctl"
    rid: int
    command: CtlCommand

    def fields(self) -> list[Any]:
        return [self.rid, self.command.to_wire()]

    @classmethod
    def from_fields(cls, v: Any) -> Ctl:
        rid, command = _fields(v, 2, "Ctl")
        return cls(_uint(rid), CtlCommand.from_wire(command))


@dataclass(frozen=True, slots=True)
class Dropped(_Op):
    """Daemon → client: ``count`` messages for ``sid`` were dropped."""

    NAME: ClassVar[str] = "Dropped"
    sid: int
    count: int

    def fields(self) -> list[Any]:
        return [self.sid, self.count]

    @classmethod
    def from_fields(cls, v: Any) -> Dropped:
        sid, count = _fields(v, 2, "Dropped")
        return cls(_uint(sid), _uint(count))


@dataclass(frozen=True, slots=True)
class Monitor(_Op):
    """Client → daemon: watch traffic on ``subject`` (admins only)."""

    NAME: ClassVar[str] = "Monitor"
    sid: int
    subject: str
    contents: bool = False

    def fields(self) -> list[Any]:
        return [self.sid, self.subject, self.contents]

    @classmethod
    def from_fields(cls, v: Any) -> Monitor:
        sid, subject, contents = _fields(v, 3, "Monitor")
        return cls(_uint(sid), _subject(subject), _bool(contents))


@dataclass(frozen=True, slots=True)
class Event(_Op):
    """Daemon → monitor: one event for monitor ``sid``."""

    NAME: ClassVar[str] = "Event"
    sid: int
    event: MonitorEvent

    def fields(self) -> list[Any]:
        return [self.sid, self.event.to_wire()]

    @classmethod
    def from_fields(cls, v: Any) -> Event:
        sid, event = _fields(v, 2, "Event")
        return cls(_uint(sid), MonitorEvent.from_wire(event))


@dataclass(frozen=True, slots=True)
class Release(_Op):
    """Over shm: blocks of the peer's payload pool handed back."""

    NAME: ClassVar[str] = "Release"
    blocks: list[int] = field(default_factory=list)

    def fields(self) -> list[Any]:
        return [list(self.blocks)]

    @classmethod
    def from_fields(cls, v: Any) -> Release:
        (blocks,) = _fields(v, 1, "Release")
        return cls([_uint(b) for b in _list(blocks)])


@dataclass(frozen=True, slots=True)
class PoolGone(_Op):
    """Daemon → shm client: set pool ``pool`` gets no more payloads."""

    NAME: ClassVar[str] = "PoolGone"
    pool: int

    def fields(self) -> list[Any]:
        return [self.pool]

    @classmethod
    def from_fields(cls, v: Any) -> PoolGone:
        (pool,) = _fields(v, 1, "PoolGone")
        return cls(_uint(pool, 32))


Op = (
    Hello | Challenge | Auth | Welcome | Sub | Unsub | Pub | Msg | Serve | Req | Call | Resp
    | Ping | Pong | Error | Ctl | Dropped | Monitor | Event | Release | PoolGone
)  # fmt: skip

#: Every operation, in the order of the Rust enum (serde's variant index).
OPS: tuple[type[_Op], ...] = (
    Hello, Challenge, Auth, Welcome, Sub, Unsub, Pub, Msg, Serve, Req, Call, Resp,
    Ping, Pong, Error, Ctl, Dropped, Monitor, Event, Release, PoolGone,
)  # fmt: skip

_UNIT_OPS: dict[str, _Op] = {"Ping": Ping(), "Pong": Pong()}
_DATA_OPS: dict[str, Callable[[Any], Any]] = {
    cls.NAME: cls.from_fields  # type: ignore[attr-defined]
    for cls in OPS
    if cls.NAME not in _UNIT_OPS
}


def op_from_wire(v: Any) -> Op:
    """The operation a decoded MessagePack header holds.

    Raises:
        Malformed: not an operation, or one whose fields are invalid.
    """
    if isinstance(v, str):
        unit = _UNIT_OPS.get(v)
        if unit is None:
            raise _fail(f"unknown operation {v!r}")
        return unit  # type: ignore[return-value]
    if isinstance(v, dict) and len(v) == 1:
        ((name, fields),) = v.items()
        read = _DATA_OPS.get(name)
        if read is not None:
            return read(fields)  # type: ignore[no-any-return]
        raise _fail(f"unknown operation {name!r}")
    raise _fail(f"a header is an operation's name or a map of one, got {v!r}")
