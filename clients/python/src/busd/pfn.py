"""Package family names (``Name_PublisherId``) and the publisher-id hash.

A frame that names a malformed package is refused by the daemon, so a
claimed name is checked here before anything is sent, as the Rust SDK
checks it (``busd-proto``'s ``Pfn``).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from .errors import Config

#: Crockford's base32 alphabet, lower case, as Windows writes publisher ids.
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

_NAME = re.compile(r"[A-Za-z0-9.\-]{3,50}")
_PUBLISHER_ID = re.compile(f"[{CROCKFORD}]{{13}}")


@lru_cache(maxsize=1024)
def check_pfn(text: str) -> str:
    """``text`` if it is a package family name (cached: every delivery
    names its sender's).

    Raises:
        Config: saying which part is malformed (a claim is an option of
        the client, as in the Rust SDK's ``ErrorKind::Config``).
    """
    name, sep, publisher = text.rpartition("_")
    if not sep:
        raise Config(f"package family name {text!r} is not of the form Name_PublisherId")
    if not _NAME.fullmatch(name):
        raise Config(
            f"package name {name!r} must be 3 to 50 characters of A-Z, a-z, 0-9, '.' and '-'"
        )
    if not _PUBLISHER_ID.fullmatch(publisher):
        raise Config(
            f"publisher id {publisher!r} must be 13 lower-case Crockford base32 characters"
        )
    return text


def is_pfn(text: str) -> bool:
    """Whether ``text`` is a well-formed package family name."""
    try:
        check_pfn(text)
    except Config:
        return False
    return True


def publisher_id(publisher: str) -> str:
    """The 13-character publisher id of a publisher string (``CN=…``), as
    Windows computes it: SHA-256 of the UTF-16LE text, its first 8 bytes
    in Crockford base32 (64 bits and one zero bit: 13 groups of 5).

    >>> publisher_id("CN=Microsoft Corporation, O=Microsoft Corporation, "
    ...              "L=Redmond, S=Washington, C=US")
    '8wekyb3d8bbwe'
    """
    digest = hashlib.sha256(publisher.encode("utf-16-le")).digest()
    bits = int.from_bytes(digest[:8], "big") << 1
    return "".join(CROCKFORD[(bits >> (60 - 5 * i)) & 0x1F] for i in range(13))


def pfn_from_publisher(name: str, publisher: str) -> str:
    """The package family name of package ``name`` signed by ``publisher``."""
    return check_pfn(f"{name}_{publisher_id(publisher)}")
