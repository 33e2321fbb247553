"""Reading a decoded MessagePack header's fields, strictly: each reader
takes one value and returns it checked, or raises :class:`Malformed`
(names are validated, integers unsigned and in range)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from .enums import Headers, Status
from .errors import Config, InvalidSubject, Protocol
from .pfn import check_pfn
from .subject import check as check_subject


class Malformed(Protocol):
    """A header that is not a valid operation."""


def _fail(what: str) -> Malformed:
    return Malformed(f"malformed frame: {what}")


def _uint(v: Any, bits: int = 64) -> int:
    if type(v) is not int or not 0 <= v < (1 << bits):
        raise _fail(f"expected an unsigned {bits}-bit integer, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _fail(f"expected a boolean, got {v!r}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _fail(f"expected a string, got {v!r}")
    return v


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise _fail(f"expected bytes, got {v!r}")
    return v


def _opt(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else read(v)


def _subject(v: Any) -> str:
    text = _str(v)
    try:
        check_subject(text)
    except InvalidSubject as e:
        raise _fail(str(e)) from None
    return text


def _pfn(v: Any) -> str:
    text = _str(v)
    try:
        check_pfn(text)
    except Config as e:
        raise _fail(str(e)) from None
    return text


def _headers(v: Any) -> Headers | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    ):
        raise _fail(f"headers must map strings to strings, got {v!r}")
    return v


def _enum(cls: type[StrEnum]) -> Callable[[Any], Any]:
    def read(v: Any) -> Any:
        try:
            return cls(_str(v))
        except ValueError:
            raise _fail(f"unknown {cls.__name__} {v!r}") from None

    return read


def _code(v: Any) -> str:
    # Codes are only ever added: one this client does not know is an error
    # of unknown kind, not a frame to refuse (PROTOCOL.md, section 14).
    return _str(v)


def _status(v: Any) -> Status | str:
    # Likewise a status added later: kept as its name, read as a failure.
    text = _str(v)
    try:
        return Status(text)
    except ValueError:
        return text


def _fields(v: Any, n: int, name: str, optional_tail: int = 0) -> list[Any]:
    """The array of a struct's fields (rmp-serde also reads a map of field
    names, which no busd writes; arrays only here)."""
    if not isinstance(v, list) or not n - optional_tail <= len(v) <= n:
        raise _fail(f"{name} needs {n} fields, got {v!r}")
    return v + [None] * (n - len(v))


def _wire_headers(h: Mapping[str, str] | None) -> dict[str, str] | None:
    # A BTreeMap on the Rust side: entries in key order, byte for byte.
    return None if h is None else {k: h[k] for k in sorted(h)}


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(f"expected an array, got {v!r}")
    return v
