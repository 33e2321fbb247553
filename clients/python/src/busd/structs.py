"""The structs and data-carrying enums inside operations (``Sender``,
``Limits``, ``Ref``, monitor events, admin commands): each an array of its
fields on the wire, in declaration order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .enums import EventKind, Headers, Status
from .fields import (
    _bool,
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


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message or a request, as the daemon proved it."""

    client_id: int
    pfn: str | None = None

    def to_wire(self) -> list[Any]:
        return [self.client_id, self.pfn]

    @classmethod
    def from_wire(cls, v: Any) -> Sender:
        cid, pfn = _fields(v, 2, "Sender")
        return cls(_uint(cid), _opt(_pfn)(pfn))


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits the daemon enforces on a connection (in ``Welcome``)."""

    max_frame: int
    max_pending_msgs: int
    max_pending_bytes: int

    def to_wire(self) -> list[Any]:
        return [self.max_frame, self.max_pending_msgs, self.max_pending_bytes]

    @classmethod
    def from_wire(cls, v: Any) -> Limits:
        a, b, c = _fields(v, 3, "Limits")
        return cls(_uint(a, 32), _uint(b, 32), _uint(c))


@dataclass(frozen=True, slots=True)
class Ref:
    """What an ``Error`` refers to: a subscription or service (``"Sid"``)
    or a request (``"Rid"``)."""

    kind: str
    id: int

    def to_wire(self) -> dict[str, int]:
        return {self.kind: self.id}

    @classmethod
    def from_wire(cls, v: Any) -> Ref:
        if not isinstance(v, dict) or len(v) != 1:
            raise _fail(f"a Ref is {{Sid: n}} or {{Rid: n}}, got {v!r}")
        ((kind, id_),) = v.items()
        if kind not in ("Sid", "Rid"):
            raise _fail(f"unknown Ref {kind!r}")
        return cls(kind, _uint(id_))


@dataclass(frozen=True, slots=True)
class Party:
    """One connection as a monitor sees it."""

    client_id: int
    pfn: str | None
    uid: int | None

    def to_wire(self) -> list[Any]:
        return [self.client_id, self.pfn, self.uid]

    @classmethod
    def from_wire(cls, v: Any) -> Party:
        cid, pfn, uid = _fields(v, 3, "Party")
        return cls(_uint(cid), _opt(_pfn)(pfn), _opt(lambda u: _uint(u, 32))(uid))


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One message on the bus, as routed (for admin monitors)."""

    time_us: int
    kind: EventKind
    subject: str
    sender: Party
    to: list[Party]
    denied: list[Party]
    size: int
    status: Status | str | None
    call: int | None
    headers: Headers | None

    def to_wire(self) -> list[Any]:
        return [
            self.time_us,
            str(self.kind),
            self.subject,
            self.sender.to_wire(),
            [p.to_wire() for p in self.to],
            [p.to_wire() for p in self.denied],
            self.size,
            None if self.status is None else str(self.status),
            self.call,
            _wire_headers(self.headers),
        ]

    @classmethod
    def from_wire(cls, v: Any) -> MonitorEvent:
        t, kind, subject, sender, to, denied, size, status, call, headers = _fields(
            v, 10, "MonitorEvent"
        )
        return cls(
            _uint(t),
            _enum(EventKind)(kind),
            _subject(subject),
            Party.from_wire(sender),
            _parties(to),
            _parties(denied),
            _uint(size),
            _opt(_status)(status),
            _opt(_uint)(call),
            _headers(headers),
        )


def _parties(v: Any) -> list[Party]:
    return [Party.from_wire(x) for x in _list(v)]


@dataclass(frozen=True, slots=True)
class ExplainQuery:
    """``busd ctl explain``'s question."""

    sender: str
    to: str | None = None
    subject: str | None = None
    service: str | None = None

    def to_wire(self) -> list[Any]:
        return [self.sender, self.to, self.subject, self.service]

    @classmethod
    def from_wire(cls, v: Any) -> ExplainQuery:
        a, b, c, d = _fields(v, 4, "ExplainQuery")
        return cls(_str(a), _opt(_str)(b), _opt(_str)(c), _opt(_str)(d))


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """``busd ctl grant``'s request."""

    sender: str
    to: str
    both_ways: bool
    seconds: int
    reason: str | None = None

    def to_wire(self) -> list[Any]:
        return [self.sender, self.to, self.both_ways, self.seconds, self.reason]

    @classmethod
    def from_wire(cls, v: Any) -> GrantRequest:
        a, b, c, d, e = _fields(v, 5, "GrantRequest")
        return cls(_str(a), _str(b), _bool(c), _uint(d), _opt(_str)(e))


# The variants of `CtlCommand` that carry data, and how to read it.
_CTL_DATA: dict[str, Callable[[Any], Any]] = {
    "Explain": ExplainQuery.from_wire,
    "ReloadDryRun": _opt(_str),
    "Grant": GrantRequest.from_wire,
    "Revoke": _uint,
}
_CTL_UNIT = ("Stats", "Clients", "Subs", "Reload", "Services", "Grants", "Bridges")


@dataclass(frozen=True, slots=True)
class CtlCommand:
    """An administrative command: ``name`` is the variant (``"Stats"``…);
    ``arg`` its data for ``Explain``, ``ReloadDryRun``, ``Grant``, ``Revoke``."""

    name: str
    arg: Any = None

    def to_wire(self) -> Any:
        if self.name in _CTL_UNIT:
            return self.name
        arg = self.arg.to_wire() if hasattr(self.arg, "to_wire") else self.arg
        return {self.name: arg}

    @classmethod
    def from_wire(cls, v: Any) -> CtlCommand:
        if isinstance(v, str) and v in _CTL_UNIT:
            return cls(v)
        if isinstance(v, dict) and len(v) == 1:
            ((name, arg),) = v.items()
            if name in _CTL_DATA:
                return cls(name, _CTL_DATA[name](arg))
        raise _fail(f"unknown ctl command {v!r}")
