"""The client's exceptions: one class per kind of failure.

The class names are the Rust SDK's ``ErrorKind`` variants
(``crates/busd-client/src/error.rs``), so code and logs read the same in
both languages, plus the two daemon error codes that have no kind of their
own: ``ProtocolViolation`` (a :class:`Protocol` error) and ``ShuttingDown``
(a :class:`Disconnected` one). Every daemon code maps onto one class, as
the Rust SDK maps it onto one kind; the wire name stays in ``.code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .messages import Response


class BusdError(Exception):
    """Base of every error this package raises.

    ``code`` is the daemon's error code (``"NotAuthorized"``…) when the
    daemon said so, else ``None``; ``kind`` is the class's kind name.
    """

    kind: str = "BusdError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class Connect(BusdError, ConnectionError):
    """The connection or its handshake failed, or the URL is invalid."""

    kind = "Connect"


class Config(BusdError, ValueError):
    """The client's own options are unusable (a malformed package name, a
    token file without a package, a token file that cannot be read)."""

    kind = "Config"


class Disconnected(BusdError, ConnectionError):
    """The connection was lost while this operation was in flight."""

    kind = "Disconnected"


class Closed(BusdError):
    """The client is closed: nothing sent through it will arrive."""

    kind = "Closed"


class Timeout(BusdError, TimeoutError):
    """A request got no answer in time, from the daemon or the local guard."""

    kind = "Timeout"


class NoResponders(BusdError):
    """Nobody the access rules allow serves the service."""

    kind = "NoResponders"


class NotAuthorized(BusdError):
    """The access rules forbid this."""

    kind = "NotAuthorized"


class ResponderGone(BusdError):
    """The responder went away before it answered."""

    kind = "ResponderGone"


class AuthFailed(BusdError):
    """The daemon refused the client's identity proof."""

    kind = "AuthFailed"


class InvalidSubject(BusdError, ValueError):
    """A malformed subject, or a wildcard where a literal is needed."""

    kind = "InvalidSubject"


class LimitExceeded(BusdError):
    """A daemon limit (connections, subscriptions, requests in flight)."""

    kind = "LimitExceeded"


class SlowConsumer(BusdError):
    """The daemon found this client too slow to keep up and cut it off."""

    kind = "SlowConsumer"


class FrameTooLarge(BusdError):
    """A frame is larger than the daemon's ``max_frame``; nothing was sent."""

    kind = "FrameTooLarge"


class Protocol(BusdError):
    """The peer broke the protocol, or this client was told it did."""

    kind = "Protocol"


class UnknownService(BusdError):
    """The daemon knows no such service (``services = "configured-only"``)."""

    kind = "UnknownService"


class AppUnavailable(BusdError):
    """A service the daemon starts on demand could not be started."""

    kind = "AppUnavailable"


class AppServiceUnavailable(BusdError):
    """A service the daemon started did not begin serving in time."""

    kind = "AppServiceUnavailable"


class ResourceLimitsExceeded(BusdError):
    """The service is at its instance limit, or held back after failing."""

    kind = "ResourceLimitsExceeded"


class Refused(BusdError):
    """The daemon ran an admin command and refused it."""

    kind = "Refused"


class ServiceFailure(BusdError):
    """The service answered ``Failure``: it could not do what was asked.

    ``response`` is its whole answer; ``payload`` its reason, as sent.
    A service handler may raise it with a ``payload`` of its choosing.
    """

    kind = "ServiceFailure"

    def __init__(
        self,
        message: str,
        *,
        payload: bytes | None = None,
        response: Response | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        if payload is None:
            payload = response.payload if response is not None else message.encode()
        self.payload = payload


class Encode(BusdError, ValueError):
    """A value could not be encoded as MessagePack."""

    kind = "Encode"


class Decode(BusdError, ValueError):
    """Bytes are not the MessagePack value asked for."""

    kind = "Decode"


class Unsupported(BusdError):
    """This client or transport cannot do that (shm, fd passing)."""

    kind = "Unsupported"


class ProtocolViolation(Protocol):
    """The daemon's ``ProtocolViolation`` code: it found this client's frame
    malformed or out of place, and closes the connection."""

    kind = "Protocol"


class ShuttingDown(Disconnected):
    """The daemon's ``ShuttingDown`` code: it is stopping."""

    kind = "Disconnected"


# Every error code of `busd-proto`'s ErrorCode, as the Rust SDK's
# `ErrorKind::from_code` maps it.
_BY_CODE: dict[str, type[BusdError]] = {
    "ProtocolViolation": ProtocolViolation,
    "FrameTooLarge": FrameTooLarge,
    "AuthFailed": AuthFailed,
    "NotAuthorized": NotAuthorized,
    "NoResponders": NoResponders,
    "Timeout": Timeout,
    "ResponderGone": ResponderGone,
    "UnknownService": UnknownService,
    "SlowConsumer": SlowConsumer,
    "LimitExceeded": LimitExceeded,
    "InvalidSubject": InvalidSubject,
    "ShuttingDown": ShuttingDown,
    "AppUnavailable": AppUnavailable,
    "AppServiceUnavailable": AppServiceUnavailable,
    "ResourceLimitsExceeded": ResourceLimitsExceeded,
}

#: The daemon's error codes, in the order of the Rust enum.
ERROR_CODES: tuple[str, ...] = tuple(_BY_CODE)


def class_for_code(code: str) -> type[BusdError]:
    """The exception class for a daemon error code; codes added after this
    client was written are :class:`Protocol` errors, as in the Rust SDK."""
    return _BY_CODE.get(code, Protocol)


def from_daemon(code: str, message: str) -> BusdError:
    """The error the daemon sent as ``Error{code, message}``."""
    return class_for_code(code)(f"{code}: {message}", code=code)


__all__ = [
    "AppServiceUnavailable",
    "AppUnavailable",
    "AuthFailed",
    "BusdError",
    "Closed",
    "Config",
    "Connect",
    "Decode",
    "Disconnected",
    "ERROR_CODES",
    "Encode",
    "FrameTooLarge",
    "InvalidSubject",
    "LimitExceeded",
    "NoResponders",
    "NotAuthorized",
    "Protocol",
    "ProtocolViolation",
    "Refused",
    "ResourceLimitsExceeded",
    "ResponderGone",
    "ServiceFailure",
    "ShuttingDown",
    "SlowConsumer",
    "Timeout",
    "Unsupported",
    "UnknownService",
    "class_for_code",
    "from_daemon",
]
