"""The monitor's own inputs, watched like the market: a symbol that accounts hold whose mark
is older than its bound (the gate then refuses risk on it, and the monitor's margin figures
for its holders are not to be trusted), and the account-event stream falling behind. Each
is a rule (`mark_age`, `account_events_lag`) that raises an alert, so a person sees that the
monitor is half blind; nothing is loosened meanwhile (see account_watch.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from riskgate.monitor.alerts import OPEN
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.feed import MarketView
from riskgate.monitor.rules import Rule, rules_for
from riskgate.monitor.writes import LeaseLost, MonitorWrites, first_transition, now_ms
from riskgate.values.money import fmt

log = logging.getLogger(__name__)

PLATFORM = ""


class InputWatcher:
    def __init__(self, view: MarketView, columns: AccountColumns, writes: MonitorWrites,
                 lag_ms: Callable[[], int], every_s: float) -> None:
        self.view = view
        self.columns = columns
        self.writes = writes
        self.lag_ms = lag_ms
        self.every_s = every_s
        self.actor = False
        self.inputs_live = False
        self.episodes: set[tuple[str, str]] = set()

    async def become_actor(self) -> None:
        found = await self.writes.episodes()
        self.episodes = {tuple(field.split("\x1f", 1)) for field in found}  # type: ignore[misc]
        self.actor = True

    def become_standby(self) -> None:
        self.actor = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            if not (self.actor and self.inputs_live):
                continue
            try:
                await self.evaluate(now_ms())
            except LeaseLost:
                self.actor = False
            except (RedisError, OSError) as exc:
                log.warning("monitor input check not written: %s", exc)
            except Exception:
                log.exception("monitor input check failed")

    def measures(self, now: int) -> list[tuple[Rule, str, Decimal, dict[str, str]]]:
        """(rule, symbol or "" for the platform, value, evidence) for every input rule."""
        found: list[tuple[Rule, str, Decimal, dict[str, str]]] = []
        held = {symbol for symbol, holders in self.columns.holders.items() if holders.n}
        # Symbols with an open episode too: one no longer held (or fresh again) ends it.
        for symbol in sorted(held | {symbol for _, symbol in self.episodes if symbol}):
            holders = self.columns.holders.get(symbol)
            count = holders.n if holders is not None else 0
            spec = self.view.symbols.get(symbol)
            history = self.view.marks.get(symbol)
            latest = history.latest if history is not None else None
            bound = max(spec.mark_price_max_age_ms, 1) if spec is not None else 1
            age = now - latest[0] if latest is not None else None
            if not count:
                value = Decimal(0)  # nothing held on it: nothing judged on a stale mark
            elif spec is None or age is None:
                value = Decimal(10**9)  # held, and no spec or no mark at all: blind
            else:
                value = Decimal(age) / bound
            for rule in rules_for(symbol, self.view.rules):
                if rule.metric == "mark_age":
                    found.append((rule, symbol, value, {
                        "metric": rule.metric, "value": fmt(value.quantize(Decimal("0.001"))),
                        "threshold": fmt(rule.threshold), "mark_age_ms": str(age) if age is not None else "no mark",
                        "bound_ms": str(bound) if spec is not None else "no symbol spec", "holders": str(count),
                        "symbol": symbol}))
        lag = Decimal(self.lag_ms())
        for rule in self.view.rules.values():
            if rule.metric == "account_events_lag" and rule.scope == "platform":
                found.append((rule, PLATFORM, lag, {"metric": rule.metric, "value": fmt(lag),
                                                    "threshold": fmt(rule.threshold)}))
        return found

    async def evaluate(self, now: int) -> None:
        for rule, symbol, value, evidence in self.measures(now):
            pair = (rule.id, symbol)
            if value >= rule.threshold and rule.enabled and pair not in self.episodes:
                description = _describe(rule, symbol, evidence)
                fired = await self.writes.fire(rule, symbol, _alert(rule, symbol, evidence, description, now),
                                               evidence, description, now)
                self.episodes.add(pair)
                if not fired.already_open:
                    log.warning("rule %s fired: %s (alert %s)", rule.id, description, fired.alert_id)
            elif value < rule.calm_below and pair in self.episodes:
                await self.writes.clear(rule, symbol, f"{rule.metric} back to {evidence['value']}", evidence, now)
                self.episodes.discard(pair)


def _describe(rule: Rule, symbol: str, evidence: dict[str, str]) -> str:
    if rule.metric == "mark_age":
        return (f"monitor rule {rule.id}: mark of {symbol} is {evidence['mark_age_ms']} ms old, bound "
                f"{evidence['bound_ms']} ms, held by {evidence['holders']} accounts")
    return f"monitor rule {rule.id}: account events {evidence['value']} ms behind, threshold {evidence['threshold']} ms"


def _alert(rule: Rule, symbol: str, evidence: dict[str, str], description: str, at_ms: int) -> dict[str, Any]:
    return {
        "rule_id": rule.id, "rule_version": rule.version, "severity": rule.severity, "state": OPEN,
        "metric": rule.metric, "value": evidence["value"], "threshold": fmt(rule.threshold),
        "window_ms": rule.window_ms, "created_ms": at_ms, "updated_ms": at_ms,
        "history": [first_transition(rule, description, at_ms)], "symbol": symbol, "account_id": "",
        "evidence": evidence, "cleared_ms": 0,
    }
