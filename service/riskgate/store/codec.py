"""Versioned records as stored in Redis and sent on the change channel.

Stored:    {"v": <version>, "d": <record>}
Published: {"k": <kind>, "v": <version>, "i": <change stream id>, "d": <record>}
(`i`: the id of the same change's entry in the change stream, store/change_stream.py; absent
from a writer that does not append to the stream.)
The envelope's version is authoritative; the record's own `version` field is overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from riskgate.book.specs import AccountSnapshot, BreakerSpec, ControlsSpec, MarkSpec, SymbolSpec
from riskgate.book.state import Book
from riskgate.engine.ledger import apply_account_record
from riskgate.engine.records import apply_breaker, apply_controls, apply_mark, apply_symbol


class Stored(msgspec.Struct):
    v: int
    d: msgspec.Raw


class Change(msgspec.Struct):
    k: str
    v: int
    d: msgspec.Raw
    i: str = ""


KIND_TYPES: dict[str, type[Any]] = {
    "symbol": SymbolSpec,
    "mark": MarkSpec,
    "breaker": BreakerSpec,
    "controls": ControlsSpec,
    "account": AccountSnapshot,
}

APPLIERS: dict[str, Callable[[Book, Any], bool]] = {
    "symbol": apply_symbol,
    "mark": apply_mark,
    "breaker": apply_breaker,
    "controls": apply_controls,
    "account": apply_account_record,
}

_encoder = msgspec.json.Encoder(decimal_format="string")
_stored_decoder = msgspec.json.Decoder(Stored)
_change_decoder = msgspec.json.Decoder(Change)
_record_decoders = {kind: msgspec.json.Decoder(t) for kind, t in KIND_TYPES.items()}


def encode(record: msgspec.Struct) -> bytes:
    return _encoder.encode(record)


def decode_record(kind: str, raw: bytes | msgspec.Raw, version: int) -> Any:
    record = _record_decoders[kind].decode(raw)
    return msgspec.structs.replace(record, version=version)


def decode_stored(kind: str, data: bytes) -> Any:
    stored = _stored_decoder.decode(data)
    return decode_record(kind, stored.d, stored.v)


def decode_change(data: bytes) -> tuple[str, Any]:
    kind, record, _ = decode_change_with_id(data)
    return kind, record


def decode_change_with_id(data: bytes) -> tuple[str, Any, str]:
    """(kind, record, change stream id: "" when the writer gave none)."""
    change = _change_decoder.decode(data)
    if change.k not in KIND_TYPES:
        raise ValueError(f"unknown change kind {change.k!r}")
    return change.k, decode_record(change.k, change.d, change.v), change.i
