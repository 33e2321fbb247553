"""Who the client says it is, and the token proof.

A client is unpackaged, or claims a package family name that the daemon
checks: by the peer credentials it reads from the socket (``Peer``), or by
an HMAC over the daemon's nonce under the package's token (``Token``).
The token itself never crosses the socket.

The MAC is HMAC-SHA256 keyed with the token over::

    b"busd-auth-v1\\0" || u64 big-endian len(nonce) || nonce || pfn (UTF-8)

so a MAC made for one connection (nonce) or one package proves nothing on
another (``busd-proto/src/auth.rs``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from .errors import Config
from .ops import AuthKind
from .pfn import check_pfn

#: Length of the MAC in ``Auth{hmac}``.
AUTH_MAC_LEN = 32

_DOMAIN = b"busd-auth-v1\0"

# Rust's `u8::is_ascii_whitespace`: no vertical tab, unlike bytes.strip().
_ASCII_WHITESPACE = b" \t\n\r\x0c"


def auth_message(nonce: bytes, pfn: str) -> bytes:
    """What the MAC covers: the domain label, the nonce's length and the
    nonce, and the claimed package."""
    return _DOMAIN + len(nonce).to_bytes(8, "big") + nonce + pfn.encode()


def auth_mac(token: bytes, nonce: bytes, pfn: str) -> bytes:
    """HMAC-SHA256 keyed with ``token`` over :func:`auth_message`: the
    proof ``Auth{hmac}`` carries."""
    return hmac.new(token, auth_message(nonce, pfn), hashlib.sha256).digest()


def read_token(path: str | os.PathLike[str]) -> bytes:
    """A token file's secret: its bytes, trailing white space (a final
    newline) removed. The hex text itself is the key, as the daemon reads
    it; it is not decoded.

    Raises:
        Config: the file cannot be read, or holds nothing.
    """
    try:
        with open(path, "rb") as f:
            secret = f.read().rstrip(_ASCII_WHITESPACE)
    except OSError as e:
        raise Config(f"cannot read the token file {os.fspath(path)}: {e}") from e
    if not secret:
        raise Config(f"token file {os.fspath(path)} is empty")
    return secret


@dataclass(frozen=True, slots=True)
class Identity:
    """The claim a client makes in ``Hello``, and the token file that
    proves it (read at each handshake, so a rotated token is picked up)."""

    pfn: str | None = None
    token_file: str | None = None

    @classmethod
    def of(cls, pfn: str | None, token_file: str | os.PathLike[str] | None) -> Identity:
        """Checks the options.

        Raises:
            Config: a malformed package name, or a token without a package.
        """
        if token_file is not None and pfn is None:
            raise Config(
                f"token file {os.fspath(token_file)} given without a package: a token "
                "proves a package family name, so set the package too (pfn=...)"
            )
        if pfn is not None:
            check_pfn(pfn)
        return cls(pfn, None if token_file is None else os.fspath(token_file))

    @property
    def auth(self) -> AuthKind:
        """The proof ``Hello`` announces."""
        if self.pfn is None:
            return AuthKind.NONE
        return AuthKind.PEER if self.token_file is None else AuthKind.TOKEN

    def secret(self) -> bytes | None:
        """The token to answer a challenge with, read now; ``None`` without one.

        Raises:
            Config: the token file cannot be read or is empty.
        """
        return None if self.token_file is None else read_token(self.token_file)
