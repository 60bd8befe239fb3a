"""Alerts: the cases a rule firing leaves for people, as stored in Redis (JSON by id).

States: OPEN -> ACKNOWLEDGED / ESCALATED -> RESOLVED (a rationale required). The monitor
itself adds history entries (fired, acted, cleared) without changing the state: whether
the case is closed is a person's call.
"""

from __future__ import annotations

import msgspec

OPEN, ACKNOWLEDGED, ESCALATED, RESOLVED = "OPEN", "ACKNOWLEDGED", "ESCALATED", "RESOLVED"
STATES = (OPEN, ACKNOWLEDGED, ESCALATED, RESOLVED)


class Transition(msgspec.Struct, frozen=True):
    actor: str
    action: str
    note: str
    at_ms: int


class Alert(msgspec.Struct, frozen=True):
    id: str
    rule_id: str
    rule_version: int
    severity: str
    state: str
    metric: str
    value: str
    threshold: str
    window_ms: int
    created_ms: int
    updated_ms: int
    history: list[Transition]
    symbol: str = ""
    account_id: str = ""
    action: str = ""
    action_version: int = 0
    audit_id: str = ""
    evidence: dict[str, str] = {}
    cleared_ms: int = 0


class Verb(msgspec.Struct, frozen=True):
    """A person's transition: the states it applies to and the state it leads to."""

    action: str
    to: str
    allowed_from: tuple[str, ...]
    note_required: bool


VERBS = {
    "AckAlert": Verb("acknowledge", ACKNOWLEDGED, (OPEN, ESCALATED), False),
    "EscalateAlert": Verb("escalate", ESCALATED, (OPEN, ACKNOWLEDGED), False),
    "ResolveAlert": Verb("resolve", RESOLVED, (OPEN, ACKNOWLEDGED, ESCALATED), True),
}

_decoder = msgspec.json.Decoder(Alert)
_encoder = msgspec.json.Encoder()


def decode_alert(data: bytes) -> Alert:
    # Lua's cjson writes an empty table as {}: an alert's evidence may come back so, and its
    # history never is empty.
    return _decoder.decode(data)


def encode_alert(alert: Alert) -> bytes:
    return _encoder.encode(alert)
