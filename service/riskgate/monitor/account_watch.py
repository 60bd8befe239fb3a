"""Evaluates the account rules (margin ratio, concentration) over the column-wise book, and
carries out what they decide while this monitor holds the lease.

A mark tick re-values every holder of the symbol at once (columns.py) and screens them
against each rule's level in floats; only the accounts that cross are recomputed exactly
(exact.py) before anything is written, and an action is taken only on the exact figures.
Inputs that are missing or stale never loosen anything: an episode ends (and a close-only
is lifted) only on fresh marks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from redis.exceptions import RedisError

from riskgate.monitor.alerts import OPEN
from riskgate.monitor.columns import AccountColumns, Indices
from riskgate.monitor.exact import AccountFigures, Market, account_figures, partial_liquidation
from riskgate.monitor.feed import MarketView
from riskgate.monitor.rules import Rule, account_rules
from riskgate.monitor.writes import LeaseLost, MonitorWrites, first_transition, now_ms
from riskgate.values.money import fmt

log = logging.getLogger(__name__)

# Floats screen with this much slack either way; the exact figures decide.
SCREEN_SLACK = 1e-9
_json = msgspec.json.Encoder(decimal_format="string")

Key = tuple[int, str]  # (account index, symbol: "" for a rule about the whole account)
_URGENCY = {"liquidation_candidate": 0, "account_reduce_only": 1}


@dataclass
class _RuleState:
    # Episodes open (as this monitor knows them), consecutive evaluations at or above the
    # threshold not yet fired on, and since when an open episode has been calm.
    active: set[Key] = field(default_factory=set)
    counts: dict[Key, int] = field(default_factory=dict)
    calm_since: dict[Key, int] = field(default_factory=dict)
    # The account-wide episodes of `active` by account index: on a crash day tens of thousands
    # are open at once, and a tick must not walk them one by one.
    mask: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    # Consecutive evaluations at or above the threshold, by account index (account-wide
    # rules): kept as an array so that a tick over every holder is vector operations.
    hits: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def fit(self, size: int) -> None:
        if size > len(self.mask):
            size = max(size, 2 * len(self.mask))
            mask = np.zeros(size, dtype=bool)
            mask[:len(self.mask)] = self.mask
            hits = np.zeros(size, dtype=np.int32)
            hits[:len(self.hits)] = self.hits
            self.mask, self.hits = mask, hits

    def open(self, key: Key) -> None:
        self.active.add(key)
        if not key[1]:
            self.fit(key[0] + 1)
            self.mask[key[0]] = True
            self.hits[key[0]] = 0

    def close(self, key: Key) -> None:
        self.active.discard(key)
        if not key[1] and key[0] < len(self.mask):
            self.mask[key[0]] = False

    def clear(self) -> None:
        self.active.clear()
        self.calm_since.clear()
        self.mask[:] = False
        self.hits[:] = 0

    def open_among(self, accounts: Indices) -> npt.NDArray[np.bool_]:
        """Whether each of these accounts has its account-wide episode open."""
        inside = accounts < len(self.mask)
        found = np.zeros(len(accounts), dtype=bool)
        found[inside] = self.mask[accounts[inside]]
        return found


@dataclass(frozen=True)
class _Action:
    fire: bool
    rule: Rule
    account: int
    symbol: str
    at_ms: int


class AccountWatcher:
    def __init__(self, view: MarketView, columns: AccountColumns, writes: MonitorWrites) -> None:
        self.view = view
        self.columns = columns
        self.writes = writes
        self.actor = False
        self.inputs_live = False
        self.states: dict[str, _RuleState] = {}
        # Most urgent first: liquidation candidates, then close-only, then alerts, then the
        # ends of episodes; within each, the worst margin ratio first (a crash day queues
        # thousands, and the candidate for the account deepest in trouble must not wait).
        self._queue: asyncio.PriorityQueue[tuple[int, float, int, _Action]] = asyncio.PriorityQueue()
        self._sequence = itertools.count()
        self._pending: set[tuple[bool, str, int, str]] = set()
        self._tier_versions: dict[str, int] = {}
        # The open interest each symbol's holders were last all screened at (concentration).
        self._screened_oi: dict[str, float] = {}
        self.fired = 0

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._pending

    @property
    def open_episodes(self) -> int:
        return sum(len(state.active) for state in self.states.values())

    # ---- evaluation ----------------------------------------------------------------------

    def on_tick(self, symbol: str) -> None:
        history = self.view.marks.get(symbol)
        latest = history.latest if history is not None else None
        tiers = self.view.tiers(symbol)
        if latest is None or tiers is None:
            return
        version = self.view.symbols[symbol].version
        if self._tier_versions.get(symbol) != version:
            self._tier_versions[symbol] = version
            self.columns.set_tiers(symbol, tiers)
        accounts = self.columns.tick(symbol, float(latest[1]))
        self._evaluate(accounts, set(), now_ms(), full={symbol})

    def on_accounts(self, accounts: Indices) -> None:
        """Only the accounts that changed are screened, except for a symbol whose open
        interest moved by a percent or more since its holders were last screened: then
        every holder's share of it has moved, and all of them are."""
        symbols: set[str] = set()
        for index in accounts.tolist():
            symbols.update(self.columns.held[index])
        moved = set()
        for symbol, (long, short) in self.columns.open_interest.items():
            now_oi = float(max(long, short))
            screened = self._screened_oi.get(symbol)
            if screened is None or abs(now_oi - screened) >= 0.01 * max(screened, 1e-12):
                moved.add(symbol)
        self._evaluate(accounts, symbols - moved, now_ms(), full=moved)

    def on_timer(self) -> None:
        """Open episodes with a cooldown are calm for long enough only as time passes."""
        now = now_ms()
        for rule in self._rules():
            state = self.states.get(rule.id)
            if state is not None and state.calm_since:
                if rule.metric == "margin_ratio":
                    self._calm_accounts(rule, state, np.fromiter((k[0] for k in state.calm_since), dtype=np.int64),
                                        now)
                else:
                    self._calm(rule, state, now)

    def reconsider(self) -> None:
        """What was decided while this monitor could not act (a standby, or its inputs down):
        confirmed crossings not yet fired, and open episodes calm for long enough."""
        now = now_ms()
        for rule in self._rules():
            state = self.states.get(rule.id)
            if state is None:
                continue
            for key, count in list(state.counts.items()):
                if count >= rule.confirmation and key not in state.active and rule.enabled:
                    self._enqueue(_Action(True, rule, key[0], key[1], now))
            if rule.metric == "margin_ratio":
                self._calm_accounts(rule, state, np.flatnonzero(state.mask), now)
            else:
                self._calm(rule, state, now)

    def _rules(self) -> list[Rule]:
        platform, own = account_rules(self.view.rules)
        return [*platform, *(rule for rules in own.values() for rule in rules)]

    def _concentration_states(self) -> list[_RuleState]:
        return [self.states[r.id] for r in self._rules() if r.metric == "concentration" and r.id in self.states]

    def _targets(self, rule: Rule, accounts: Indices, replaced: dict[str, set[int]]) -> Indices:
        if rule.scope == "account":
            index = self.columns.index.get(rule.account_id)
            return accounts[accounts == index] if index is not None else accounts[:0]
        excluded = replaced.get(rule.id)
        if excluded:
            return accounts[~np.isin(accounts, np.fromiter(excluded, dtype=np.int64))]
        return accounts

    def _evaluate(self, accounts: Indices, symbols: set[str], now: int, full: set[str] | None = None) -> None:
        """Margin rules over `accounts`; concentration over `accounts` on `symbols`, and over
        every holder on the symbols in `full`."""
        platform, own = account_rules(self.view.rules)
        replaced: dict[str, set[int]] = {}
        for account_id, rules in own.items():
            index = self.columns.index.get(account_id)
            if index is not None:
                for rule in rules:
                    if rule.overrides and rule.enabled:
                        replaced.setdefault(rule.overrides, set()).add(index)
        for rule in [*platform, *(r for rules in own.values() for r in rules)]:
            state = self.states.setdefault(rule.id, _RuleState())
            if rule.metric == "margin_ratio":
                self._margin(rule, state, accounts, self._targets(rule, accounts, replaced), now)
            elif rule.metric == "concentration":
                for symbol in full or ():
                    holders, shares, notionals = self.columns.share(symbol)
                    self._concentration(rule, state, symbol, holders, shares, notionals, replaced, now)
                for symbol in symbols:
                    holders, shares, notionals = self.columns.share_of(symbol, accounts)
                    self._concentration(rule, state, symbol, holders, shares, notionals, replaced, now)
                self._calm(rule, state, now)
        for symbol in full or ():
            long, short = self.columns.open_interest.get(symbol, (Decimal(0), Decimal(0)))
            self._screened_oi[symbol] = float(max(long, short))

    def _margin(self, rule: Rule, state: _RuleState, accounts: Indices, targets: Indices, now: int) -> None:
        """All in vector operations but for the accounts whose crossing is confirmed just now."""
        state.fit(len(self.columns))
        threshold = float(rule.threshold) * (1 - SCREEN_SLACK)
        above_mask = self.columns.ratio[targets] >= threshold
        state.hits[targets[~above_mask]] = 0
        above = targets[above_mask]
        is_open = state.mask[above]
        if state.calm_since and is_open.any():
            for index in above[is_open].tolist():
                state.calm_since.pop((index, ""), None)
        fresh = above[~is_open]
        if rule.enabled and len(fresh):
            state.hits[fresh] = np.minimum(state.hits[fresh] + 1, rule.confirmation)
            if self.actor and self.inputs_live:
                for index in fresh[state.hits[fresh] >= rule.confirmation].tolist():
                    self._enqueue(_Action(True, rule, index, "", now))
        # Every account evaluated: one an override now covers still ends its episode here.
        self._calm_accounts(rule, state, accounts, now)

    def _concentration(self, rule: Rule, state: _RuleState, symbol: str, holders: Indices,
                       shares: npt.NDArray[np.float64], notionals: npt.NDArray[np.float64],
                       replaced: dict[str, set[int]], now: int) -> None:
        floor = float(rule.min_value or 0) * (1 - SCREEN_SLACK)
        keep = (shares >= float(rule.threshold) * (1 - SCREEN_SLACK)) & (notionals >= floor)
        hot = self._targets(rule, holders[keep], replaced)
        hot_keys = {(i, symbol) for i in hot.tolist()}
        self._confirm(rule, state, list(hot_keys), now)
        looked_at = set(holders.tolist())
        for key in [k for k in state.counts if k[1] == symbol and k[0] in looked_at and k not in hot_keys]:
            del state.counts[key]

    def _confirm(self, rule: Rule, state: _RuleState, keys: list[Key], now: int) -> None:
        for key in keys:
            state.calm_since.pop(key, None)
            if key in state.active or not rule.enabled:
                continue
            count = min(state.counts.get(key, 0) + 1, rule.confirmation)
            state.counts[key] = count
            if count >= rule.confirmation:
                self._enqueue(_Action(True, rule, key[0], key[1], now))

    def _calm_accounts(self, rule: Rule, state: _RuleState, accounts: Indices, now: int) -> None:
        """The account-wide episodes open among these accounts: calm ones start (or keep)
        their clock and end after the cooldown; the others stop it."""
        opened = accounts[state.open_among(accounts)]
        if not len(opened):
            return
        level = float(rule.calm_below) * (1 + SCREEN_SLACK)
        calm = opened[self.columns.ratio[opened] < level]
        for index in opened[self.columns.ratio[opened] >= level].tolist():
            state.calm_since.pop((index, ""), None)
        for index in calm.tolist():
            key = (index, "")
            since = state.calm_since.setdefault(key, now)
            if now - since >= rule.cooldown_ms:
                self._enqueue(_Action(False, rule, index, "", now))

    def _calm(self, rule: Rule, state: _RuleState, now: int) -> None:
        for key in list(state.active):
            if self._screen_below_release(rule, key):
                since = state.calm_since.setdefault(key, now)
                if now - since >= rule.cooldown_ms:
                    self._enqueue(_Action(False, rule, key[0], key[1], now))
            else:
                state.calm_since.pop(key, None)

    def _screen_below_release(self, rule: Rule, key: Key) -> bool:
        level = float(rule.calm_below) * (1 + SCREEN_SLACK)
        if rule.metric == "margin_ratio":
            return bool(self.columns.ratio[key[0]] < level)
        holders = self.columns.holders.get(key[1])
        slot = holders.slot.get(key[0]) if holders is not None else None
        if holders is None or slot is None:
            return True
        long, short = self.columns.open_interest.get(key[1], (Decimal(0), Decimal(0)))
        open_interest = float(max(long, short))
        share = abs(float(holders.quantity[slot])) / open_interest if open_interest > 0 else 0.0
        notional = abs(float(holders.quantity[slot])) * self.columns.marks.get(key[1], 0.0)
        return share < level or notional < float(rule.min_value or 0) * (1 - SCREEN_SLACK)

    def _enqueue(self, action: _Action) -> None:
        if not (self.actor and self.inputs_live):
            return
        pending = (action.fire, action.rule.id, action.account, action.symbol)
        if pending not in self._pending:
            self._pending.add(pending)
            urgency = _URGENCY.get(action.rule.action, 2) if action.fire else 3
            self._queue.put_nowait((urgency, -float(self.columns.ratio[action.account]), next(self._sequence),
                                    action))

    # ---- exact figures -------------------------------------------------------------------

    def _markets(self, figures_for: int) -> dict[str, Market]:
        markets: dict[str, Market] = {}
        for position in self.columns.records[figures_for][1]:
            market = self.view.market(position.symbol)
            if market is not None:
                markets[position.symbol] = market
        return markets

    def figures(self, index: int, now: int) -> tuple[AccountFigures, dict[str, Market]]:
        balance, positions = self.columns.records[index]
        markets = self._markets(index)
        return account_figures(self.columns.ids[index], balance, positions, markets, now), markets

    # ---- role ----------------------------------------------------------------------------

    async def become_actor(self) -> None:
        """Takes the open episodes from Redis (the previous actor's, or none if Redis lost
        them), then judges every account afresh: what crossed while no one acted fires now."""
        found = await self.writes.account_episodes()
        for state in self.states.values():
            state.clear()
        mine = {rule.id for rule in self.view.rules.values() if rule.about == "account"}
        for rule_id, account_id, symbol in found:
            if rule_id not in mine:
                continue  # another watcher's (the order-flow rules')
            index = self.columns.index.get(account_id)
            if index is None:
                # An account no longer held: it is judged calm at once, and its episode ends.
                index = self.columns.put(account_id, 0, Decimal(0), ()) or self.columns.index[account_id]
            self.states.setdefault(rule_id, _RuleState()).open((index, symbol))
        self.actor = True
        self._evaluate(np.arange(len(self.columns), dtype=np.int64), set(), now_ms(), full=set(self.columns.holders))
        self.reconsider()

    def become_standby(self) -> None:
        self.actor = False
        self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    # ---- acting --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            *_, action = await self._queue.get()
            try:
                if self.actor:
                    await self._act(action)
            except LeaseLost:
                self.become_standby()
            except (RedisError, OSError) as exc:
                log.warning("monitor account action %s on %s not written: %s", action.rule.id,
                            self.columns.ids[action.account], exc)
            except Exception:
                log.exception("monitor account action %s on %s failed", action.rule.id,
                              self.columns.ids[action.account])
            finally:
                self._pending.discard((action.fire, action.rule.id, action.account, action.symbol))

    async def _act(self, action: _Action) -> None:
        rule = self.view.rules.get(action.rule.id, action.rule)
        state = self.states.setdefault(rule.id, _RuleState())
        key = (action.account, action.symbol)
        account_id = self.columns.ids[action.account]
        now = now_ms()
        measured = self._measure(rule, action.account, action.symbol, now)
        if measured is None:
            return  # a held symbol has no mark: nothing is decided on figures that cannot be made
        value, above, below_release, fresh, evidence, figures, markets = measured
        if action.fire:
            if not above or key in state.active:
                # The exact figures say no (the float screen is a hair generous): count again.
                state.counts.pop(key, None)
                if not action.symbol and action.account < len(state.hits):
                    state.hits[action.account] = 0
                return
            description = _describe(rule, account_id, action.symbol, value)
            candidate = b""
            if rule.action == "liquidation_candidate" and figures is not None:
                candidate = _candidate(rule, figures, markets, now)
            alert = _alert(rule, account_id, action.symbol, value, evidence, description, now)
            fired = await self.writes.account_fire(rule, account_id, action.symbol, alert, evidence, description,
                                                   candidate, now)
            state.open(key)
            state.counts.pop(key, None)
            if not fired.already_open:
                self.fired += 1
                log.warning("rule %s fired on %s: %s; %s (alert %s)", rule.id, account_id, description, fired.action,
                            fired.alert_id)
        else:
            if key not in state.active or not below_release or not fresh:
                return
            note = f"calm: {rule.metric} {value} below {fmt(rule.calm_below)}"
            cleared = await self.writes.account_clear(rule, account_id, action.symbol, note, evidence, now)
            state.close(key)
            state.calm_since.pop(key, None)
            if cleared is not None:
                log.warning("rule %s episode on %s ended: %s (alert %s)", rule.id, account_id, cleared.outcome,
                            cleared.alert_id)

    def _measure(self, rule: Rule, index: int, symbol: str, now: int
                 ) -> tuple[str, bool, bool, bool, dict[str, str], AccountFigures | None, dict[str, Market]] | None:
        """The metric exactly: (value shown, at or above the threshold, below the release
        level, inputs fresh, evidence, the account's figures, the markets used)."""
        figures, markets = self.figures(index, now)
        if figures.missing_mark:
            return None
        fresh = not figures.stale_mark
        if rule.metric == "margin_ratio":
            evidence = {"metric": rule.metric, "value": figures.ratio_shown, "threshold": fmt(rule.threshold),
                        "release": fmt(rule.calm_below), "maintenance_margin": fmt(figures.maintenance),
                        "margin_balance": fmt(figures.margin_balance), "balance": fmt(figures.balance),
                        "mode": rule.mode}
            if figures.stale_mark:
                evidence["stale_mark"] = figures.stale_mark
            return (figures.ratio_shown, figures.ratio_at_least(rule.threshold),
                    not figures.ratio_at_least(rule.calm_below), fresh, evidence, figures, markets)
        long, short = self.columns.open_interest.get(symbol, (Decimal(0), Decimal(0)))
        open_interest = max(long, short)
        position = next((p for p in figures.positions if p.symbol == symbol), None)
        size = abs(position.quantity) if position is not None else Decimal(0)
        notional = position.notional if position is not None else Decimal(0)
        floor = rule.min_value or Decimal(0)
        share = size / open_interest if open_interest > 0 else Decimal(0)
        shown = fmt(share.quantize(Decimal("0.000001")))
        evidence = {"metric": rule.metric, "value": shown, "threshold": fmt(rule.threshold),
                    "release": fmt(rule.calm_below), "position": fmt(size), "open_interest": fmt(open_interest),
                    "notional": fmt(notional), "min_notional": fmt(floor), "symbol": symbol, "mode": rule.mode}
        above = open_interest > 0 and size >= rule.threshold * open_interest and notional >= floor
        below = open_interest <= 0 or size < rule.calm_below * open_interest or notional < floor
        return shown, above, below, fresh, evidence, figures, markets


def _describe(rule: Rule, account_id: str, symbol: str, value: str) -> str:
    if rule.metric == "margin_ratio":
        return (f"monitor rule {rule.id}: margin ratio {value} of account {account_id} at or above "
                f"{fmt(rule.threshold)}")
    return (f"monitor rule {rule.id}: account {account_id} holds {value} of the {symbol} open interest, "
            f"threshold {fmt(rule.threshold)}")


def _alert(rule: Rule, account_id: str, symbol: str, value: str, evidence: dict[str, str], description: str,
           at_ms: int) -> dict[str, Any]:
    return {
        "rule_id": rule.id, "rule_version": rule.version, "severity": rule.severity, "state": OPEN,
        "metric": rule.metric, "value": value, "threshold": fmt(rule.threshold), "window_ms": rule.window_ms,
        "created_ms": at_ms, "updated_ms": at_ms, "history": [first_transition(rule, description, at_ms)],
        "symbol": symbol, "account_id": account_id, "evidence": evidence, "cleared_ms": 0,
    }


def _candidate(rule: Rule, figures: AccountFigures, markets: dict[str, Market], at_ms: int) -> bytes:
    """What the liquidation engine gets: the account's exact figures, its positions with
    liquidation and bankruptcy prices, and the reduce-only orders of a tiered partial
    liquidation. A proposal: the engine re-checks against the gate's state before acting."""
    return _json.encode({
        "account_id": figures.account_id, "rule": rule.id, "at_ms": at_ms, "margin_ratio": figures.ratio_shown,
        "margin_balance": fmt(figures.margin_balance), "maintenance_margin": fmt(figures.maintenance),
        "balance": fmt(figures.balance), "stale_mark": figures.stale_mark,
        "positions": [{"symbol": p.symbol, "quantity": fmt(p.quantity), "entry_price": fmt(p.entry_price),
                       "mark": fmt(p.mark), "notional": fmt(p.notional), "maintenance_margin": fmt(p.maintenance),
                       "tier": p.tier, "liquidation_price": fmt(p.liquidation_price),
                       "bankruptcy_price": fmt(p.bankruptcy_price)}
                      for p in figures.positions],
        "orders": [{"symbol": o.symbol, "side": o.side, "quantity": fmt(o.quantity), "limit_price": fmt(o.limit_price),
                    "reduce_only": True, "time_in_force": "IOC", "target_tier": o.target_tier,
                    "remaining_quantity": fmt(o.remaining_quantity), "maintenance_after": fmt(o.maintenance_after)}
                   for o in partial_liquidation(figures, markets)],
    })
