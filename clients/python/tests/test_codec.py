"""The codec without a daemon: frame layout, header shapes, names, proofs,
endpoints and ValueSets, checked against bytes the Rust side writes
(``busd-proto``'s tests and encoders spell them out)."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest
from conftest import run

import busd
from busd import ops
from busd.auth import auth_mac, read_token
from busd.endpoint import default_url, parse_endpoint
from busd.frame import FDS_FLAG, FrameDecoder, encode_frame, encode_header, frame_head
from busd.ops import Malformed
from busd.subject import check, matches


def frame_of(header: bytes, tail: bytes = b"", word_flags: int = 0) -> bytes:
    return struct.pack(">II", 4 + len(header) + len(tail), len(header) | word_flags) + header + tail


def test_a_ping_frame_is_its_name_in_a_header() -> None:
    assert encode_frame(ops.Ping()) == bytes.fromhex("00000009 00000005") + b"\xa4Ping"
    [frame] = FrameDecoder(1024).decode_all(encode_frame(ops.Ping(), b"hi"))
    assert frame.op == ops.Ping() and frame.payload == b"hi"


def test_a_plain_pub_is_the_prefix_the_daemon_reads_fast() -> None:
    # busd-proto message_header.rs: PUB_PREFIX, the subject, nil.
    header = encode_header(ops.Pub("a.b"))
    assert header == b"\x81\xa3Pub\x92\xa3a.b\xc0"
    msg = ops.Msg(7, "a.b", ops.Sender(1 << 40, "Contoso.Weather_8wekyb3d8bbwe"))
    assert encode_header(msg).startswith(b"\x81\xa3Msg\x94\x07\xa3a.b\x92\xcf")


def test_hello_sends_its_flags_only_up_to_the_last_one_up() -> None:
    plain = ops.Hello(1, None, "app", ops.AuthKind.NONE)
    assert encode_header(plain) == b"\x81\xa5Hello\x94\x01\xc0\xa3app\xa4None"
    fds = ops.Hello(1, None, "app", ops.AuthKind.NONE, fds=True)
    assert encode_header(fds) == b"\x81\xa5Hello\x95\x01\xc0\xa3app\xa4None\xc3"
    pools = ops.Hello(1, None, "app", ops.AuthKind.NONE, set_pools=True)
    assert encode_header(pools) == b"\x81\xa5Hello\x96\x01\xc0\xa3app\xa4None\xc2\xc3"
    for hello in (
        plain,
        ops.Hello(1, "Contoso.Weather_8wekyb3d8bbwe", "w", ops.AuthKind.TOKEN, True, True),
    ):
        assert ops.op_from_wire(_roundtrip(hello)) == hello


def _roundtrip(op: ops.Op) -> object:
    return msgpack.unpackb(encode_header(op), raw=False)


def test_every_operation_round_trips() -> None:
    sender = ops.Sender(9, "Contoso.Weather_8wekyb3d8bbwe")
    party = ops.Party(3, None, 1000)
    every: list[ops.Op] = [
        ops.Hello(1, None, "app", ops.AuthKind.PEER),
        ops.Challenge(b"\x00" * 32),
        ops.Auth(b"\x01" * 32),
        ops.Welcome(7, None, ops.Limits(8 << 20, 65536, 64 << 20), fds=True),
        ops.Sub(1, "a.*.c", "workers", ops.Overflow.BLOCK),
        ops.Unsub(1),
        ops.Pub("a.b", {"z": "1", "a": "2"}),
        ops.Msg(3, "a.b", sender, None),
        ops.Serve(4, "svc.a", "contoso.hsa"),
        ops.Req(5, "svc.a", 5000, None),
        ops.Call(6, 4, "svc.a", ops.Sender(2), {"k": "v"}),
        ops.Resp(6, ops.Status.FAILURE),
        ops.Ping(),
        ops.Pong(),
        ops.Error("NoResponders", "nobody", ops.Ref("Rid", 5)),
        ops.Ctl(8, ops.CtlCommand("Stats")),
        ops.Ctl(9, ops.CtlCommand("Explain", ops.ExplainQuery("a", None, "x.y"))),
        ops.Ctl(10, ops.CtlCommand("Revoke", 3)),
        ops.Dropped(1, 12),
        ops.Monitor(2, ">", True),
        ops.Event(
            2,
            ops.MonitorEvent(
                1, ops.EventKind.PUBLISH, "a.b", party, [party], [], 5, None, None, None
            ),
        ),
        ops.Release([1, 1 << 32]),
        ops.PoolGone(3),
    ]
    assert {type(op) for op in every} == set(ops.OPS)
    decoder = FrameDecoder(1 << 20)
    stream = b"".join(encode_frame(op, b"p") for op in every)
    # Fed one byte at a time, each frame comes out once and whole.
    out = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert [f.op for f in out] == every
    assert all(f.payload == b"p" for f in out)
    # Headers are written in key order, as a BTreeMap is.
    assert encode_header(ops.Pub("a.b", {"z": "1", "a": "2"})) == (
        b"\x81\xa3Pub\x92\xa3a.b\x82\xa1a\xa12\xa1z\xa11"
    )


def test_an_oversized_length_is_refused_before_its_bytes_arrive() -> None:
    decoder = FrameDecoder(1024)
    decoder.feed(struct.pack(">I", 1025))
    with pytest.raises(busd.FrameTooLarge):
        decoder.next_frame()
    with pytest.raises(busd.FrameTooLarge):
        frame_head(b"\xa4Ping", 2000, max_frame=1024)


@pytest.mark.parametrize(
    "data",
    [
        frame_of(b"\xc1\xc1\xc1\xc1"),  # never valid MessagePack
        struct.pack(">III", 8, 100, 0),  # header longer than the frame
        struct.pack(">I", 2) + b"\x00\x00",  # no room for the header length
        frame_of(b"\xa4Ping\xc0"),  # bytes after the operation
        frame_of(b"\xa4Pang"),  # no such operation
        frame_of(b"\x81\xa3Pub\x92\xa4a..b\xc0"),  # an invalid subject
        frame_of(b"\x81\xa3Pub\x91\xa3a.b"),  # a field missing
        frame_of(b"\xa4Ping", b"\x00\x01", FDS_FLAG),  # fds on a Ping
        frame_of(b"\x81\xa3Pub\x92\xa3a.b\xc0", b"\x00\x00", FDS_FLAG),  # 0 fds announced
        frame_of(b"\x81\xa3Pub\x92\xa3a.b\xc0", b"\x00\xfe", FDS_FLAG),  # 254 fds
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(Malformed):
        FrameDecoder(1024).decode_all(data)


def test_fds_segments_and_pools_are_read_from_their_flags() -> None:
    header = encode_header(ops.Pub("big.data"))
    segment = frame_head(header, 0, segment_len=100_000, max_frame=1 << 20)
    pooled = frame_head(header, 0, pool=((2 << 32) | 4096, 70_000), max_frame=1 << 20)
    with_fds = frame_head(header, 3, fd_count=2) + b"abc"
    frames = FrameDecoder(1 << 20).decode_all(segment + pooled + with_fds)
    assert [(f.segment_len, f.pool, f.fd_count, f.payload) for f in frames] == [
        (100_000, None, 0, b""),
        (None, ((2 << 32) | 4096, 70_000), 0, b""),
        (None, None, 2, b"abc"),
    ]
    with pytest.raises(busd.FrameTooLarge):
        FrameDecoder(1024).decode_all(segment)


def test_subjects_follow_the_daemons_rules() -> None:
    assert check("a.b.c") is False
    assert check("a.*.c") and check("a.>") and check(">")
    for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.>.c", "a.b*", "a.>b", "a\tb", "x" * 1025]:
        with pytest.raises(busd.InvalidSubject):
            check(bad)
    assert matches("a.*", "a.b") and not matches("a.*", "a.b.c")
    assert matches("a.>", "a.b.c") and not matches("a.>", "a")
    assert matches("*.b.>", "x.b.y.z") and not matches("a.b", "a.b.c")


def test_publisher_ids_are_windows_ones() -> None:
    publisher = "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US"
    assert busd.publisher_id(publisher) == "8wekyb3d8bbwe"


def test_the_token_proof_binds_token_nonce_and_package() -> None:
    pfn = "Contoso.Weather_8wekyb3d8bbwe"
    mac = auth_mac(b"secret", b"nonce-1", pfn)
    assert len(mac) == 32
    assert mac != auth_mac(b"secret", b"nonce-2", pfn)
    assert mac != auth_mac(b"other", b"nonce-1", pfn)
    assert mac != auth_mac(b"secret", b"nonce-1", "Fabrikam.Maps_1234567890abc")


def test_token_files_lose_only_trailing_white_space(tmp_path: Path) -> None:
    path = tmp_path / "weather.key"
    path.write_bytes(b"s3cret \n\n")
    assert read_token(path) == b"s3cret"
    path.write_bytes(b"\n")
    with pytest.raises(busd.Config):
        read_token(path)


def test_endpoints_parse_as_the_rust_sdk_parses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(parse_endpoint("tcp://127.0.0.1:4223")) == "tcp://127.0.0.1:4223"
    assert str(parse_endpoint(" TCP://LocalHost:1 \n")) == "tcp://127.0.0.1:1"
    assert str(parse_endpoint("tcp://[::1]:4223")) == "tcp://[::1]:4223"
    assert parse_endpoint("unix:///run/busd/busd.sock").path == "/run/busd/busd.sock"
    assert parse_endpoint("fd://3").fd == 3
    for bad in ["http://x", "127.0.0.1:4223", "tcp://example.com:1", "tcp://::1:4223",
                "tcp://127.0.0.1", "unix://relative", "fd://1"]:  # fmt: skip
        with pytest.raises(busd.Connect):
            parse_endpoint(bad)
    monkeypatch.delenv("BUSD_URL", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_url() == "unix:///run/user/1000/busd/busd.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")
    assert default_url() == "unix:///run/busd/busd.sock"
    monkeypatch.setenv("BUSD_URL", "tcp://127.0.0.1:9")
    assert default_url() == "tcp://127.0.0.1:9"


def test_shm_is_refused_with_the_unix_url_to_use_instead() -> None:
    async def scenario() -> None:
        with pytest.raises(busd.Unsupported) as refused:
            await busd.connect("shm:///run/busd/busd.sock")
        assert "unix:///run/busd/busd.sock" in str(refused.value)

    run(scenario())


def test_value_sets_are_maps_in_key_order() -> None:
    assert (
        busd.pack({"b": 1, "a": {"y": None, "x": -1}})
        == b"\x82\xa1a\x82\xa1x\xff\xa1y\xc0\xa1b\x01"
    )
    value = {"nil": None, "flag": True, "neg": -3, "big": (1 << 64) - 1, "f": 1.5,
             "name": "Paris", "raw": b"\x01\x02", "list": [1, "a"], "map": {"x": 1.5}}  # fmt: skip
    assert busd.unpack(busd.pack(value)) == value
    with pytest.raises(busd.Encode):
        busd.pack({"too big": 1 << 64})
    with pytest.raises(busd.Encode):
        busd.pack({1: "not a string key"})  # type: ignore[dict-item]
    with pytest.raises(busd.Decode):
        busd.unpack(b"\x2a")  # 42: not a map
    with pytest.raises(busd.Decode):
        busd.unpack(b"not msgpack at all")


def test_every_daemon_code_is_an_exception_class() -> None:
    for code in busd.ERROR_CODES:
        err = busd.errors.from_daemon(code, "why")
        assert isinstance(err, busd.BusdError) and err.code == code
        assert str(err) == f"{code}: why"
    assert type(busd.errors.from_daemon("ProtocolViolation", "x")) is busd.ProtocolViolation
    assert isinstance(busd.errors.from_daemon("ShuttingDown", "x"), busd.Disconnected)
    assert type(busd.errors.from_daemon("SomethingNew", "x")) is busd.Protocol
