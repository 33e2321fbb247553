"""ValueSets: typed payloads as MessagePack maps, as Python dicts.

A ValueSet is what Rust callers send with ``client.call`` and ``busd req
--json``: a map of string keys to values, each nil, a boolean, an integer
(-2**63 .. 2**64-1), a float, a string, bytes, a list of values or a
nested map. The Rust side keeps maps in a ``BTreeMap``, so :func:`pack`
writes every map in key order: the same dict gives the same bytes in
both languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from .errors import Decode, Encode

Value = None | bool | int | float | str | bytes | list["Value"] | dict[str, "Value"]
ValueSet = dict[str, Value]

_INT_MIN, _UINT_MAX = -(1 << 63), (1 << 64) - 1


def _wire(value: Any, path: str) -> Any:
    """``value`` with every map's entries in key order, checked."""
    if value is None or isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _UINT_MAX:
            raise Encode(f"{path}: integer {value} is out of the 64-bit range")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise Encode(f"{path}: map keys must be strings, not {type(key).__name__}")
        return {k: _wire(value[k], f"{path}.{k}") for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_wire(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise Encode(f"{path}: a {type(value).__name__} is not a ValueSet value")


def pack(value_set: Mapping[str, Any]) -> bytes:
    """Encodes a dict as a ValueSet payload.

    Raises:
        Encode: not a map of string keys, or a value of another type.
    """
    if not isinstance(value_set, Mapping):
        raise Encode(f"a ValueSet is a map, not a {type(value_set).__name__}")
    return msgpack.packb(_wire(value_set, "$"), use_bin_type=True)  # type: ignore[no-any-return]


def unpack(payload: bytes) -> ValueSet:
    """Decodes a ValueSet payload into a dict (bytes stay bytes).

    Raises:
        Decode: not one MessagePack map with string keys.
    """
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise Decode(f"cannot decode the value set: {e}") from None
    if not isinstance(value, dict):
        raise Decode(f"cannot decode the value set: a {type(value).__name__}, not a map")
    _check_plain(value, "$")
    return value


def _check_plain(value: Any, path: str) -> None:
    # Extension types (timestamps…) have no ValueSet value.
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{path}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str, bytes))):
        raise Decode(f"cannot decode the value set: {path} is a {type(value).__name__}")
