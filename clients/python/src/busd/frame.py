"""Frames: the bytes on the wire, and back.

::

    u32 length          big endian, counting everything after itself
    u32 header length   big endian; its top bits are flags:
                        bit 31 SEGMENT_FLAG, bit 30 FDS_FLAG, bit 29 POOL_FLAG
    header              MessagePack: one operation (see ``ops``)
    u16 fd count        big endian, 1..=253; only with FDS_FLAG
    payload             raw bytes; for a segment frame its u64 length, for a
                        pooled frame the u64 offset and u64 length of its
                        block in the sender's payload pool

Segments, pools and fds are for shm and unix fd passing, which this client
does not do; the codec still reads and writes their frames, so that it can
be checked against the protocol's test vectors, and the client refuses them.

The decoder checks the announced length against ``max_frame`` before it
keeps any bytes of the frame, as the daemon's codec does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import FrameTooLarge
from .ops import Call, Malformed, Msg, Op, Pub, Req, Resp, op_from_wire

LENGTH_PREFIX = 4
SEGMENT_FLAG = 1 << 31
FDS_FLAG = 1 << 30
POOL_FLAG = 1 << 29
HEADER_FLAGS = SEGMENT_FLAG | FDS_FLAG | POOL_FLAG
SEGMENT_LEN_FIELD = 8
POOL_REF_FIELD = 16
FD_COUNT_FIELD = 2
#: What the kernel passes in one message (``SCM_MAX_FD``).
MAX_FDS_PER_FRAME = 253

_WORDS = struct.Struct(">II")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")

# The operations that may carry fds.
_WITH_FDS = (Pub, Msg, Req, Call, Resp)


@dataclass(slots=True)
class Frame:
    """One frame: an operation and its payload.

    ``fd_count``, ``segment_len`` and ``pool`` describe payloads and files
    that travel beside the stream (unix fd passing, shm); a frame from
    this client never has them.
    """

    op: Op
    payload: bytes = b""
    fd_count: int = 0
    segment_len: int | None = None
    pool: tuple[int, int] | None = None


def encode_header(op: Op) -> bytes:
    """The MessagePack header of ``op``, byte for byte as rmp-serde writes it."""
    return msgpack.packb(op.to_wire(), use_bin_type=True)  # type: ignore[no-any-return]


def decode_header(header: bytes) -> Op:
    """The operation of a header: exactly one MessagePack value, nothing after.

    Raises:
        Malformed: not MessagePack, not an operation, or bytes left over.
    """
    try:
        value: Any = msgpack.unpackb(header, raw=False, use_list=True, strict_map_key=True)
    except msgpack.ExtraData:
        raise Malformed("malformed frame: bytes follow the operation in its header") from None
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise Malformed(f"malformed frame: {e}") from None
    return op_from_wire(value)


def frame_head(
    header: bytes,
    payload_len: int,
    *,
    max_frame: int | None = None,
    fd_count: int = 0,
    segment_len: int | None = None,
    pool: tuple[int, int] | None = None,
) -> bytes:
    """Everything of a frame but its inline payload: both length words, the
    header, the fd count, and a segment's length or a pool block's place.

    Raises:
        FrameTooLarge: over ``max_frame`` (counted after the first length
            field, a segment's bytes included, as the Rust encoder counts).
        Malformed: more fds than one frame carries, or a header over 512 MiB.
    """
    if len(header) & HEADER_FLAGS:
        raise Malformed("malformed frame: header over 512 MiB")
    word = len(header)
    tail = b""
    if fd_count:
        if not 0 < fd_count <= MAX_FDS_PER_FRAME:
            raise Malformed(f"malformed frame: {fd_count} fds; at most {MAX_FDS_PER_FRAME}")
        word |= FDS_FLAG
        tail += _U16.pack(fd_count)
    counted = payload_len
    if segment_len is not None:
        word |= SEGMENT_FLAG
        tail += _U64.pack(segment_len)
        payload_len, counted = 0, segment_len
    elif pool is not None:
        word |= POOL_FLAG
        tail += _U64X2.pack(*pool)
        payload_len = counted = 0
    total = LENGTH_PREFIX + len(header) + len(tail) + payload_len
    limit = 0xFFFFFFFF if max_frame is None else max_frame
    if total - payload_len + counted > limit:
        raise FrameTooLarge(
            f"frame of {total - payload_len + counted} bytes is over the limit of {limit} bytes"
        )
    return _WORDS.pack(total, word) + header + tail


def encode_frame(op: Op, payload: bytes = b"", *, max_frame: int | None = None) -> bytes:
    """The whole frame of ``op`` with an inline ``payload``.

    Raises:
        FrameTooLarge: over ``max_frame``.
    """
    header = encode_header(op)
    return frame_head(header, len(payload), max_frame=max_frame) + payload


class FrameDecoder:
    """Frames a byte stream: :meth:`feed` it what arrives, take whole
    frames out with :meth:`next_frame`.

    ``max_frame`` may be raised once the handshake has told it.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        # Where the next frame starts: consumed bytes are cut off only when
        # more arrive, not per frame (a read holds hundreds of small ones).
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Adds bytes that arrived; take the frames with :meth:`next_frame`."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, or ``None`` until more bytes arrive.

        Raises:
            FrameTooLarge: a frame announced over ``max_frame`` (before any
                of its bytes are kept).
            Malformed: a frame that breaks the layout or whose header is
                not an operation. The stream is unusable after either.
        """
        buf, pos = self._buf, self._pos
        if len(buf) - pos < LENGTH_PREFIX:
            return None
        (length,) = struct.unpack_from(">I", buf, pos)
        if length > self.max_frame:
            raise FrameTooLarge(
                f"frame of {length} bytes is over the limit of {self.max_frame} bytes"
            )
        if length < LENGTH_PREFIX:
            raise Malformed(
                f"malformed frame: frame length {length} leaves no room for the header length"
            )
        end = pos + LENGTH_PREFIX + length
        if end > len(buf):
            return None
        self._pos = end
        return self._frame(memoryview(buf)[pos + LENGTH_PREFIX : end])

    def decode_all(self, data: bytes) -> list[Frame]:
        """Every whole frame in ``data`` (after what was fed before)."""
        self.feed(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buf) - self._pos

    def _frame(self, body: memoryview) -> Frame:
        try:
            return self._parse(body)
        finally:
            body.release()

    def _parse(self, body: memoryview) -> Frame:
        (word,) = struct.unpack_from(">I", body, 0)
        header_len = word & ~HEADER_FLAGS & 0xFFFFFFFF
        rest = len(body) - LENGTH_PREFIX
        if header_len > rest:
            raise Malformed(
                f"malformed frame: header length {header_len} exceeds the frame's "
                f"{rest} remaining bytes"
            )
        at = LENGTH_PREFIX + header_len
        op = decode_header(bytes(body[LENGTH_PREFIX:at]))
        fd_count = 0
        if word & FDS_FLAG:
            if len(body) - at < FD_COUNT_FIELD:
                raise Malformed(
                    "malformed frame: a frame announcing fds is too short for their count"
                )
            (fd_count,) = _U16.unpack_from(body, at)
            at += FD_COUNT_FIELD
            if not 0 < fd_count <= MAX_FDS_PER_FRAME:
                raise Malformed(
                    f"malformed frame: a frame announcing {fd_count} fds "
                    f"(1 to {MAX_FDS_PER_FRAME} may be attached)"
                )
            if not isinstance(op, _WITH_FDS):
                raise Malformed(
                    f"malformed frame: fds attached to a {op.NAME} frame; "
                    "only messages, requests and replies carry them"
                )
        tail = len(body) - at
        if word & POOL_FLAG:
            if word & SEGMENT_FLAG:
                raise Malformed("malformed frame: a frame both pooled and a segment")
            if tail != POOL_REF_FIELD:
                raise Malformed(
                    f"malformed frame: a pooled frame carries {POOL_REF_FIELD} bytes "
                    f"after its header, not {tail}"
                )
            offset, length = _U64X2.unpack_from(body, at)
            self._check_beside(length)
            return Frame(op, b"", fd_count, None, (offset, length))
        if word & SEGMENT_FLAG:
            if tail != SEGMENT_LEN_FIELD:
                raise Malformed(
                    f"malformed frame: a segment frame carries {SEGMENT_LEN_FIELD} bytes "
                    f"after its header, not {tail}"
                )
            (length,) = _U64.unpack_from(body, at)
            if length == 0:
                raise Malformed("malformed frame: an empty segment")
            self._check_beside(length)
            return Frame(op, b"", fd_count, length, None)
        return Frame(op, bytes(body[at:]), fd_count)

    def _check_beside(self, length: int) -> None:
        if length > self.max_frame:
            raise FrameTooLarge(
                f"frame of {length} bytes is over the limit of {self.max_frame} bytes"
            )
