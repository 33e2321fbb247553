"""What the client hands out: a :class:`Message` to a subscriber, a
:class:`Request` to a service handler, a :class:`Response` to a caller;
and :class:`Reply`, what a handler may return to add headers."""

from __future__ import annotations

from dataclasses import dataclass

from .ops import Headers, Sender, Status
from .values import ValueSet, unpack

#: The header in which a daemon's bridge to NATS names the remote sender
#: it relays for (``HOST/PFN``); the daemon removes it from what any other
#: client sends (docs/PROTOCOL.md, 7.2.1).
RELAYED_FOR = "Busd-Sender"


class _Payload:
    """What every payload-carrying value offers."""

    __slots__ = ()
    payload: bytes

    def value_set(self) -> ValueSet:
        """The payload as a ValueSet (a MessagePack map).

        Raises:
            Decode: the payload is not one.
        """
        return unpack(self.payload)


class _Relayed:
    """What a message or request a bridge may have brought in offers."""

    __slots__ = ()
    headers: Headers | None

    @property
    def relayed_for(self) -> str | None:
        """Who sent it on another bus (``HOST/PFN``) when a daemon's bridge
        to NATS brought it in; ``sender`` is then the bridge, whose word
        this is. Never a local client's claim: the daemon removes the
        header from what anyone but a bridge sends."""
        return (self.headers or {}).get(RELAYED_FOR)


@dataclass(frozen=True, slots=True)
class Message(_Payload, _Relayed):
    """A message delivered to a subscription."""

    #: The literal subject it was published to.
    subject: str
    #: The payload, as published.
    payload: bytes
    #: Who published it, as the daemon proved it (never the publisher's word).
    sender: Sender
    #: The publisher's headers, if any.
    headers: Headers | None = None

    @property
    def data(self) -> bytes:
        """The payload (nats-py's name for it)."""
        return self.payload


@dataclass(frozen=True, slots=True)
class Response(_Payload):
    """A service's answer: ``Success`` with its result, or ``Failure`` with
    its reason (which :meth:`Client.request` raises as ``ServiceFailure``).
    The daemon's verdicts (``NoResponders``…) are exceptions, never these."""

    #: ``Success`` or ``Failure`` (a status added to the protocol later
    #: stays a ``str``).
    status: Status | str
    payload: bytes
    headers: Headers | None = None

    @property
    def ok(self) -> bool:
        """Whether the service answered ``Success``."""
        return self.status is Status.SUCCESS

    @property
    def data(self) -> bytes:
        """The payload (nats-py's name for it)."""
        return self.payload


@dataclass(frozen=True, slots=True)
class Request(_Payload, _Relayed):
    """A request to a service this client serves, as its handler gets it."""

    #: The service called.
    service: str
    #: The request's payload.
    payload: bytes
    #: Who calls, as the daemon proved it.
    sender: Sender
    #: The requester's headers, if any.
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler returns to answer with headers (bytes alone do too)."""

    payload: bytes | str = b""
    headers: Headers | None = None
