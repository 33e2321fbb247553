"""Subjects: dot-separated tokens, with ``*`` and ``>`` wildcards.

The daemon decodes a frame's subject as a validated name and closes the
connection of a client that sends a malformed one, so every subject is
checked here first, by the same rules as ``busd-proto``'s ``Subject``:
tokens are non-empty, hold no white space or control character; ``*`` is a
whole token (exactly one token), ``>`` the whole last token (one or more).
"""

from __future__ import annotations

from functools import lru_cache

from .errors import InvalidSubject

#: The longest subject accepted, in bytes of UTF-8.
MAX_SUBJECT_LEN = 1024


def _bad_char(c: str) -> bool:
    # Rust's `char::is_whitespace` (Unicode White_Space) or `is_control` (Cc).
    return c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F


@lru_cache(maxsize=4096)
def check(text: str) -> bool:
    """Checks ``text`` and returns whether it holds wildcards.

    Cached: a publisher sends to the same few subjects again and again.

    Raises:
        InvalidSubject: saying which rule the text breaks.
    """
    if not isinstance(text, str):
        raise InvalidSubject(f"a subject is a str, not {type(text).__name__}")
    if not text:
        raise InvalidSubject("subject is empty")
    if len(text.encode()) > MAX_SUBJECT_LEN:
        raise InvalidSubject(f"subject is longer than {MAX_SUBJECT_LEN} bytes")
    if any(_bad_char(c) for c in text):
        raise InvalidSubject(f"subject {text!r} contains white space or a control character")
    tokens = text.split(".")
    wildcards = False
    for i, token in enumerate(tokens):
        if not token:
            raise InvalidSubject(f"subject {text!r} has an empty token")
        if token == "*" or (token == ">" and i == len(tokens) - 1):
            wildcards = True
        elif "*" in token or ">" in token:
            raise InvalidSubject(
                f"subject {text!r} misplaces a wildcard: `*` must be a whole token, "
                "`>` the whole last token"
            )
    return wildcards


def literal(text: str, what: str) -> str:
    """``text`` if it is a valid subject without wildcards.

    Raises:
        InvalidSubject: malformed, or a wildcard where ``what`` (``"publish
        to"``, ``"call"``, ``"serve"``) needs a literal name.
    """
    if check(text):
        raise InvalidSubject(f"cannot {what} {text!r}: wildcards are for subscriptions only")
    return text


def matches(pattern: str, subject: str) -> bool:
    """Whether the subscription ``pattern`` matches the literal ``subject``
    (the reference rule; the daemon routes with a trie)."""
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (p != "*" and p != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)
