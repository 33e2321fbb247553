"""The enums of the protocol whose values travel as their names, and the
headers' type."""

from __future__ import annotations

from enum import StrEnum

Headers = dict[str, str]
"""Message headers: string keys to string values."""


class Status(StrEnum):
    """The outcome of a request, in its ``Resp``: ``Success`` and
    ``Failure`` are the service's answer, the others the daemon's verdict."""

    SUCCESS = "Success"
    FAILURE = "Failure"
    NO_RESPONDERS = "NoResponders"
    NOT_AUTHORIZED = "NotAuthorized"
    TIMEOUT = "Timeout"
    RESPONDER_GONE = "ResponderGone"


class Overflow(StrEnum):
    """What the daemon does when a subscriber's outbound queue is full."""

    DISCONNECT = "Disconnect"
    DROP_OLDEST = "DropOldest"
    BLOCK = "Block"


class AuthKind(StrEnum):
    """How a client proves the package it claims."""

    NONE = "None"
    TOKEN = "Token"
    PEER = "Peer"


class EventKind(StrEnum):
    """What a monitor event records."""

    PUBLISH = "Publish"
    REQUEST = "Request"
    REPLY = "Reply"
