"""The daily decision counts: every check answered, per UTC day, minute, symbol, decision and
first reason, for the daily risk report. Written by the gate processes with their write-behind
batches (no Redis write per order), read here; the field format is defined once, here.

One hash per UTC day and account shard, `{<shard tag>}:decision_counts:<YYYY-MM-DD>`
(Keys.decision_counts: each shard's write-behind batch writes its own, in its hash tag;
read_day sums the shards of the layout the accounts are stored under), field
`<minute of day 0..1439>|<symbol>|<decision>|<reason>`, value the count:
- minute and day: of the write-behind batch that carried the counts (its `at_ms`, the gate's
  clock), so a decision lands in the minute its batch was taken (normally milliseconds later;
  after Redis was away, the minute the first batch after it was taken);
- symbol: as the order named it when the book knows it, "" otherwise (so callers cannot grow
  the key space with made-up symbols); a symbol may hold "|", so it is the field's middle;
- decision: "ACCEPT", "REJECT" or "REDUCE_ONLY";
- reason: the first reason's ReasonCode name (e.g. "INSUFFICIENT_MARGIN"), "" for none.
Every process adds to the same fields (HINCRBY), each batch exactly once; the key expires
`decision_counts_retention_days` after the last batch that wrote to it.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping

import redis.asyncio as aioredis

from riskgate.engine.spec_rules import SYMBOL_MAX_LEN
from riskgate.store.keys import Keys
from riskgate.values.codes import Decision, ReasonCode

log = logging.getLogger(__name__)

SEPARATOR = "|"
MINUTES_PER_DAY = 1440
# Fields asked for per HSCAN round trip: a day's hash is read in bounded chunks.
SCAN_COUNT = 1000

_DECISION_NAMES: dict[int, str] = {d.value: d.name for d in Decision}
_REASON_NAMES: dict[int, str] = {0: "", **{r.value: r.name for r in ReasonCode}}
DECISIONS = frozenset(_DECISION_NAMES.values())
REASONS = frozenset(_REASON_NAMES.values())

# (minute, symbol, decision, reason, count)
DecisionCount = tuple[int, str, str, str, int]


def day_of(at_ms: int) -> str:
    """The UTC day (YYYY-MM-DD) of a wall-clock time in ms since the epoch."""
    return time.strftime("%Y-%m-%d", time.gmtime(at_ms // 1000))


def minute_of(at_ms: int) -> int:
    """The UTC minute of the day (0..1439) of a wall-clock time in ms since the epoch."""
    return (at_ms // 60_000) % MINUTES_PER_DAY


def format_field(minute: int, symbol: str, decision: str, reason: str) -> str:
    return f"{minute}{SEPARATOR}{symbol}{SEPARATOR}{decision}{SEPARATOR}{reason}"


def parse_field(field: str) -> tuple[int, str, str, str]:
    """(minute, symbol, decision, reason) of a field; ValueError naming what is wrong."""
    minute_text, sep, rest = field.partition(SEPARATOR)
    parts = rest.rsplit(SEPARATOR, 2)
    if not sep or len(parts) != 3:
        raise ValueError("not minute|symbol|decision|reason")
    symbol, decision, reason = parts
    if not minute_text.isascii() or not minute_text.isdigit() or int(minute_text) >= MINUTES_PER_DAY:
        raise ValueError(f"minute {minute_text!r} is not 0..{MINUTES_PER_DAY - 1}")
    if len(symbol) > SYMBOL_MAX_LEN or not symbol.isprintable():
        raise ValueError(f"symbol {symbol!r} is not 0-{SYMBOL_MAX_LEN} printable characters")
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    return int(minute_text), symbol, decision, reason


def batch_fields(at_ms: int, decisions: Mapping[tuple[str, int, int], int]) -> tuple[str, list[tuple[str, int]]]:
    """The day and the (field, count) pairs of one batch's decision counts (OrderFlow.take():
    (symbol, decision, first reason code or 0) -> count), taken at at_ms."""
    minute = minute_of(at_ms)
    fields = [(format_field(minute, symbol, _DECISION_NAMES.get(decision, str(decision)),
                            _REASON_NAMES.get(reason, str(reason))), count)
              for (symbol, decision, reason), count in decisions.items()]
    return day_of(at_ms), fields


async def account_shard_count(client: aioredis.Redis, keys: Keys) -> int:
    """The shard count the accounts (and their streams and counts) are stored under: that of
    the last gate that took a writer lease (Keys.account_shards); before any did, keys' own."""
    stored = await client.get(keys.account_shards)
    try:
        count = int(stored) if stored is not None else 0
    except ValueError:
        count = 0
    return count if count >= 1 else keys.shard_count


async def read_day(client: aioredis.Redis, keys: Keys, day: str, shard_count: int | None = None
                   ) -> list[DecisionCount]:
    """Every count of one UTC day (YYYY-MM-DD), as (minute, symbol, decision, reason, count),
    in that order, summed over the shards (shard_count; None: account_shard_count). Read
    with HSCAN, SCAN_COUNT fields at a time; a field or count that is not in the format is
    skipped and logged."""
    datetime.date.fromisoformat(day)  # ValueError for anything but a date: it names a key
    if shard_count is None:
        shard_count = await account_shard_count(client, keys)
    shards: list[dict[bytes | str, bytes | str]] = []
    for shard in keys.shards(shard_count):
        # HSCAN may return a field more than once (a rehash between calls): the last value wins.
        raw: dict[bytes | str, bytes | str] = {}
        cursor = 0
        while True:
            cursor, chunk = await client.hscan(shard.decision_counts(day), cursor=cursor, count=SCAN_COUNT)
            raw.update(chunk)
            if not int(cursor):
                break
        shards.append(raw)
    summed: dict[tuple[int, str, str, str], int] = {}
    for raw in shards:
        for key, count in _parsed(raw, day):
            summed[key] = summed.get(key, 0) + count
    return sorted((*key, count) for key, count in summed.items())


def _parsed(raw: Mapping[bytes | str, bytes | str], day: str) -> list[tuple[tuple[int, str, str, str], int]]:
    counts: list[tuple[tuple[int, str, str, str], int]] = []
    for field, value in raw.items():
        try:
            text = field.decode() if isinstance(field, bytes) else field
            minute, symbol, decision, reason = parse_field(text)
            count = int(value)
            if count <= 0:
                raise ValueError(f"count {count} is not positive")
        except ValueError as exc:  # UnicodeDecodeError included
            log.warning("decision counts of %s: skipping malformed field %r = %r: %s", day, field, value, exc)
            continue
        counts.append(((minute, symbol, decision, reason), count))
    return counts
