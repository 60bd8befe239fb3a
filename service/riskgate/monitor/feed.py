"""What the monitor follows: symbols, marks, breakers, rules, funding rates, account groups
and the insurance fund, from Redis.

It subscribes to the gate's change channel and the rule channel *before* it loads the
snapshot, so no change made in between is missed (versions make a replay harmless), and
resubscribes and reloads after a lost link. It never reads the gate's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from riskgate.book.specs import BreakerSpec, MarkSpec, SymbolSpec
from riskgate.engine.spec_rules import validate_symbol
from riskgate.monitor.exact import Market
from riskgate.monitor.funding import FundingSpec, decode_funding
from riskgate.monitor.groups import GroupSpec, decode_group
from riskgate.monitor.insurance import InsuranceSpec, decode_insurance
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.marks import MarkHistory
from riskgate.monitor.rules import Rule, validate_rule
from riskgate.store.codec import Change, Stored, decode_record
from riskgate.values.tiers import TierTable

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 2.0
RETRY_BACKOFF_S = 0.05
MAX_RETRY_BACKOFF_S = 1.0
FOLLOWED = ("symbol", "mark", "breaker")
_change = msgspec.json.Decoder(Change)
_stored = msgspec.json.Decoder(Stored)
_rule = msgspec.json.Decoder(Rule)


class MarketView:
    """The monitor's copy of what it follows. An older version never replaces a newer one."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolSpec] = {}
        self.breakers: dict[str, BreakerSpec] = {}
        self.marks: dict[str, MarkHistory] = {}
        self.rules: dict[str, Rule] = {}
        self.funding: dict[str, FundingSpec] = {}
        # Linked accounts: account -> its group record ("" group: in none).
        self.groups: dict[str, GroupSpec] = {}
        # The insurance fund's balance (None: never set).
        self.insurance: InsuranceSpec | None = None
        self.max_version = 0
        self._tiers: dict[str, tuple[int, TierTable]] = {}

    def tiers(self, symbol: str) -> TierTable | None:
        spec = self.symbols.get(symbol)
        if spec is None:
            return None
        cached = self._tiers.get(symbol)
        if cached is None or cached[0] != spec.version:
            cached = self._tiers[symbol] = (spec.version, validate_symbol(spec))
        return cached[1]

    def market(self, symbol: str) -> Market | None:
        """The symbol as exact figures need it; None when the symbol is unknown."""
        spec = self.symbols.get(symbol)
        tiers = self.tiers(symbol)
        if spec is None or tiers is None:
            return None
        history = self.marks.get(symbol)
        latest = history.latest if history is not None else None
        return Market(tiers=tiers, tick=spec.tick_size, lot=spec.lot_size, mark=latest[1] if latest else None,
                      mark_ms=latest[0] if latest else 0, max_age_ms=spec.mark_price_max_age_ms)

    def apply(self, kind: str, record: Any) -> str | None:
        """Applies one record; returns the symbol whose mark moved (kind "funding": whose rate
        changed), if one did."""
        self.max_version = max(self.max_version, record.version)
        if kind == "symbol":
            current = self.symbols.get(record.symbol)
            if current is None or record.version > current.version:
                self.symbols[record.symbol] = record
        elif kind == "breaker":
            current_breaker = self.breakers.get(record.symbol)
            if current_breaker is None or record.version > current_breaker.version:
                self.breakers[record.symbol] = record
        elif kind == "mark":
            mark: MarkSpec = record
            history = self.marks.setdefault(mark.symbol, MarkHistory())
            if history.add(mark.timestamp_ms, mark.price, mark.version):
                return mark.symbol
        elif kind == "rule":
            current_rule = self.rules.get(record.id)
            if current_rule is None or record.version > current_rule.version:
                self.rules[record.id] = record
        elif kind == "group":
            current_group = self.groups.get(record.account_id)
            if current_group is None or record.version > current_group.version:
                self.groups[record.account_id] = record
        elif kind == "funding":
            current_funding = self.funding.get(record.symbol)
            if current_funding is None or record.version > current_funding.version:
                self.funding[record.symbol] = record
                return record.symbol
        elif kind == "insurance" and (self.insurance is None or record.version > self.insurance.version):
            self.insurance = record
        return None


class Feed:
    def __init__(self, client: aioredis.Redis, keys: MonitorKeys, view: MarketView,
                 on_mark: Callable[[str], None], on_live: Callable[[bool], None],
                 on_funding: Callable[[str], None] | None = None,
                 on_symbol: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.keys = keys
        self.view = view
        self.on_mark = on_mark
        self.on_live = on_live
        self.on_funding = on_funding
        # A symbol's spec changed (new tiers): its holders are to be valued again.
        self.on_symbol = on_symbol
        self.live = False
        self.loaded = asyncio.Event()
        self._closing = False

    def close(self) -> None:
        self._closing = True

    async def run(self) -> None:
        backoff = RETRY_BACKOFF_S
        while not self._closing:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.keys.changes, self.keys.rule_changes)
                for _ in range(2):
                    confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                    if confirmation is None or confirmation.get("type") != "subscribe":
                        raise RedisConnectionError("no subscribe confirmation from Redis")
                await self._load()
                self._set_live(True)
                self.loaded.set()
                backoff = RETRY_BACKOFF_S
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except Exception as exc:
                self._set_live(False)
                if isinstance(exc, (RedisError, OSError)):
                    log.warning("monitor feed lost (%s); resubscribing and reloading", exc)
                else:  # a defect, but the feed must come back rather than stay dead
                    log.exception("monitor feed failed; resubscribing and reloading")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
            finally:
                self._set_live(False)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()

    def _set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self.on_live(live)

    async def _load(self) -> None:
        for kind in FOLLOWED:
            rows = await self.client.hgetall(self.keys.hash_for(kind))
            for field, data in rows.items():
                try:
                    stored = _stored.decode(data)
                    self._apply(kind, decode_record(kind, stored.d, stored.v))
                except Exception as exc:  # one bad record must not stop the load
                    log.error("ignoring unreadable %s record %r in Redis: %r", kind, field[:100], exc)
        # Rules first: each rate loaded is evaluated by the rules in force.
        people: tuple[tuple[str, str, Callable[[msgspec.Raw, int], Any]], ...] = (
            ("rule", self.keys.rules, _decode_rule), ("funding", self.keys.funding, decode_funding),
            ("group", self.keys.account_groups, decode_group),
            ("insurance", self.keys.insurance_fund, decode_insurance))
        for kind, key, decode in people:
            for field, data in (await self.client.hgetall(key)).items():
                try:
                    stored = _stored.decode(data)
                    self._apply(kind, decode(stored.d, stored.v))
                except Exception as exc:
                    log.error("ignoring unreadable %s %r in Redis: %r", kind, field[:100], exc)

    def _on_message(self, data: bytes) -> None:
        try:
            change = _change.decode(data)
            if change.k == "rule":
                self._apply("rule", _decode_rule(change.d, change.v))
            elif change.k == "funding":
                self._apply("funding", decode_funding(change.d, change.v))
            elif change.k == "group":
                self._apply("group", decode_group(change.d, change.v))
            elif change.k == "insurance":
                self._apply("insurance", decode_insurance(change.d, change.v))
            elif change.k in FOLLOWED:
                self._apply(change.k, decode_record(change.k, change.d, change.v))
        except Exception as exc:  # one bad message must not end the feed
            log.error("ignoring malformed change message: %r", exc)

    def _apply(self, kind: str, record: Any) -> None:
        moved = self.view.apply(kind, record)
        if kind == "symbol" and self.on_symbol is not None and self.view.symbols.get(record.symbol) is record:
            self.on_symbol(record.symbol)
        if moved is None:
            return
        if kind != "funding":
            self.on_mark(moved)
        elif self.on_funding is not None:
            self.on_funding(moved)


def _decode_rule(raw: msgspec.Raw, version: int) -> Rule:
    rule = validate_rule(_rule.decode(raw))
    return msgspec.structs.replace(rule, version=version)
