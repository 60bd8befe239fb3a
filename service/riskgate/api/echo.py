"""Client-supplied strings echoed back in errors and audit entries, kept short: a long id must
not turn a NOT_FOUND into an oversized trailer, nor an audit entry into a parking lot.

An abort's details travel in the `grpc-message` trailer, percent-encoded (every byte outside
printable ASCII takes three). Past the peer's metadata limit (8 KiB soft, 16 KiB hard by
default) the client sees RESOURCE_EXHAUSTED instead of the status that was sent, so echoed
values go through `echo` and whole details strings through `details`.
"""

from __future__ import annotations

ECHO_LIMIT = 64
# UTF-8 bytes of an abort's details: at most three times this once percent-encoded.
DETAILS_LIMIT = 1000


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)`, of at most `limit` characters of it, then the full length if cut:
    'abc' or 'aaaa'... (100000 chars)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} chars)"


def details(text: str, limit: int = DETAILS_LIMIT) -> str:
    """An abort's details string, cut to at most `limit` bytes of UTF-8 (marker included)."""
    if len(text) <= limit and text.isascii():
        return text
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) <= limit:
        return text
    marker = f"... ({len(text)} chars)"
    return encoded[:max(limit - len(marker), 0)].decode("utf-8", "ignore") + marker


def clip(value: str, limit: int = 200) -> str:
    """The value itself, cut at limit: for stored fields that are read by machines."""
    return value if len(value) <= limit else value[:limit]
