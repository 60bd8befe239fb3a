"""How the client verbs print: human tables by default, JSON with --json, times as ISO-8601
UTC, errors as one line on stderr with a documented exit status."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

# Exit statuses of every command (documented in the README (Operator CLI)).
EXIT_OK = 0
EXIT_ERROR = 1  # the service refused, is unreachable, or failed; a file could not be read
EXIT_USAGE = 2  # a mistake in the command: a flag, a value, a file's content
EXIT_REJECT = 3  # `check`: the order was rejected
EXIT_REDUCE_ONLY = 4  # `check`: only allowed_quantity may go, reduce-only


class CliError(Exception):
    """A mistake or failure the user is told about in one line (no traceback), with its exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def iso_utc(ms: int) -> str:
    """Unix milliseconds as ISO-8601 UTC to the second: 2026-12-06T05:12:03Z; "-" for 0."""
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(ms: int) -> str:
    """A duration in ms, short: 850ms, 12.3s, 4m05s, 2h03m, 3d04h."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{ms / 1000:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def print_json(message: Message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns as wide as their widest cell, two spaces apart; the first row is
    the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    sys.stdout.flush()


def print_fields(pairs: Iterable[tuple[str, str]]) -> None:
    """One record, a field per line."""
    print_table([("FIELD", "VALUE"), *((name, value if value != "" else "-") for name, value in pairs)])


def rpc_error_line(exc: grpc.RpcError) -> str:
    code = exc.code()  # type: ignore[attr-defined]
    text = one_line(exc.details())  # type: ignore[attr-defined]
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in text.lower():
        text = f"cannot reach the service ({text}); is it running, and is --target right?"
    return f"{name}: {text}"


def rpc_exit_code(exc: grpc.RpcError) -> int:
    """A value the service refuses as invalid is a mistake in the command (2); the rest 1."""
    return EXIT_USAGE if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else EXIT_ERROR  # type: ignore[attr-defined]
