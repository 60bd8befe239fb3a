"""Client-supplied strings echoed back in errors and audit entries, kept short: a long id must
not turn a NOT_FOUND into an oversized trailer, nor an audit entry into a parking lot."""

from __future__ import annotations

ECHO_LIMIT = 64


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} chars)"


def clip(value: str, limit: int = 200) -> str:
    """The value itself, cut at limit: for stored fields that are read by machines."""
    return value if len(value) <= limit else value[:limit]
