"""Evaluates the symbol rules on every mark tick (and, for rules not yet calm, on a timer),
and carries out what they decide, one write at a time, while this monitor holds the lease.

Every monitor evaluates (a standby keeps its confirmation counts and calm clocks current,
so it can take over mid-episode); only the lease holder writes, and its writes are fenced
by the lease in Redis as well. Episodes (a rule fired on a symbol and the market has not
been calm for the cooldown since) live in Redis: the next actor reads them when it takes over.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from riskgate.monitor.alerts import OPEN
from riskgate.monitor.feed import MarketView
from riskgate.monitor.marks import Move
from riskgate.monitor.rules import SYMBOL_ACTIONS, Rule, rules_for
from riskgate.monitor.volatility import Tracker, Verdict
from riskgate.monitor.writes import LeaseLost, MonitorWrites, first_transition, now_ms
from riskgate.values.money import fmt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Action:
    verdict: Verdict
    rule: Rule
    symbol: str
    move: Move
    at_ms: int


class Watcher:
    def __init__(self, view: MarketView, writes: MonitorWrites) -> None:
        self.view = view
        self.writes = writes
        self.actor = False
        self.inputs_live = False
        self.trackers: dict[tuple[str, str], Tracker] = {}
        # Pairs (rule, symbol) whose move was not below the release level at the last
        # evaluation: without a new tick a move can only shrink, so only these need the timer.
        self.hot: set[tuple[str, str]] = set()
        # The open episodes, as this monitor knows them (read from Redis on taking over).
        self.episodes: set[tuple[str, str]] = set()
        self._queue: asyncio.Queue[_Action] = asyncio.Queue()
        self._pending: set[tuple[Verdict, str, str]] = set()
        self.fired = 0

    @property
    def idle(self) -> bool:
        """Nothing decided is waiting to be written (or being written)."""
        return self._queue.empty() and not self._pending

    # ---- evaluation (synchronous: called by the feed and the timer) ---------------------

    def on_mark(self, symbol: str) -> None:
        self._evaluate(symbol, now_ms(), tick=True, only=None)

    def on_timer(self) -> None:
        now = now_ms()
        due: dict[str, set[str]] = {}
        for rule_id, symbol in self.hot | self.episodes:
            due.setdefault(symbol, set()).add(rule_id)
        for symbol, rule_ids in due.items():
            self._evaluate(symbol, now, tick=False, only=rule_ids)

    def _evaluate(self, symbol: str, now: int, tick: bool, only: set[str] | None) -> None:
        history = self.view.marks.get(symbol)
        if history is None:
            return
        rules = [r for r in rules_for(symbol, self.view.rules)
                 if r.metric == "mark_move" and (only is None or r.id in only)]
        if rules:
            history.prune(now - max(r.window_ms for r in self.view.rules.values() if r.metric == "mark_move"))
        for rule in rules:
            move = history.move(now, rule.window_ms)
            if move is None:
                continue
            pair = (rule.id, symbol)
            tracker = self.trackers.setdefault(pair, Tracker())
            verdict = tracker.evaluate(rule, move, now, tick, pair in self.episodes)
            if tracker.calm_since_ms is None:
                self.hot.add(pair)
            else:
                self.hot.discard(pair)
            if verdict is Verdict.CLEAR and not self._fresh(symbol, now):
                # Calm measured on marks that stopped coming is no calm: fail towards safety.
                continue
            if verdict is not Verdict.NONE and self.actor and self.inputs_live:
                key = (verdict, rule.id, symbol)
                if key not in self._pending:
                    self._pending.add(key)
                    self._queue.put_nowait(_Action(verdict, rule, symbol, move, now))

    def _fresh(self, symbol: str, now: int) -> bool:
        spec = self.view.symbols.get(symbol)
        latest = self.view.marks[symbol].latest
        return spec is not None and latest is not None and now - latest[0] <= spec.mark_price_max_age_ms

    # ---- role ----------------------------------------------------------------------------

    async def become_actor(self) -> None:
        """Reads the open episodes (the previous actor's) before acting on anything."""
        found = await self.writes.episodes()
        self.episodes = {tuple(field.split("\x1f", 1)) for field in found}  # type: ignore[misc]
        self.actor = True
        log.info("monitor is the actor (%d open episodes)", len(self.episodes))

    def become_standby(self) -> None:
        if self.actor:
            log.warning("monitor is a standby now (another monitor holds the lease)")
        self.actor = False
        self.episodes.clear()
        self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    # ---- acting --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            action = await self._queue.get()
            try:
                if self.actor:
                    await self._act(action)
            except LeaseLost:
                self.become_standby()
            except (RedisError, OSError) as exc:
                # Nothing was done (one script: all or nothing); the next evaluation decides again.
                log.warning("monitor action %s %s on %s not written: %s", action.verdict.value, action.rule.id,
                            action.symbol, exc)
            except Exception:
                log.exception("monitor action %s %s on %s failed", action.verdict.value, action.rule.id,
                              action.symbol)
            finally:
                self._pending.discard((action.verdict, action.rule.id, action.symbol))

    async def _act(self, action: _Action) -> None:
        rule, symbol, move = action.rule, action.symbol, action.move
        rule = self.view.rules.get(rule.id, rule)  # the rule as it is now
        pair = (rule.id, symbol)
        evidence = _evidence(rule, symbol, move)
        if action.verdict is Verdict.FIRE:
            description = _describe(rule, move)
            alert = _alert(rule, symbol, move, description, action.at_ms)
            fired = await self.writes.fire(rule, symbol, alert, evidence, description, action.at_ms)
            self.episodes.add(pair)
            if not fired.already_open:
                self.fired += 1
                log.warning("rule %s fired on %s: %s; %s (alert %s)", rule.id, symbol, description, fired.action,
                            fired.alert_id)
        else:
            window_s = _seconds(rule.window_ms)
            note = (f"calm: move within {window_s} s below {_percent(rule.calm_below)} for "
                    f"{_seconds(rule.cooldown_ms)} s")
            cleared = await self.writes.clear(rule, symbol, note, evidence, action.at_ms)
            self.episodes.discard(pair)
            if cleared is not None:
                log.warning("rule %s episode on %s ended: %s (alert %s)", rule.id, symbol, cleared.outcome,
                            cleared.alert_id)


def _percent(fraction: Decimal) -> str:
    return f"{fmt(fraction * 100)}%"


def _seconds(ms: int) -> str:
    return fmt(Decimal(ms) / 1000)


def _describe(rule: Rule, move: Move) -> str:
    """The reason a trip carries to the gate (and to the trader): rule, move and window."""
    return (f"monitor rule {rule.id}: mark moved {_percent(move.shown)} ({fmt(move.reference)} -> "
            f"{fmt(move.latest)}) within {_seconds(rule.window_ms)} s, threshold {_percent(rule.threshold)}")


def _evidence(rule: Rule, symbol: str, move: Move) -> dict[str, str]:
    return {"metric": rule.metric, "value": fmt(move.shown), "threshold": fmt(rule.threshold),
            "window_ms": str(rule.window_ms), "symbol": symbol, "reference_price": fmt(move.reference),
            "mark_price": fmt(move.latest), "mode": rule.mode,
            "wanted": SYMBOL_ACTIONS.get(rule.action, "alert") if rule.acts else "alert"}


def _alert(rule: Rule, symbol: str, move: Move, description: str, at_ms: int) -> dict[str, Any]:
    return {
        "rule_id": rule.id, "rule_version": rule.version, "severity": rule.severity, "state": OPEN,
        "metric": rule.metric, "value": fmt(move.shown), "threshold": fmt(rule.threshold),
        "window_ms": rule.window_ms, "created_ms": at_ms, "updated_ms": at_ms,
        "history": [first_transition(rule, description, at_ms)], "symbol": symbol, "account_id": "",
        "evidence": {"reference_price": fmt(move.reference), "mark_price": fmt(move.latest),
                     "mark_ms": str(move.latest_ms), "mode": rule.mode},
        "cleared_ms": 0,
    }
