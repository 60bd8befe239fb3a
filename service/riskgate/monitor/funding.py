"""Funding: the rate per symbol (set with `SetFundingRate`, stored versioned in Redis and
followed by every monitor) and the two rules that watch it.

- `funding_rate` (per symbol): |rate| at or beyond the rule's cap, evaluated on each change
  of the rate (and of the rule).
- `net_funding_flow` (the platform): |sum over every position of quantity x mark x rate|,
  over the symbols with a rate, at or above an amount in quote currency per interval;
  evaluated on changes of a rate, of a mark of a symbol with a rate, and of the accounts.
  Positive: the accounts pay that much net (net long into positive rates), so whoever is
  on the other side outside the book (the house, the insurance fund) receives it; negative:
  they receive it.

The flow is exact: per symbol, the net quantity is the long total minus the short total the
column-wise book keeps exactly from the account records (`AccountColumns.open_interest`),
times the mark and the rate, in Decimal; a mark tick only re-values its own symbol.

Episodes work as the symbol rules' do (watch.py): per (rule, symbol) for `funding_rate`,
per (rule, "") for `net_funding_flow`; every monitor evaluates (a standby keeps its
confirmation counts and calm clocks current), only the lease holder writes, through the
same fenced scripts (alert, audit and episode in one call), with the episodes in their own
hash. Funding rules only alert. A flow whose marks are missing or stale never ends an episode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError

from riskgate.api.echo import echo
from riskgate.monitor.alerts import OPEN
from riskgate.monitor.columns import AccountColumns, Indices
from riskgate.monitor.rules import Rule, RuleError, rules_for
from riskgate.monitor.writes import LeaseLost, MonitorWrites, first_transition, now_ms
from riskgate.v1 import monitor_pb2 as pb
from riskgate.values.money import DecimalFormatError, fmt, parse_signed

if TYPE_CHECKING:
    from riskgate.monitor.feed import MarketView

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 28_800_000  # 8 h: Binance, Bybit, OKX
MIN_INTERVAL_MS = 60_000
MAX_INTERVAL_MS = 86_400_000
RATE_METRIC = "funding_rate"
FLOW_METRIC = "net_funding_flow"
PLATFORM = ""
# The largest flows an alert names one by one (its evidence, and its audit entry, stay bounded).
FLOWS_SHOWN = 20
_json = msgspec.json.Encoder(decimal_format="string")


class FundingSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A symbol's funding rate per interval, signed ("0.0001" = 0.01%: longs pay shorts)."""

    symbol: str
    rate: Decimal
    interval_ms: int = DEFAULT_INTERVAL_MS
    version: int = 0
    updated_by: str = ""
    updated_ms: int = 0


_decoder = msgspec.json.Decoder(FundingSpec)


def validate_funding(spec: FundingSpec) -> FundingSpec:
    """Returns spec if usable; raises RuleError naming the first field that is not."""
    if not spec.symbol:
        raise RuleError("symbol", "required")
    if not spec.rate.is_finite() or not abs(spec.rate) < 1:
        raise RuleError("rate", "a signed decimal per funding interval with |rate| < 1: '0.0001' is 0.01%")
    if not MIN_INTERVAL_MS <= spec.interval_ms <= MAX_INTERVAL_MS:
        raise RuleError("interval_ms",
                        f"between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS} (0 = {DEFAULT_INTERVAL_MS}: 8 h)")
    return spec


def decode_funding(raw: msgspec.Raw | bytes, version: int) -> FundingSpec:
    """A stored or published rate (`{"v": version, "d": rate}`), validated."""
    return msgspec.structs.replace(validate_funding(_decoder.decode(raw)), version=version)


def encode_funding(spec: FundingSpec) -> bytes:
    return _json.encode(spec)


def funding_from_message(message: pb.FundingRate, actor: str, symbols: Container[str]) -> FundingSpec:
    """Raises RuleError naming the field for what cannot be used."""
    if not message.symbol:
        raise RuleError("symbol", "required")
    if message.symbol not in symbols:
        raise RuleError("symbol", f"unknown symbol {echo(message.symbol)}")
    try:
        rate = parse_signed(message.rate)
    except DecimalFormatError as exc:
        raise RuleError("rate", f"expected a plain signed decimal such as '0.0001' or '-0.0003': {exc}") from None
    return validate_funding(FundingSpec(symbol=message.symbol, rate=rate,
                                        interval_ms=message.interval_ms or DEFAULT_INTERVAL_MS,
                                        updated_by=actor, updated_ms=now_ms()))


def funding_message(spec: FundingSpec) -> pb.FundingRate:
    return pb.FundingRate(symbol=spec.symbol, rate=fmt(spec.rate), interval_ms=spec.interval_ms,
                          version=spec.version, updated_by=spec.updated_by, updated_ms=spec.updated_ms)


# ---- the flow, exactly -------------------------------------------------------------------

@dataclass(frozen=True)
class SymbolFlow:
    symbol: str
    net_quantity: Decimal
    mark: Decimal
    rate: Decimal

    @property
    def flow(self) -> Decimal:
        return self.net_quantity * self.mark * self.rate


@dataclass(frozen=True)
class NetFlow:
    """The platform's net funding flow per interval: its total, the symbols that make it
    (largest first), and the symbols with positions and a rate left out for want of a mark
    (missing) or counted at a mark older than their bound (stale)."""

    total: Decimal
    flows: list[SymbolFlow]
    missing_mark: list[str]
    stale_mark: list[str]

    @property
    def fresh(self) -> bool:
        return not self.missing_mark and not self.stale_mark


def net_quantity(columns: AccountColumns, symbol: str) -> Decimal:
    """Long total minus short total, exact (from the account records, as the book holds them)."""
    long, short = columns.open_interest.get(symbol, (Decimal(0), Decimal(0)))
    return long - short


def symbol_flow(view: MarketView, columns: AccountColumns, symbol: str) -> SymbolFlow | None:
    """The symbol's flow; None when it has no rate, no position, or no mark."""
    spec = view.funding.get(symbol)
    if spec is None:
        return None
    net = net_quantity(columns, symbol)
    history = view.marks.get(symbol)
    latest = history.latest if history is not None else None
    if not net or latest is None:
        return None
    return SymbolFlow(symbol, net, latest[1], spec.rate)


def net_funding_flow(view: MarketView, columns: AccountColumns, now: int) -> NetFlow:
    flows: list[SymbolFlow] = []
    missing: list[str] = []
    stale: list[str] = []
    for symbol in sorted(view.funding):
        found = symbol_flow(view, columns, symbol)
        if found is None:
            if net_quantity(columns, symbol):
                missing.append(symbol)
            continue
        flows.append(found)
        spec = view.symbols.get(symbol)
        latest = view.marks[symbol].latest
        if spec is None or latest is None or now - latest[0] > spec.mark_price_max_age_ms:
            stale.append(symbol)
    total = sum((f.flow for f in flows), Decimal(0))
    flows.sort(key=lambda f: (-abs(f.flow), f.symbol))
    return NetFlow(total, flows, missing, stale)


# ---- the rules ---------------------------------------------------------------------------

Key = tuple[str, str]  # (rule id, symbol: "" for the platform)


@dataclass(frozen=True)
class _Action:
    fire: bool
    rule: Rule
    symbol: str
    at_ms: int


@dataclass(frozen=True)
class _Measure:
    value: str
    above: bool
    below_release: bool
    fresh: bool
    evidence: dict[str, str]
    description: str


class FundingWatcher:
    def __init__(self, view: MarketView, columns: AccountColumns, writes: MonitorWrites) -> None:
        self.view = view
        self.columns = columns
        self.writes = writes
        self.actor = False
        self.inputs_live = False
        # Open episodes as this monitor knows them (read from Redis on taking over).
        self.active: set[Key] = set()
        # Consecutive evaluations at or above the threshold not yet fired on; since when
        # each key has been below its release level; the rule version each key was last
        # evaluated under (a changed rule is evaluated afresh by the timer).
        self.counts: dict[Key, int] = {}
        self.calm_since: dict[Key, int] = {}
        self._seen: dict[Key, int] = {}
        # Each symbol's flow, and their sum, kept exactly as marks tick.
        self._flows: dict[str, Decimal] = {}
        self.total = Decimal(0)
        self._queue: asyncio.Queue[_Action] = asyncio.Queue()
        self._pending: set[tuple[bool, str, str]] = set()
        self.fired = 0

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._pending

    @property
    def open_episodes(self) -> int:
        return len(self.active)

    # ---- evaluation (synchronous: called by the feeds, the API and the timer) ----------

    def on_funding(self, symbol: str) -> None:
        """A rate changed (set here, by another monitor, or loaded)."""
        now = now_ms()
        self._revalue(symbol)
        for rule in self._rate_rules(symbol):
            self._evaluate_rate(rule, symbol, now, tick=True)
        self._evaluate_flow(now, tick=True)

    def on_tick(self, symbol: str) -> None:
        """A mark moved: only a symbol with a rate changes the flow."""
        if symbol in self.view.funding:
            self._revalue(symbol)
            self._evaluate_flow(now_ms(), tick=True)

    def on_accounts(self, accounts: Indices | None = None) -> None:
        """Positions changed: the net quantities are re-read for every symbol with a rate."""
        self._revalue_all()
        self._evaluate_flow(now_ms(), tick=True)

    def on_timer(self) -> None:
        """Rules changed since their last evaluation are evaluated afresh; open episodes
        with a cooldown end only as time passes."""
        now = now_ms()
        self._revalue_all()
        for symbol in list(self.view.funding):
            for rule in self._rate_rules(symbol):
                if self._seen.get((rule.id, symbol)) != rule.version:
                    self._evaluate_rate(rule, symbol, now, tick=True)
        for rule in self._flow_rules():
            if self._seen.get((rule.id, PLATFORM)) != rule.version:
                self._evaluate_flow(now, tick=True, only=rule)
        self._calm_all(now)

    def reconsider(self) -> None:
        """What was decided while this monitor could not act: confirmed crossings not yet
        fired, and open episodes calm for long enough."""
        now = now_ms()
        for key, count in list(self.counts.items()):
            rule = self.view.rules.get(key[0])
            if rule is not None and rule.enabled and count >= rule.confirmation and key not in self.active:
                self._enqueue(_Action(True, rule, key[1], now))
        self._calm_all(now)

    def _rate_rules(self, symbol: str) -> list[Rule]:
        return [r for r in rules_for(symbol, self.view.rules) if r.metric == RATE_METRIC]

    def _flow_rules(self) -> list[Rule]:
        return sorted((r for r in self.view.rules.values() if r.metric == FLOW_METRIC and r.scope == "platform"),
                      key=lambda r: r.id)

    def _revalue(self, symbol: str) -> None:
        found = symbol_flow(self.view, self.columns, symbol)
        flow = found.flow if found is not None else Decimal(0)
        self.total += flow - self._flows.get(symbol, Decimal(0))
        if flow:
            self._flows[symbol] = flow
        else:
            self._flows.pop(symbol, None)

    def _revalue_all(self) -> None:
        # Re-summed from scratch: nothing carried over from the increments.
        self._flows = {}
        for symbol in self.view.funding:
            found = symbol_flow(self.view, self.columns, symbol)
            if found is not None and found.flow:
                self._flows[symbol] = found.flow
        self.total = sum(self._flows.values(), Decimal(0))

    def _evaluate_rate(self, rule: Rule, symbol: str, now: int, tick: bool) -> None:
        spec = self.view.funding.get(symbol)
        size = abs(spec.rate) if spec is not None else Decimal(0)
        self._decide(rule, symbol, size >= rule.threshold, size < rule.calm_below, now, tick)

    def _evaluate_flow(self, now: int, tick: bool, only: Rule | None = None) -> None:
        size = abs(self.total)
        for rule in [only] if only is not None else self._flow_rules():
            self._decide(rule, PLATFORM, size >= rule.threshold, size < rule.calm_below, now, tick)

    def _decide(self, rule: Rule, symbol: str, above: bool, below_release: bool, now: int, tick: bool) -> None:
        key = (rule.id, symbol)
        if tick:
            self._seen[key] = rule.version
            if not above:
                self.counts.pop(key, None)
            elif key not in self.active and rule.enabled:
                count = min(self.counts.get(key, 0) + 1, rule.confirmation)
                self.counts[key] = count
                if count >= rule.confirmation:
                    self._enqueue(_Action(True, rule, symbol, now))
        if below_release:
            self.calm_since.setdefault(key, now)
        else:
            self.calm_since.pop(key, None)
        if key in self.active:
            self._calm(rule, key, now)

    def _calm(self, rule: Rule, key: Key, now: int) -> None:
        since = self.calm_since.get(key)
        if since is not None and now - since >= rule.cooldown_ms:
            self._enqueue(_Action(False, rule, key[1], now))

    def _calm_all(self, now: int) -> None:
        size = abs(self.total)
        for key in list(self.active):
            rule = self.view.rules.get(key[0])
            if rule is None:
                continue
            # An open episode is judged by its own rule, even where another now applies.
            if rule.metric == RATE_METRIC:
                spec = self.view.funding.get(key[1])
                below = abs(spec.rate) < rule.calm_below if spec is not None else True
            else:
                below = size < rule.calm_below
            if below:
                self.calm_since.setdefault(key, now)
                self._calm(rule, key, now)
            else:
                self.calm_since.pop(key, None)

    def _enqueue(self, action: _Action) -> None:
        if not (self.actor and self.inputs_live):
            return
        pending = (action.fire, action.rule.id, action.symbol)
        if pending not in self._pending:
            self._pending.add(pending)
            self._queue.put_nowait(action)

    # ---- role ----------------------------------------------------------------------------

    async def become_actor(self) -> None:
        """Reads the open funding episodes (the previous actor's) before acting on anything."""
        fields = await self.writes.client.hkeys(self.writes.keys.funding_episodes)
        found = {_text(field) for field in fields}
        self.active = {tuple(field.split("\x1f", 1)) for field in found}  # type: ignore[misc]
        self.actor = True
        log.info("monitor acts on funding rules (%d open episodes)", len(self.active))
        self.reconsider()

    def become_standby(self) -> None:
        self.actor = False
        self.active.clear()
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
                log.warning("monitor funding action %s on %r not written: %s", action.rule.id, action.symbol, exc)
            except Exception:
                log.exception("monitor funding action %s on %r failed", action.rule.id, action.symbol)
            finally:
                self._pending.discard((action.fire, action.rule.id, action.symbol))

    async def _act(self, action: _Action) -> None:
        rule = self.view.rules.get(action.rule.id, action.rule)  # the rule as it is now
        key = (rule.id, action.symbol)
        now = now_ms()
        measured = self.measure(rule, action.symbol, now)
        episodes = self.writes.keys.funding_episodes
        if action.fire:
            if not measured.above or key in self.active or not rule.enabled:
                self.counts.pop(key, None)
                return
            alert = _alert(rule, action.symbol, measured, now)
            fired = await self.writes.fire(rule, action.symbol, alert, measured.evidence, measured.description, now,
                                           episodes=episodes)
            self.active.add(key)
            self.counts.pop(key, None)
            if not fired.already_open:
                self.fired += 1
                log.warning("%s (alert %s)", measured.description, fired.alert_id)
        else:
            if key not in self.active or not measured.below_release or not measured.fresh:
                return
            note = f"calm: {rule.metric} {measured.value} below {fmt(rule.calm_below)}"
            cleared = await self.writes.clear(rule, action.symbol, note, measured.evidence, now, episodes=episodes)
            self.active.discard(key)
            self.calm_since.pop(key, None)
            if cleared is not None:
                log.warning("rule %s episode on %r ended (alert %s)", rule.id, action.symbol, cleared.alert_id)

    def measure(self, rule: Rule, symbol: str, now: int) -> _Measure:
        """The rule's metric exactly, with its evidence: what an action is decided on."""
        common = {"metric": rule.metric, "threshold": fmt(rule.threshold), "release": fmt(rule.calm_below),
                  "mode": rule.mode}
        if rule.metric == RATE_METRIC:
            spec = self.view.funding.get(symbol)
            rate = spec.rate if spec is not None else Decimal(0)
            interval = spec.interval_ms if spec is not None else DEFAULT_INTERVAL_MS
            evidence = {**common, "value": fmt(rate), "symbol": symbol, "rate": fmt(rate),
                        "interval_ms": str(interval), "rate_version": str(spec.version if spec else 0),
                        "rate_set_by": spec.updated_by if spec else ""}
            description = (f"monitor rule {rule.id}: {symbol} funding rate {_percent(rate)} per "
                           f"{_hours(interval)} h, cap {_percent(rule.threshold)} either way")
            return _Measure(fmt(rate), abs(rate) >= rule.threshold, abs(rate) < rule.calm_below, True, evidence,
                            description)
        flow = net_funding_flow(self.view, self.columns, now)
        evidence = {**common, "value": fmt(flow.total), "symbols": str(len(flow.flows))}
        for item in flow.flows[:FLOWS_SHOWN]:
            evidence[f"flow:{item.symbol}"] = fmt(item.flow)
            evidence[f"net_quantity:{item.symbol}"] = fmt(item.net_quantity)
            evidence[f"mark:{item.symbol}"] = fmt(item.mark)
            evidence[f"rate:{item.symbol}"] = fmt(item.rate)
        if len(flow.flows) > FLOWS_SHOWN:
            evidence["flows_shown"] = f"the {FLOWS_SHOWN} largest of {len(flow.flows)}"
        if flow.missing_mark:
            evidence["missing_mark"] = " ".join(flow.missing_mark)[:500]
        if flow.stale_mark:
            evidence["stale_mark"] = " ".join(flow.stale_mark)[:500]
        direction = "the accounts pay" if flow.total > 0 else "the accounts receive"
        description = (f"monitor rule {rule.id}: net funding flow {fmt(flow.total)} per interval ({direction}) "
                       f"over {len(flow.flows)} symbols, threshold {fmt(rule.threshold)}")
        size = abs(flow.total)
        return _Measure(fmt(flow.total), size >= rule.threshold, size < rule.calm_below, flow.fresh, evidence,
                        description)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _percent(fraction: Decimal) -> str:
    return f"{fmt(fraction * 100)}%"


def _hours(ms: int) -> str:
    return fmt(Decimal(ms) / 3_600_000)


def _alert(rule: Rule, symbol: str, measured: _Measure, at_ms: int) -> dict[str, Any]:
    return {
        "rule_id": rule.id, "rule_version": rule.version, "severity": rule.severity, "state": OPEN,
        "metric": rule.metric, "value": measured.value, "threshold": fmt(rule.threshold), "window_ms": rule.window_ms,
        "created_ms": at_ms, "updated_ms": at_ms, "history": [first_transition(rule, measured.description, at_ms)],
        "symbol": symbol, "account_id": "", "evidence": measured.evidence, "cleared_ms": 0,
    }
