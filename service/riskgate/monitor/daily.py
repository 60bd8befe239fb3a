"""The daily risk report's content, gathered by the monitor: what happened over one UTC day
(the gate's decision counters, alerts, the audit stream) and where the book stands now
(exposures, margin ratios, stress, VaR, backtest, ADL queue heads, the insurance fund).

Everything over the day is read from Redis, so any monitor (actor or standby) reports the
same day; what is "as of" is measured on this monitor's copy of the book when it runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal

import numpy as np
import redis.asyncio as aioredis

from riskgate.monitor import analytics, stress
from riskgate.monitor.adl import SIDES, NoMark, adl_ranking, shown
from riskgate.monitor.alerts import OPEN, RESOLVED, VERBS, Alert, Transition, decode_alert
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.exact import Market
from riskgate.monitor.feed import MarketView
from riskgate.monitor.history import DAY_MS
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.rules import Rule
from riskgate.monitor.stress import Book, Scenario, ScenarioResult
from riskgate.monitor.var import VarError
from riskgate.report import document as doc
from riskgate.store.decision_counts import account_shard_count, read_day
from riskgate.v1 import monitor_pb2 as pb
from riskgate.values.money import ZERO, fmt

log = logging.getLogger(__name__)

MAX_ACTIONS = 1_000
TOP = 10
ADL_HEAD = 5
AUDIT_CHUNK = 10_000
# Calls that only read: not "actions" of the day (they are in the audit stream all the same).
_READ_PREFIXES = ("List", "Get", "Check")
_READS = frozenset({"RunStressTest", "BacktestVaR", "ReportExecution"})
# Outcomes of a change that happened; anything else (refused, expired, abandoned, unconfirmed
# until resolved, a rule leaving a person's setting alone) did not change anything.
_DONE = ("ok", "resolved: applied")
EARLIEST_DATE = dt.date(2009, 1, 1)
RATIO_EDGES = tuple(Decimal(i) / 10 for i in range(11))  # 0, 0.1, ... 1
STRESS_GRID = stress.grid(Decimal("-0.5"), Decimal("0.5"), Decimal("0.1"))
HISTORY_LOOKBACK = 365
# A person's transition -> the state it leaves the alert in.
_STATE_AFTER = {verb.action: verb.to for verb in VERBS.values()}


class ReportError(ValueError):
    pass


def parse_date(text: str, now_ms: int) -> dt.date:
    if not text:
        return dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"date: YYYY-MM-DD, not {text[:40]!r}") from None
    if day > dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date():
        raise ReportError(f"date: {text} is in the future")
    if day < EARLIEST_DATE:
        raise ReportError(f"date: {text} is before {EARLIEST_DATE.isoformat()}")
    return day


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DailyReportBuilder:
    def __init__(self, client: aioredis.Redis, keys: MonitorKeys, view: MarketView, columns: AccountColumns,
                 lock: asyncio.Lock) -> None:
        self.client = client
        self.keys = keys
        self.view = view
        self.columns = columns
        self.lock = lock  # the book-wide analytics' lock: one copy of the book at a time

    async def build(self, day: dt.date, now_ms: int) -> doc.DailyReport:
        start_ms = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
        end_ms = start_ms + DAY_MS
        notes: list[str] = []
        counts = await read_day(self.client, self.keys, day.isoformat())
        alerts = await self._alerts()
        actions, actions_total = await self._actions(start_ms, end_ms)
        markets = {s: m for s in sorted(self.view.symbols) if (m := self.view.market(s)) is not None}
        async with self.lock:
            book = stress.snapshot(self.columns)
            ratios = self.columns.ratio[:len(self.columns)].copy()
            stressed = await self._stress(book, markets, now_ms, notes)
            value_at_risk, backtests = await self._var(book, markets, now_ms, notes)
        return doc.DailyReport(
            schema_version=doc.SCHEMA_VERSION, date=day.isoformat(), generated_at=iso(now_ms),
            decisions=decisions(counts), rules_fired=rules_fired(alerts, start_ms, end_ms, self.view.rules),
            actions=actions, actions_total=actions_total, cases=cases(alerts, start_ms, end_ms),
            exposures=exposures(book, markets), margin_ratios=margin_ratios(ratios, self.view),
            stress=stressed, value_at_risk=value_at_risk, backtest=backtests,
            adl=self._adl(markets, now_ms), insurance_fund=self._fund(), notes=notes)

    async def _alerts(self) -> list[Alert]:
        found = []
        async for _, data in self.client.hscan_iter(self.keys.alerts, count=1000):
            try:
                found.append(decode_alert(data))
            except Exception as exc:  # one bad record must not stop the report
                log.error("report: ignoring unreadable alert: %r", exc)
        return found

    async def _actions(self, start_ms: int, end_ms: int) -> tuple[list[doc.ActionRow], int]:
        """The day's actions, in order: from the global audit stream (global records, the
        monitor's) and every account shard's (changes of its accounts and reservations)."""
        shards = self.keys.shards(await account_shard_count(self.client, self.keys))
        found: list[tuple[tuple[int, int], doc.ActionRow]] = []
        total = 0
        for stream in (self.keys.audit, *(shard.shard_audit for shard in shards)):
            kept, counted = await self._stream_actions(stream, start_ms, end_ms)
            found += kept
            total += counted
        found.sort(key=lambda item: item[0])
        return [row for _, row in found[:MAX_ACTIONS]], total

    async def _stream_actions(self, stream: str, start_ms: int, end_ms: int
                              ) -> tuple[list[tuple[tuple[int, int], doc.ActionRow]], int]:
        rows: list[tuple[tuple[int, int], doc.ActionRow]] = []
        total = 0
        cursor = f"{start_ms}-0"
        while True:
            entries = await self.client.xrange(stream, min=cursor, max=f"{end_ms - 1}-18446744073709551615",
                                               count=AUDIT_CHUNK)
            for entry_id, fields in entries:
                entry = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
                if not is_action(entry):
                    continue
                total += 1
                if len(rows) < MAX_ACTIONS:
                    ms, _, seq = entry_id.decode().partition("-")
                    at = int(entry.get("ts_ms") or ms)
                    rows.append(((int(ms), int(seq or 0)), doc.ActionRow(
                        at=iso(at), actor=entry.get("actor", ""), action=entry.get("action", ""),
                        target=entry.get("target", ""), outcome=entry.get("outcome", ""),
                        detail=entry.get("request", "")[:200])))
            if len(entries) < AUDIT_CHUNK:
                return rows, total
            cursor = "(" + entries[-1][0].decode()

    async def _stress(self, book: Book, markets: Mapping[str, Market], now_ms: int, notes: list[str]) -> doc.Stress:
        marked = [s for s, m in markets.items() if m.mark is not None]
        scenarios: list[Scenario] = [stress.uniform(shock, marked) for shock in STRESS_GRID]
        try:
            scenarios += await analytics.historical_scenarios(self.client, self.keys, marked, now_ms,
                                                              HISTORY_LOOKBACK)
        except VarError as exc:
            notes.append(f"historical stress scenarios left out: {exc.message}")
        fund = self.view.insurance.balance if self.view.insurance is not None else ZERO
        results = await asyncio.to_thread(stress.run, book, markets, scenarios, 2, fund)
        return doc.Stress(as_of=iso(now_ms), insurance_fund=fmt(fund), accounts=len(book.ids),
                          scenarios=[stress_row(r) for r in results])

    async def _var(self, book: Book, markets: Mapping[str, Market], now_ms: int, notes: list[str]
                   ) -> tuple[doc.ValueAtRisk, list[doc.Backtest]]:
        empty = doc.ValueAtRisk(as_of=iso(now_ms), lookback_days=analytics.DEFAULT_LOOKBACK, scenarios=0,
                                platform=[], top_accounts=[])
        try:
            report = await analytics.value_at_risk(self.client, self.keys, book, markets, pb.VarRequest(top=TOP),
                                                   now_ms)
        except VarError as exc:
            notes.append(f"value at risk not computed: {exc.message}")
            return empty, []
        figures = doc.ValueAtRisk(
            as_of=iso(now_ms), lookback_days=report.lookback_days, scenarios=report.scenarios,
            platform=[var_figure("platform", f) for f in report.platform.figures],
            top_accounts=[var_figure(a.subject, a.figures[0]) for a in report.accounts])
        backtests = []
        for confidence in analytics.DEFAULT_CONFIDENCES:
            try:
                result = await analytics.backtest_var(self.client, self.keys, book, markets,
                                                      pb.BacktestRequest(confidence=str(confidence)), now_ms)
            except VarError as exc:
                notes.append(f"backtest at {confidence} not run: {exc.message}")
                continue
            backtests.append(doc.Backtest(subject=result.subject, confidence=result.confidence, days=result.days,
                                          exceptions=result.exceptions, kupiec_lr=result.kupiec_lr,
                                          rejected=result.rejected, zone=result.zone))
        return figures, backtests

    def _adl(self, markets: Mapping[str, Market], now_ms: int) -> list[doc.AdlHead]:
        heads = []
        for symbol in sorted(self.columns.holders):
            if symbol not in markets:
                continue
            for side in SIDES:
                try:
                    ranking = adl_ranking(self.columns, self.view.market, symbol, side, ADL_HEAD, now_ms)
                except NoMark:
                    continue
                if ranking.population:
                    heads.append(doc.AdlHead(symbol=symbol, side=side, population=ranking.population, head=[
                        f"{e.account_id} (rank {e.rank}, lights {e.lights}, score {shown(e.figures.score)})"
                        for e in ranking.entries]))
        return heads

    def _fund(self) -> doc.InsuranceFund:
        fund = self.view.insurance
        if fund is None:
            return doc.InsuranceFund(balance="0", updated_by="", updated_at="")
        return doc.InsuranceFund(balance=fmt(fund.balance), updated_by=fund.updated_by,
                                 updated_at=iso(fund.updated_ms) if fund.updated_ms else "")


def is_action(entry: Mapping[str, str]) -> bool:
    """A change made during the day, by a person or a rule: not a read, and only with an
    outcome that says it happened."""
    action = entry.get("action", "")
    if action in _READS or action.startswith(_READ_PREFIXES):
        return False
    return entry.get("outcome", "").startswith(_DONE)


def decisions(counts: Sequence[tuple[int, str, str, str, int]]) -> doc.Decisions:
    by_symbol: dict[str, Counter[str]] = defaultdict(Counter)
    by_hour = [Counter[str]() for _ in range(24)]
    by_reason: Counter[tuple[str, str, str]] = Counter()
    for minute, symbol, decision, reason, count in counts:
        by_symbol[symbol][decision] += count
        by_hour[min(23, max(0, minute // 60))][decision] += count
        by_reason[(symbol, decision, reason)] += count
    totals: Counter[str] = Counter()
    for symbol_counts in by_symbol.values():
        totals.update(symbol_counts)
    symbols = [doc.SymbolDecisions(symbol=s, accept=c["ACCEPT"], reject=c["REJECT"], reduce_only=c["REDUCE_ONLY"])
               for s, c in by_symbol.items()]
    symbols.sort(key=lambda s: (-s.total, s.symbol))
    reasons = [doc.DecisionRow(symbol=s, decision=d, reason=r, count=n) for (s, d, r), n in by_reason.items()]
    reasons.sort(key=lambda r: (-r.count, r.symbol, r.decision, r.reason))
    return doc.Decisions(total=sum(totals.values()), accept=totals["ACCEPT"], reject=totals["REJECT"],
                         reduce_only=totals["REDUCE_ONLY"], by_symbol=symbols, by_reason=reasons,
                         by_hour=[doc.HourDecisions(hour=h, accept=c["ACCEPT"], reject=c["REJECT"],
                                                    reduce_only=c["REDUCE_ONLY"]) for h, c in enumerate(by_hour)])


def _subject(alert: Alert) -> str:
    return " ".join(part for part in (alert.symbol, alert.account_id) if part) or "platform"


def rules_fired(alerts: Sequence[Alert], start_ms: int, end_ms: int, rules: Mapping[str, Rule]
                ) -> list[doc.RuleFired]:
    """Alerts raised in the day by rule; an alert's action is named by its rule's action ("" when
    it acted on nothing: a dry run, or a person's setting it would not override)."""
    fired: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        if start_ms <= alert.created_ms < end_ms:
            fired[alert.rule_id].append(alert)
    rows = []
    for rule_id, raised in fired.items():
        subjects = list(dict.fromkeys(_subject(a) for a in raised))
        rows.append(doc.RuleFired(rule_id=rule_id, metric=raised[0].metric, severity=raised[0].severity,
                                  alerts=len(raised), actions=dict(Counter(
                                      (rules[a.rule_id].action if a.rule_id in rules else a.action) if a.action else ""
                                      for a in raised)),
                                  subjects=subjects[:10]))
    rows.sort(key=lambda r: (-r.alerts, r.rule_id))
    return rows


def cases(alerts: Sequence[Alert], start_ms: int, end_ms: int) -> doc.Cases:
    """The cases as they stood at the day's end: open (raised before it, not resolved by then, in
    the state people had put them in), and those resolved during the day."""
    open_cases, resolved = [], []
    for alert in sorted(alerts, key=lambda a: (a.created_ms, a.id)):
        if alert.created_ms >= end_ms:
            continue
        history = [t for t in alert.history if t.at_ms < end_ms]
        resolutions = [t for t in history if t.action == "resolve"]
        if resolutions:
            if resolutions[-1].at_ms >= start_ms:
                resolved.append(case(alert, history, RESOLVED, resolutions[-1].note))
            continue
        state = OPEN
        for transition in history:
            state = _STATE_AFTER.get(transition.action, state)
        open_cases.append(case(alert, history, state, ""))
    return doc.Cases(open=open_cases, resolved=resolved)


def case(alert: Alert, history: Sequence[Transition], state: str, rationale: str) -> doc.Case:
    return doc.Case(alert_id=alert.id, rule_id=alert.rule_id, severity=alert.severity, state=state,
                    subject=_subject(alert), metric=alert.metric, value=alert.value, threshold=alert.threshold,
                    action=alert.action, raised_at=iso(alert.created_ms), updated_at=iso(alert.updated_ms),
                    history=[f"{iso(t.at_ms)} {t.actor} {t.action}" + (f": {t.note}" if t.note else "")
                             for t in history],
                    rationale=rationale)


def exposures(book: Book, markets: Mapping[str, Market]) -> doc.Exposures:
    rows = []
    interest = []
    for symbol, (accounts, quantity, _) in sorted(book.holders.items()):
        market = markets.get(symbol)
        if market is None or market.mark is None:
            continue
        long, short = book.open_interest.get(symbol, (ZERO, ZERO))
        total = max(long, short)
        interest.append(doc.OpenInterestRow(symbol=symbol, mark=fmt(market.mark), long=fmt(long), short=fmt(short),
                                            open_interest=fmt(total), holders=len(accounts)))
        largest = np.argsort(-np.abs(quantity))[:TOP]
        for slot in largest.tolist():
            index = int(accounts[slot])
            position = next(p for p in book.records[index][1] if p.symbol == symbol)
            size = abs(position.quantity)
            rows.append(doc.ExposureRow(
                account_id=book.ids[index], symbol=symbol, quantity=fmt(position.quantity), mark=fmt(market.mark),
                notional=fmt(size * market.mark),
                share=fmt((size / total).quantize(Decimal("0.000001"))) if total > 0 else "0"))
    rows.sort(key=lambda r: (-Decimal(r.notional), r.account_id, r.symbol))
    return doc.Exposures(top=rows[:TOP], open_interest=interest)


def margin_ratios(ratios: np.ndarray, view: MarketView) -> doc.MarginRatios:
    at_risk = ratios[ratios > 0]
    edges = [float(e) for e in RATIO_EDGES]
    buckets = []
    for low, high in itertools.pairwise(edges):
        buckets.append(doc.RatioBucket(label=f"{low:.1f}-{high:.1f}",
                                       accounts=int(((at_risk >= low) & (at_risk < high)).sum())))
    buckets.append(doc.RatioBucket(label=">= 1", accounts=int((at_risk >= 1).sum())))
    levels = {"alert": None, "account_reduce_only": None, "liquidation_candidate": None}
    for rule in view.rules.values():
        if rule.metric == "margin_ratio" and rule.enabled and rule.scope == "platform" and rule.action in levels:
            current = levels[rule.action]
            levels[rule.action] = rule.threshold if current is None else min(current, rule.threshold)

    def at(action: str) -> int:
        level = levels[action]
        return int((at_risk >= float(level)).sum()) if level is not None else 0
    return doc.MarginRatios(accounts=len(at_risk), buckets=buckets, at_warning=at("alert"),
                            at_close_only=at("account_reduce_only"), at_liquidation=at("liquidation_candidate"))


def stress_row(result: ScenarioResult) -> doc.StressRow:
    def cover(c: stress.Cover) -> doc.CoverRow:
        return doc.CoverRow(amount=fmt(c.amount), accounts=list(c.accounts), covered=c.covered, margin=fmt(c.margin))
    return doc.StressRow(label=result.scenario.label, total_shortfall=fmt(result.total_shortfall),
                         accounts_short=result.accounts_short, liquidations=result.liquidations,
                         cover_1=cover(result.cover_1), cover_2=cover(result.cover_2))


def var_figure(subject: str, figure: pb.VarFigure) -> doc.VarFigure:
    return doc.VarFigure(subject=subject, confidence=figure.confidence, var=figure.var,
                         expected_shortfall=figure.expected_shortfall)

