"""The protocol's test vectors (``tests/vectors/*.json``, written by the
Rust encoder): every frame decodes to exactly its operation, fields, body
and fd count, and encodes back to exactly its bytes; every invalid frame is
refused with its code; every HMAC is recomputed. The file format is
``docs/PROTOCOL.md``, section 13.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
from daemon import REPO

import busd
from busd import ops
from busd.auth import auth_mac, auth_message
from busd.frame import Frame, FrameDecoder, encode_header, frame_head
from busd.ops import Malformed

VECTORS = REPO / "tests" / "vectors"
FILES = sorted(VECTORS.glob("*.json")) if VECTORS.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"no vectors in {VECTORS}")

_OPS = {cls.NAME: cls for cls in ops.OPS}
_NO_LIMIT = 0xFFFFFFFF


def _vectors(kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in FILES:
        doc = json.loads(path.read_text())
        if doc["kind"] == kind:
            found += [(f"{path.stem}/{v['name']}", v) for v in doc["vectors"]]
    return found


FRAMES = _vectors("frames")
INVALID = _vectors("invalid")
AUTH = _vectors("auth")


# -- JSON (fields by name, as the vectors write them) to this codec's types


def _sender(v: dict[str, Any]) -> ops.Sender:
    assert set(v) == {"client_id", "pfn"}, v
    return ops.Sender(v["client_id"], v["pfn"])


def _party(v: dict[str, Any]) -> ops.Party:
    assert set(v) == {"client_id", "pfn", "uid"}, v
    return ops.Party(v["client_id"], v["pfn"], v["uid"])


def _status(v: str) -> ops.Status | str:
    return ops.Status(v) if v in ops.Status._value2member_map_ else v


def _struct(cls: type, v: dict[str, Any], **convert: Any) -> Any:
    """``cls`` from a JSON object holding exactly its fields (``from`` is
    this codec's ``sender``, a Python keyword)."""
    names = [f.name for f in dataclasses.fields(cls)]
    wire_names = {"from" if n == "sender" else n for n in names}
    assert set(v) == wire_names, f"{cls.__name__}: {sorted(v)} is not {sorted(wire_names)}"
    kwargs = {}
    for name in names:
        value = v["from" if name == "sender" else name]
        if name in convert and value is not None:
            value = convert[name](value)
        kwargs[name] = value
    return cls(**kwargs)


def _command(v: Any) -> ops.CtlCommand:
    if isinstance(v, str):
        return ops.CtlCommand(v)
    ((name, arg),) = v.items()
    if name == "Explain":
        arg = _struct(ops.ExplainQuery, arg)
    elif name == "Grant":
        arg = _struct(ops.GrantRequest, arg)
    return ops.CtlCommand(name, arg)


def _event(v: dict[str, Any]) -> ops.MonitorEvent:
    event: ops.MonitorEvent = _struct(
        ops.MonitorEvent,
        v,
        kind=ops.EventKind,
        sender=_party,
        to=lambda ps: [_party(p) for p in ps],
        denied=lambda ps: [_party(p) for p in ps],
        status=_status,
    )
    return event


def _ref(v: dict[str, int]) -> ops.Ref:
    ((kind, id_),) = v.items()
    return ops.Ref(kind, id_)


_CONVERT: dict[str, Any] = {
    "nonce": bytes.fromhex,
    "hmac": bytes.fromhex,
    "auth": ops.AuthKind,
    "overflow": ops.Overflow,
    "status": _status,
    "limits": lambda v: _struct(ops.Limits, v),
    "sender": _sender,
    "refers": _ref,
    "command": _command,
    "event": _event,
}


def expected_frame(v: dict[str, Any]) -> Frame:
    """The frame a vector describes, built from its JSON alone."""
    op = _struct(_OPS[v["op"]], v["fields"], **_CONVERT)
    body = v["body"]
    if body["kind"] == "inline":
        return Frame(op, bytes.fromhex(body["payload"]), v["fds"])
    if body["kind"] == "segment":
        return Frame(op, b"", v["fds"], body["len"])
    assert body["kind"] == "pooled", body
    return Frame(op, b"", v["fds"], None, (body["offset"], body["len"]))


def encode(frame: Frame) -> bytes:
    head = frame_head(
        encode_header(frame.op),
        len(frame.payload),
        fd_count=frame.fd_count,
        segment_len=frame.segment_len,
        pool=frame.pool,
    )
    return head + frame.payload


@pytest.mark.parametrize("name,vector", FRAMES, ids=[n for n, _ in FRAMES])
def test_frame_vectors_decode_to_their_meaning(name: str, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    [decoded] = FrameDecoder(_NO_LIMIT).decode_all(data)
    assert decoded == expected_frame(vector)


@pytest.mark.parametrize("name,vector", FRAMES, ids=[n for n, _ in FRAMES])
def test_frame_vectors_encode_to_their_bytes(name: str, vector: dict[str, Any]) -> None:
    assert encode(expected_frame(vector)).hex() == vector["hex"].lower()


# Read, not refused, on purpose: PROTOCOL.md section 14 asks clients in other
# languages to take an error code they do not know as an error of unknown
# kind ("codes are only ever added"), while invalid.json lists it among the
# frames every reader refuses. This client follows section 14.
LENIENT = {"unknown-error-code"}


@pytest.mark.parametrize("name,vector", INVALID, ids=[n for n, _ in INVALID])
def test_invalid_vectors_are_refused_with_their_code(name: str, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    if vector["name"] in LENIENT:
        [frame] = FrameDecoder(vector["max_frame"]).decode_all(data)
        assert isinstance(frame.op, ops.Error)
        assert type(busd.errors.from_daemon(frame.op.code, frame.op.message)) is busd.Protocol
        return
    expected = {"FrameTooLarge": busd.FrameTooLarge, "ProtocolViolation": Malformed}[
        vector["error"]
    ]
    with pytest.raises(expected):
        FrameDecoder(vector["max_frame"]).decode_all(data)


@pytest.mark.parametrize("name,vector", AUTH, ids=[n for n, _ in AUTH])
def test_auth_vectors_are_the_token_proof(name: str, vector: dict[str, Any]) -> None:
    token, nonce = bytes.fromhex(vector["token"]), bytes.fromhex(vector["nonce"])
    message, mac = bytes.fromhex(vector["message"]), bytes.fromhex(vector["hmac"])
    assert auth_message(nonce, vector["pfn"]) == message
    assert hmac.new(token, message, hashlib.sha256).digest() == mac
    assert auth_mac(token, nonce, vector["pfn"]) == mac


def test_the_vectors_cover_every_operation() -> None:
    seen = {v["op"] for _, v in FRAMES}
    assert seen == set(_OPS), f"not covered: {set(_OPS) - seen}; unknown here: {seen - set(_OPS)}"
    assert INVALID and AUTH


def test_each_vector_file_is_of_a_known_kind() -> None:
    for path in FILES:
        doc = json.loads(path.read_text())
        assert doc["kind"] in ("frames", "invalid", "auth"), path
        assert isinstance(doc["vectors"], list) and doc["vectors"], path
