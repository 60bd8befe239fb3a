"""Evaluates the order-flow rules (abuse signals, wash trades, unusual PnL) per account on
each batch of the gate's order flow and on a timer (windows slide), and carries out what
they decide while this monitor holds the lease: an alert, or (where the rule says so) the
account's close-only, as compare-and-set like the margin rules (writes.account_fire)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from riskgate.book.flow import FlowBatch
from riskgate.monitor.alerts import OPEN
from riskgate.monitor.feed import MarketView
from riskgate.monitor.flow import INFINITE, AccountFlow, FlowFillSeen, ratio_text
from riskgate.monitor.rules import Rule, rules_for_account
from riskgate.monitor.writes import LeaseLost, MonitorWrites, first_transition, now_ms
from riskgate.values.money import fmt

log = logging.getLogger(__name__)

Measured = tuple[str, bool, bool, dict[str, str]]
PRUNE_EVERY_MS = 5000


def flow_rules(rules: dict[str, Rule]) -> tuple[list[Rule], dict[str, list[Rule]]]:
    platform = sorted((r for r in rules.values() if r.scope == "platform" and r.about == "flow"), key=lambda r: r.id)
    own: dict[str, list[Rule]] = {}
    for rule in rules.values():
        if rule.scope == "account" and rule.about == "flow":
            own.setdefault(rule.account_id, []).append(rule)
    return platform, own


class FlowWatcher:
    def __init__(self, view: MarketView, writes: MonitorWrites) -> None:
        self.view = view
        self.writes = writes
        self.actor = False
        self.inputs_live = False
        self.flows: dict[str, AccountFlow] = {}
        self.active: set[tuple[str, str]] = set()
        self.counts: dict[tuple[str, str], int] = {}
        self.calm_since: dict[tuple[str, str], int] = {}
        self._queue: asyncio.Queue[tuple[bool, Rule, str, int]] = asyncio.Queue()
        self._pending: set[tuple[bool, str, str]] = set()
        self.fired = 0
        self._pruned_ms = 0

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._pending

    def window_ms(self) -> int:
        return max((r.window_ms for r in self.view.rules.values() if r.about == "flow"), default=0)

    def _pnl_windows(self) -> tuple[int, ...]:
        return tuple(sorted({r.window_ms for r in self.view.rules.values() if r.metric == "realized_pnl_zscore"}))

    def is_wash(self, account_id: str, counterparty: str) -> bool:
        if not counterparty:
            return False
        if counterparty == account_id:
            return True
        mine = self.view.groups.get(account_id)
        theirs = self.view.groups.get(counterparty)
        return mine is not None and theirs is not None and bool(mine.group) and mine.group == theirs.group

    # ---- evaluation ----------------------------------------------------------------------

    def on_batches(self, batches: list[FlowBatch]) -> None:
        touched: set[str] = set()
        pnl_windows = self._pnl_windows()
        for batch in batches:
            for account_id, counts in batch.counts.items():
                self.flows.setdefault(account_id, AccountFlow()).add_counts(batch.at_ms, counts)
                touched.add(account_id)
            for fill in batch.fills:
                seen = FlowFillSeen(at_ms=fill.at_ms, symbol=fill.symbol, realised_pnl=fill.realised_pnl,
                                    counterparty=fill.counterparty_account_id, execution_id=fill.execution_id,
                                    wash=self.is_wash(fill.account_id, fill.counterparty_account_id))
                self.flows.setdefault(fill.account_id, AccountFlow()).add_fill(seen, pnl_windows)
                touched.add(fill.account_id)
        self.evaluate(touched, now_ms())

    def on_timer(self) -> None:
        now = now_ms()
        if now - self._pruned_ms >= PRUNE_EVERY_MS:
            # A pass over every account: seldom, since windows are minutes long.
            self._pruned_ms = now
            keep_after = now - self.window_ms()
            for account_id in list(self.flows):
                flow = self.flows[account_id]
                flow.prune(keep_after)
                if flow.empty:
                    del self.flows[account_id]
        self.evaluate({account for _, account in self.active} | {account for _, account in self.counts}, now)

    def reconsider(self) -> None:
        self.evaluate({account for _, account in self.active} | {account for _, account in self.counts}, now_ms())

    def evaluate(self, accounts: set[str], now: int) -> None:
        platform, own = flow_rules(self.view.rules)
        if not platform and not own:
            return
        for account_id in accounts:
            for rule in rules_for_account(account_id, platform, own):
                measured = self.measure(rule, account_id, now)
                key = (rule.id, account_id)
                _, above, below, _ = measured
                if above and key not in self.active:
                    self.calm_since.pop(key, None)
                    if not rule.enabled:
                        continue
                    count = min(self.counts.get(key, 0) + 1, rule.confirmation)
                    self.counts[key] = count
                    if count >= rule.confirmation:
                        self._enqueue(True, rule, account_id, now)
                    continue
                self.counts.pop(key, None)
                if key in self.active:
                    if below:
                        since = self.calm_since.setdefault(key, now)
                        if now - since >= rule.cooldown_ms:
                            self._enqueue(False, rule, account_id, now)
                    else:
                        self.calm_since.pop(key, None)

    def measure(self, rule: Rule, account_id: str, now: int) -> Measured:
        """(value shown, at or above the threshold, below the release level, evidence)."""
        flow = self.flows.get(account_id) or AccountFlow()
        window = rule.window_ms
        minimum = rule.min_value or Decimal(0)
        evidence = {"metric": rule.metric, "threshold": fmt(rule.threshold), "release": fmt(rule.calm_below),
                    "window_ms": str(window), "mode": rule.mode}
        if rule.metric == "realized_pnl_zscore":
            z, samples, total = flow.pnl_zscore(window, now)
            enough = samples >= minimum
            value = z if z is not None and enough else Decimal(0)
            evidence.update(samples=str(samples), realized_pnl=fmt(total), min_samples=fmt(minimum))
            return _result(value, rule, evidence)
        if rule.metric == "realized_pnl":
            total = sum((f.realised_pnl for f in flow.fills_within(now, window)), Decimal(0))
            evidence["realized_pnl"] = fmt(total)
            return _result(abs(total), rule, evidence)
        if rule.metric == "wash_trades":
            washes = [f for f in flow.fills_within(now, window) if f.wash]
            evidence["fills"] = ", ".join(f"{f.execution_id} {f.symbol} vs {f.counterparty}" for f in washes[-10:])
            return _result(Decimal(len(washes)), rule, evidence)
        totals = flow.totals(now, window)
        evidence.update(orders=str(totals.orders), fills=str(totals.fills), cancels=str(totals.cancels),
                        rate_limited=str(totals.rate_limited), min_orders=fmt(minimum))
        if rule.metric == "rate_limit_rejections":
            return _result(Decimal(totals.rate_limited), rule, evidence)
        if totals.orders < minimum or not totals.orders:
            return _result(Decimal(0), rule, evidence)
        if rule.metric == "cancel_share":
            return _result(Decimal(totals.cancels) / totals.orders, rule, evidence)
        ratio = INFINITE if not totals.fills else Decimal(totals.orders) / totals.fills - 1
        return _result(ratio, rule, evidence)

    def _enqueue(self, fire: bool, rule: Rule, account_id: str, now: int) -> None:
        if not (self.actor and self.inputs_live):
            return
        pending = (fire, rule.id, account_id)
        if pending not in self._pending:
            self._pending.add(pending)
            self._queue.put_nowait((fire, rule, account_id, now))

    # ---- role ----------------------------------------------------------------------------

    async def become_actor(self) -> None:
        found = await self.writes.account_episodes()
        flow_ids = {r.id for r in self.view.rules.values() if r.about == "flow"}
        self.active = {(rule_id, account_id) for rule_id, account_id, _ in found if rule_id in flow_ids}
        self.calm_since.clear()
        self.actor = True
        self.reconsider()

    def become_standby(self) -> None:
        self.actor = False
        self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    # ---- acting --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            fire, rule, account_id, _ = await self._queue.get()
            try:
                if self.actor:
                    await self._act(fire, self.view.rules.get(rule.id, rule), account_id)
            except LeaseLost:
                self.become_standby()
            except (RedisError, OSError) as exc:
                log.warning("monitor flow action %s on %s not written: %s", rule.id, account_id, exc)
            except Exception:
                log.exception("monitor flow action %s on %s failed", rule.id, account_id)
            finally:
                self._pending.discard((fire, rule.id, account_id))

    async def _act(self, fire: bool, rule: Rule, account_id: str) -> None:
        now = now_ms()
        key = (rule.id, account_id)
        value, above, below, evidence = self.measure(rule, account_id, now)
        evidence["value"] = value
        if fire:
            if not above or key in self.active:
                return
            description = (f"monitor rule {rule.id}: {rule.metric} of account {account_id} is {value} within "
                           f"{rule.window_ms // 1000} s, threshold {fmt(rule.threshold)}")
            fired = await self.writes.account_fire(rule, account_id, "", _alert(rule, account_id, value, evidence,
                                                                                description, now),
                                                   evidence, description, b"", now)
            self.active.add(key)
            self.counts.pop(key, None)
            if not fired.already_open:
                self.fired += 1
                log.warning("rule %s fired on %s: %s; %s (alert %s)", rule.id, account_id, description, fired.action,
                            fired.alert_id)
        else:
            if key not in self.active or not below:
                return
            await self.writes.account_clear(rule, account_id, "", f"calm: {rule.metric} {value} below "
                                            f"{fmt(rule.calm_below)}", evidence, now)
            self.active.discard(key)
            self.calm_since.pop(key, None)


def _result(value: Decimal, rule: Rule, evidence: dict[str, str]) -> Measured:
    shown = ratio_text(value)
    evidence["value"] = shown
    return shown, value >= rule.threshold, value < rule.calm_below, evidence


def _alert(rule: Rule, account_id: str, value: str, evidence: dict[str, str], description: str,
           at_ms: int) -> dict[str, Any]:
    return {
        "rule_id": rule.id, "rule_version": rule.version, "severity": rule.severity, "state": OPEN,
        "metric": rule.metric, "value": value, "threshold": fmt(rule.threshold), "window_ms": rule.window_ms,
        "created_ms": at_ms, "updated_ms": at_ms, "history": [first_transition(rule, description, at_ms)],
        "symbol": "", "account_id": account_id, "evidence": evidence, "cleared_ms": 0,
    }
