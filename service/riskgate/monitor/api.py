"""RiskMonitor: the alerts people work and the rules they set; authenticated with the same
tokens as RiskAdmin, every call audited (reads and refusals included)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

import grpc
import msgspec
from google.protobuf import json_format
from google.protobuf.message import Message
from redis.exceptions import RedisError

from riskgate.api.auth import Authenticator, AuthError, Principal
from riskgate.api.echo import clip, details, echo
from riskgate.book.ratelimit import TokenBucket
from riskgate.config import Config
from riskgate.monitor import analytics, stress, stress_wire
from riskgate.monitor.adl import SIDES, NoMark, adl_ranking, liquidation_risk, shown
from riskgate.monitor.alerts import STATES, VERBS, Alert
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.daily import DailyReportBuilder, ReportError, parse_date
from riskgate.monitor.exact import Market
from riskgate.monitor.feed import MarketView
from riskgate.monitor.funding import encode_funding, funding_from_message, funding_message
from riskgate.monitor.groups import GroupSpec, encode_group, group_message, validate_group
from riskgate.monitor.history import MarkBars
from riskgate.monitor.insurance import FIELD as INSURANCE_FIELD
from riskgate.monitor.insurance import encode_insurance, insurance_from_message, insurance_message
from riskgate.monitor.rules import SEVERITIES, Rule, RuleError, validate_rule
from riskgate.monitor.stress import StressError
from riskgate.monitor.var import VarError
from riskgate.monitor.writes import AlertMissing, AlertStateRefused, MonitorWrites, now_ms
from riskgate.report import document as report_document
from riskgate.v1 import monitor_pb2 as pb
from riskgate.v1 import monitor_pb2_grpc as pb_grpc
from riskgate.values.money import DecimalFormatError, fmt, parse_non_negative

AUDIT_REQUEST_MAX = 4096
AUDIT_REQUEST_MAX_DENIED = 256
DENIED_AUDITS_PER_S = 20
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_NOTE = 2000
REDIS_TIMEOUT_S = 2.0
# A report reads a day of counters, alerts and audit entries and runs stress and VaR.
REPORT_TIMEOUT_S = 120.0
_SEVERITY_TO_PB = {name: pb.Severity.Value(f"SEVERITY_{name.upper()}") for name in SEVERITIES}
_SEVERITY_FROM_PB = {value: name for name, value in _SEVERITY_TO_PB.items()}
_STATE_TO_PB = {name: pb.AlertState.Value(f"ALERT_{name}") for name in STATES}
_STATE_FROM_PB = {value: name for name, value in _STATE_TO_PB.items()}


class RiskMonitorServicer(pb_grpc.RiskMonitorServicer):
    def __init__(self, auth: Authenticator, writes: MonitorWrites, view: MarketView,
                 status: Callable[[], pb.MonitorStatus], serving: Callable[[], bool],
                 on_funding: Callable[[str], None] | None = None, columns: AccountColumns | None = None,
                 bars: MarkBars | None = None, config: Config | None = None) -> None:
        self.auth = auth
        self.writes = writes
        self.view = view
        self.status = status
        self.serving = serving
        # Called with the symbol once a rate set here is in the view (its rules evaluate it).
        self.on_funding = on_funding
        # The column-wise account book (ADL, liquidation risk, stress, VaR and the report read it).
        self.columns = columns if columns is not None else AccountColumns()
        self._denied = TokenBucket(DENIED_AUDITS_PER_S, time.monotonic())
        # Book-wide analytics (stress, VaR, the report) one at a time: each copies the book.
        self._stress_lock = asyncio.Lock()
        self.bars = bars if bars is not None else MarkBars(writes.client, writes.keys, 10_080, 3_650)
        self.config = config if config is not None else Config()

    async def _guard(self, method: str, request: Message, context: grpc.aio.ServicerContext) -> Principal:
        try:
            principal = self.auth.authenticate(context.invocation_metadata())
            self.auth.authorize(principal, method)
        except AuthError as exc:
            if self._denied.try_take(time.monotonic()):
                await self._audit(exc.actor, method, request, f"denied: {exc}", AUDIT_REQUEST_MAX_DENIED)
            await context.abort(exc.status, details(str(exc)))
        if not self.serving():
            await self._audit(principal.name, method, request, "unavailable: monitor not loaded or stopping")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "monitor not serving (loading, Redis away, or stopping)")
        return principal

    async def _audit(self, actor: str, method: str, request: Message, outcome: str,
                     cap: int = AUDIT_REQUEST_MAX) -> None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self.writes.audit({"actor": actor[:200], "action": method, "target": clip(_target(request)),
                                         "outcome": outcome[:1000], "request": _request_text(request)[:cap]})
        except (RedisError, OSError, TimeoutError):
            # A read is answered from Redis too: if this fails, so does the call itself.
            pass

    async def _refuse(self, context: grpc.aio.ServicerContext, principal: Principal, method: str,
                      request: Message, status: grpc.StatusCode, message: str, outcome: str) -> None:
        await self._audit(principal.name, method, request, outcome)
        await context.abort(status, details(message))

    async def ListAlerts(self, request: pb.ListAlertsRequest, context: grpc.aio.ServicerContext) -> pb.AlertList:
        principal = await self._guard("ListAlerts", request, context)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                alerts = await self.writes.alerts()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, "ListAlerts", request, grpc.StatusCode.UNAVAILABLE,
                               f"alerts not readable from Redis: {exc}", f"unavailable: {exc}")
        matched = [a for a in alerts if _matches(a, request)]
        matched.sort(key=lambda a: (a.created_ms, int(a.id) if a.id.isdigit() else 0), reverse=True)
        limit = min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        await self._audit(principal.name, "ListAlerts", request, "ok")
        return pb.AlertList(alerts=[alert_message(a) for a in matched[:limit]], total=len(matched))

    async def AckAlert(self, request: pb.AlertActionRequest, context: grpc.aio.ServicerContext) -> pb.Alert:
        return await self._transition("AckAlert", request, context)

    async def EscalateAlert(self, request: pb.AlertActionRequest, context: grpc.aio.ServicerContext) -> pb.Alert:
        return await self._transition("EscalateAlert", request, context)

    async def ResolveAlert(self, request: pb.AlertActionRequest, context: grpc.aio.ServicerContext) -> pb.Alert:
        return await self._transition("ResolveAlert", request, context)

    async def _transition(self, method: str, request: pb.AlertActionRequest, context: grpc.aio.ServicerContext
                          ) -> pb.Alert:
        principal = await self._guard(method, request, context)
        verb = VERBS[method]
        note = request.note.strip()
        if verb.note_required and not note:
            await self._refuse(context, principal, method, request, grpc.StatusCode.INVALID_ARGUMENT,
                               "note: a rationale is required to resolve an alert", "invalid: no rationale")
        if len(note) > MAX_NOTE:
            await self._refuse(context, principal, method, request, grpc.StatusCode.INVALID_ARGUMENT,
                               f"note: at most {MAX_NOTE} characters", "invalid: note too long")
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                alert = await self.writes.transition(request.id, verb, method, principal.name, note,
                                                     _request_text(request)[:AUDIT_REQUEST_MAX])
        except AlertMissing:  # audited by the script
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {echo(request.id)}")
        except AlertStateRefused as exc:  # audited by the script
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"alert {echo(request.id)} is {exc.state}: cannot {verb.action} it")
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, method, request, grpc.StatusCode.UNAVAILABLE,
                               f"not applied (Redis: {exc}); read the alert back before retrying",
                               f"unavailable: {exc}")
        return alert_message(alert)

    async def ListRules(self, request: pb.ListRulesRequest, context: grpc.aio.ServicerContext) -> pb.RuleList:
        principal = await self._guard("ListRules", request, context)
        await self._audit(principal.name, "ListRules", request, "ok")
        return pb.RuleList(rules=[rule_message(r) for r in sorted(self.view.rules.values(), key=lambda r: r.id)])

    async def UpsertRule(self, request: pb.Rule, context: grpc.aio.ServicerContext) -> pb.Rule:
        principal = await self._guard("UpsertRule", request, context)
        try:
            rule = validate_rule(rule_from_message(request, principal.name))
            if rule.scope == "symbol" and rule.symbol not in self.view.symbols:
                raise RuleError("symbol", f"unknown symbol {echo(rule.symbol)}")
            if rule.overrides and (rule.overrides not in self.view.rules
                                   or self.view.rules[rule.overrides].scope != "platform"
                                   or self.view.rules[rule.overrides].metric != rule.metric):
                raise RuleError("overrides", f"no platform rule {echo(rule.overrides)} on metric {rule.metric}")
        except RuleError as exc:
            await self._refuse(context, principal, "UpsertRule", request, grpc.StatusCode.INVALID_ARGUMENT,
                               str(exc), f"invalid: {exc}")
        audit = {"actor": principal.name, "action": "UpsertRule", "target": clip(rule.id), "outcome": "ok",
                 "request": _request_text(request)[:AUDIT_REQUEST_MAX]}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                version = await self.writes.put_rule(rule, audit)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, "UpsertRule", request, grpc.StatusCode.UNAVAILABLE,
                               f"not confirmed by Redis ({exc}); read the rules back before retrying",
                               f"unavailable: {exc}")
        stored = msgspec.structs.replace(rule, version=version)
        self.view.apply("rule", stored)  # the published copy may arrive after the answer
        return rule_message(stored)

    async def GetMonitorStatus(self, request: pb.MonitorStatusRequest, context: grpc.aio.ServicerContext
                               ) -> pb.MonitorStatus:
        principal = await self._guard("GetMonitorStatus", request, context)
        await self._audit(principal.name, "GetMonitorStatus", request, "ok")
        return self.status()

    async def SetFundingRate(self, request: pb.FundingRate, context: grpc.aio.ServicerContext) -> pb.FundingRate:
        principal = await self._guard("SetFundingRate", request, context)
        try:
            spec = funding_from_message(request, principal.name, self.view.symbols)
        except RuleError as exc:
            await self._refuse(context, principal, "SetFundingRate", request, grpc.StatusCode.INVALID_ARGUMENT,
                               str(exc), f"invalid: {exc}")
        audit = {"actor": principal.name, "action": "SetFundingRate", "target": clip(spec.symbol), "outcome": "ok",
                 "request": _request_text(request)[:AUDIT_REQUEST_MAX]}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                version = await self.writes.put_funding(spec.symbol, encode_funding(spec), audit)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, "SetFundingRate", request, grpc.StatusCode.UNAVAILABLE,
                               f"not confirmed by Redis ({exc}); list the funding rates before retrying",
                               f"unavailable: {exc}")
        stored = msgspec.structs.replace(spec, version=version)
        # The published copy may arrive after the answer: applied (and evaluated) here at once.
        if self.view.apply("funding", stored) is not None and self.on_funding is not None:
            self.on_funding(stored.symbol)
        return funding_message(stored)

    async def SetAccountGroup(self, request: pb.AccountGroup, context: grpc.aio.ServicerContext) -> pb.AccountGroup:
        principal = await self._guard("SetAccountGroup", request, context)
        try:
            spec = validate_group(GroupSpec(account_id=request.account_id, group=request.group,
                                            updated_by=principal.name, updated_ms=now_ms()))
        except RuleError as exc:
            await self._refuse(context, principal, "SetAccountGroup", request, grpc.StatusCode.INVALID_ARGUMENT,
                               str(exc), f"invalid: {exc}")
        audit = {"actor": principal.name, "action": "SetAccountGroup", "target": clip(spec.account_id),
                 "outcome": "ok", "request": _request_text(request)[:AUDIT_REQUEST_MAX]}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                version = await self.writes.put_record("group", spec.account_id, encode_group(spec), audit)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, "SetAccountGroup", request, grpc.StatusCode.UNAVAILABLE,
                               f"not confirmed by Redis ({exc}); list the groups before retrying",
                               f"unavailable: {exc}")
        stored = msgspec.structs.replace(spec, version=version)
        self.view.apply("group", stored)  # the published copy may arrive after the answer
        return group_message(stored)

    async def ListAccountGroups(self, request: pb.ListAccountGroupsRequest, context: grpc.aio.ServicerContext
                                ) -> pb.AccountGroupList:
        principal = await self._guard("ListAccountGroups", request, context)
        await self._audit(principal.name, "ListAccountGroups", request, "ok")
        return pb.AccountGroupList(accounts=[
            group_message(spec) for _, spec in sorted(self.view.groups.items())
            if spec.group and (not request.group or spec.group == request.group)])

    async def ListFundingRates(self, request: pb.ListFundingRatesRequest, context: grpc.aio.ServicerContext
                               ) -> pb.FundingRateList:
        principal = await self._guard("ListFundingRates", request, context)
        await self._audit(principal.name, "ListFundingRates", request, "ok")
        return pb.FundingRateList(rates=[funding_message(self.view.funding[s]) for s in sorted(self.view.funding)])

    # ---- ADL ranking and liquidation risk --------------------------------------------------

    async def _invalid(self, context: grpc.aio.ServicerContext, principal: Principal, method: str,
                       request: Message, field: str, message: str) -> None:
        await self._refuse(context, principal, method, request, grpc.StatusCode.INVALID_ARGUMENT,
                           f"{field}: {message}", f"invalid: {field}: {message}")

    async def GetAdlRanking(self, request: pb.AdlRequest, context: grpc.aio.ServicerContext) -> pb.AdlRanking:
        principal = await self._guard("GetAdlRanking", request, context)
        if request.symbol not in self.view.symbols:
            await self._invalid(context, principal, "GetAdlRanking", request, "symbol",
                                f"unknown symbol {echo(request.symbol)}")
        if request.side not in SIDES:
            await self._invalid(context, principal, "GetAdlRanking", request, "side",
                                f"'long' or 'short', not {echo(request.side)}")
        if request.limit > MAX_LIST_LIMIT:
            await self._invalid(context, principal, "GetAdlRanking", request, "limit",
                                f"at most {MAX_LIST_LIMIT} (0 = {DEFAULT_LIST_LIMIT})")
        try:
            ranking = adl_ranking(self.columns, self.view.market, request.symbol, request.side,
                                  request.limit or DEFAULT_LIST_LIMIT, now_ms())
        except NoMark:
            await self._refuse(context, principal, "GetAdlRanking", request, grpc.StatusCode.FAILED_PRECONDITION,
                               f"symbol {echo(request.symbol)} has no mark yet: nothing to rank",
                               "refused: no mark")
        await self._audit(principal.name, "GetAdlRanking", request, "ok")
        return pb.AdlRanking(symbol=ranking.symbol, side=ranking.side, mark=fmt(ranking.mark),
                             population=ranking.population, entries=[pb.AdlEntry(
                                 account_id=e.account_id, quantity=fmt(e.quantity), entry_price=fmt(e.entry_price),
                                 mark=fmt(e.mark), pnl_fraction=shown(e.figures.pnl_fraction),
                                 effective_leverage=shown(e.figures.effective_leverage),
                                 score=shown(e.figures.score), rank=e.rank, lights=e.lights,
                                 margin_balance=fmt(e.margin_balance), bankruptcy_price=fmt(e.bankruptcy_price))
                                 for e in ranking.entries])

    async def GetLiquidationRisk(self, request: pb.LiquidationRiskRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.LiquidationRiskList:
        principal = await self._guard("GetLiquidationRisk", request, context)
        if request.symbol and request.symbol not in self.view.symbols:
            await self._invalid(context, principal, "GetLiquidationRisk", request, "symbol",
                                f"unknown symbol {echo(request.symbol)}")
        if request.limit > MAX_LIST_LIMIT:
            await self._invalid(context, principal, "GetLiquidationRisk", request, "limit",
                                f"at most {MAX_LIST_LIMIT} (0 = {DEFAULT_LIST_LIMIT})")
        symbols = [request.symbol] if request.symbol else sorted(self.columns.holders)
        entries = liquidation_risk(self.columns, self.view.market, symbols, request.limit or DEFAULT_LIST_LIMIT,
                                   now_ms())
        await self._audit(principal.name, "GetLiquidationRisk", request, "ok")
        return pb.LiquidationRiskList(entries=[pb.LiquidationRiskEntry(
            account_id=e.account_id, symbol=e.symbol, quantity=fmt(e.quantity), mark=fmt(e.mark),
            liquidation_price=fmt(e.liquidation_price), distance=shown(e.distance), margin_ratio=e.margin_ratio)
            for e in entries])

    # ---- Stress tests and the insurance fund ----

    async def SetInsuranceFund(self, request: pb.InsuranceFund, context: grpc.aio.ServicerContext
                               ) -> pb.InsuranceFund:
        principal = await self._guard("SetInsuranceFund", request, context)
        try:
            spec = insurance_from_message(request, principal.name, now_ms())
        except RuleError as exc:
            await self._refuse(context, principal, "SetInsuranceFund", request, grpc.StatusCode.INVALID_ARGUMENT,
                               str(exc), f"invalid: {exc}")
        audit = {"actor": principal.name, "action": "SetInsuranceFund", "target": "insurance_fund",
                 "outcome": "ok", "request": _request_text(request)[:AUDIT_REQUEST_MAX]}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                version = await self.writes.put_record("insurance", INSURANCE_FIELD, encode_insurance(spec), audit)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._refuse(context, principal, "SetInsuranceFund", request, grpc.StatusCode.UNAVAILABLE,
                               f"not confirmed by Redis ({exc}); read the fund back before retrying",
                               f"unavailable: {exc}")
        stored = msgspec.structs.replace(spec, version=version)
        self.view.apply("insurance", stored)  # the published copy may arrive after the answer
        return insurance_message(stored)

    async def GetInsuranceFund(self, request: pb.GetInsuranceFundRequest, context: grpc.aio.ServicerContext
                               ) -> pb.InsuranceFund:
        principal = await self._guard("GetInsuranceFund", request, context)
        await self._audit(principal.name, "GetInsuranceFund", request, "ok")
        return insurance_message(self.view.insurance)

    async def RunStressTest(self, request: pb.StressRequest, context: grpc.aio.ServicerContext) -> pb.StressReport:
        principal = await self._guard("RunStressTest", request, context)
        markets = self._markets()
        try:
            if request.historical_lookback_days:
                top = stress_wire.read_historical(request)
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    scenarios = await analytics.historical_scenarios(
                        self.writes.client, self.writes.keys, [s for s, m in markets.items() if m.mark is not None],
                        now_ms(), request.historical_lookback_days)
            else:
                scenarios, top = stress_wire.read_request(
                    request, self.view.symbols, [s for s, m in markets.items() if m.mark is not None])
        except (StressError, VarError) as exc:
            await self._refuse(context, principal, "RunStressTest", request, grpc.StatusCode.INVALID_ARGUMENT,
                               str(exc), f"invalid: {exc}")
        except (RedisError, OSError, TimeoutError) as exc:
            await self._unavailable(context, principal, "RunStressTest", request, exc)
        fund = self.view.insurance
        async with self._stress_lock:
            # Copied in one go on the event loop (consistent), computed in a worker thread
            # (numpy releases the GIL for most of it), so the monitor keeps following its feed.
            book = stress.snapshot(self.columns)
            results = await asyncio.to_thread(stress.run, book, markets, scenarios, top,
                                              fund.balance if fund is not None else Decimal(0))
        await self._audit(principal.name, "RunStressTest", request, f"ok: {len(results)} scenario(s)")
        return pb.StressReport(scenarios=[stress_wire.scenario_message(r) for r in results],
                               insurance_fund=insurance_message(fund), accounts=len(book.ids), computed_ms=now_ms())


    def _markets(self) -> dict[str, Market]:
        return {symbol: market for symbol in sorted(self.view.symbols)
                if (market := self.view.market(symbol)) is not None}

    async def _unavailable(self, context: grpc.aio.ServicerContext, principal: Principal, method: str,
                           request: Message, exc: BaseException) -> None:
        await self._refuse(context, principal, method, request, grpc.StatusCode.UNAVAILABLE,
                           f"Redis did not answer ({exc!r}); try again", f"unavailable: {exc!r}")

    # ---- Mark history, value at risk, the daily report ----

    async def ImportMarkHistory(self, request: pb.MarkHistoryImport, context: grpc.aio.ServicerContext
                                ) -> pb.MarkHistoryImportResult:
        principal = await self._guard("ImportMarkHistory", request, context)
        method = "ImportMarkHistory"
        try:
            bars = analytics.read_bars(request.bars, self.view.symbols, now_ms())
        except VarError as exc:
            await self._invalid(context, principal, method, request, exc.field, exc.message)
        count = sum(len(b) for b in bars.values())
        audit = {"ts_ms": str(now_ms()), "actor": principal.name[:200], "action": method,
                 "target": ",".join(sorted(bars))[:200], "outcome": f"ok: {count} bars",
                 "request": f"{len(request.bars)} bars of {', '.join(sorted(bars))}"[:AUDIT_REQUEST_MAX]}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S * 5):
                return await analytics.import_bars(self.bars, bars, now_ms(),
                                                   (self.writes.keys.audit, audit, self.writes.audit_maxlen))
        except (RedisError, OSError, TimeoutError) as exc:
            # Merging is idempotent: sending the same bars again is always safe.
            await self._unavailable(context, principal, method, request, exc)
            raise

    async def GetMarkHistory(self, request: pb.MarkHistoryRequest, context: grpc.aio.ServicerContext
                             ) -> pb.MarkHistory:
        principal = await self._guard("GetMarkHistory", request, context)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                history = await analytics.mark_history(self.writes.client, self.writes.keys, request,
                                                       self.view.symbols, now_ms())
        except VarError as exc:
            await self._invalid(context, principal, "GetMarkHistory", request, exc.field, exc.message)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._unavailable(context, principal, "GetMarkHistory", request, exc)
        await self._audit(principal.name, "GetMarkHistory", request, f"ok: {len(history.bars)} bars")
        return history

    async def GetValueAtRisk(self, request: pb.VarRequest, context: grpc.aio.ServicerContext) -> pb.VarReport:
        principal = await self._guard("GetValueAtRisk", request, context)
        try:
            async with self._stress_lock:
                book = stress.snapshot(self.columns)
                async with asyncio.timeout(REDIS_TIMEOUT_S * 15):
                    report = await analytics.value_at_risk(self.writes.client, self.writes.keys, book,
                                                           self._markets(), request, now_ms())
        except VarError as exc:
            await self._invalid(context, principal, "GetValueAtRisk", request, exc.field, exc.message)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._unavailable(context, principal, "GetValueAtRisk", request, exc)
        await self._audit(principal.name, "GetValueAtRisk", request, f"ok: {report.scenarios} scenarios")
        return report

    async def BacktestVaR(self, request: pb.BacktestRequest, context: grpc.aio.ServicerContext
                          ) -> pb.BacktestReport:
        principal = await self._guard("BacktestVaR", request, context)
        try:
            async with self._stress_lock:
                book = stress.snapshot(self.columns)
                async with asyncio.timeout(REDIS_TIMEOUT_S * 5):
                    report = await analytics.backtest_var(self.writes.client, self.writes.keys, book,
                                                          self._markets(), request, now_ms())
        except VarError as exc:
            code = grpc.StatusCode.FAILED_PRECONDITION if "history" in exc.message else grpc.StatusCode.INVALID_ARGUMENT
            await self._refuse(context, principal, "BacktestVaR", request, code, str(exc), f"refused: {exc}")
        except (RedisError, OSError, TimeoutError) as exc:
            await self._unavailable(context, principal, "BacktestVaR", request, exc)
        await self._audit(principal.name, "BacktestVaR", request,
                          f"ok: {report.exceptions} exceptions in {report.days} days, {report.zone}")
        return report

    async def GetDailyReport(self, request: pb.DailyReportRequest, context: grpc.aio.ServicerContext
                             ) -> pb.DailyReportDocument:
        principal = await self._guard("GetDailyReport", request, context)
        try:
            day = parse_date(request.date, now_ms())
            builder = DailyReportBuilder(self.writes.client, self.writes.keys, self.view, self.columns,
                                         self._stress_lock)
            async with asyncio.timeout(REPORT_TIMEOUT_S):
                report = await builder.build(day, now_ms())
        except ReportError as exc:
            await self._invalid(context, principal, "GetDailyReport", request, "date", str(exc).split(": ", 1)[-1])
        except (RedisError, OSError, TimeoutError) as exc:
            await self._unavailable(context, principal, "GetDailyReport", request, exc)
        await self._audit(principal.name, "GetDailyReport", request, f"ok: {report.date}")
        return pb.DailyReportDocument(date=report.date, json=report_document.encoder.encode(report))


def _matches(alert: Alert, request: pb.ListAlertsRequest) -> bool:
    return ((not request.state or alert.state == _STATE_FROM_PB.get(request.state))
            and (not request.severity or alert.severity == _SEVERITY_FROM_PB.get(request.severity))
            and (not request.rule_id or alert.rule_id == request.rule_id)
            and (not request.symbol or alert.symbol == request.symbol)
            and (not request.account_id or alert.account_id == request.account_id)
            and alert.created_ms >= request.since_ms)


def alert_message(alert: Alert) -> pb.Alert:
    return pb.Alert(
        id=alert.id, rule_id=alert.rule_id, rule_version=alert.rule_version,
        severity=_SEVERITY_TO_PB.get(alert.severity, pb.SEVERITY_UNSPECIFIED),
        state=_STATE_TO_PB.get(alert.state, pb.ALERT_STATE_UNSPECIFIED), symbol=alert.symbol,
        account_id=alert.account_id, metric=alert.metric, value=alert.value, threshold=alert.threshold,
        window_ms=alert.window_ms, action_taken=alert.action, action_version=alert.action_version,
        audit_id=alert.audit_id, created_ms=alert.created_ms, updated_ms=alert.updated_ms,
        history=[pb.AlertTransition(actor=t.actor, action=t.action, note=t.note, at_ms=t.at_ms)
                 for t in alert.history],
        evidence=alert.evidence, cleared_ms=alert.cleared_ms,
    )


def rule_message(rule: Rule) -> pb.Rule:
    return pb.Rule(
        id=rule.id, scope=rule.scope, symbol=rule.symbol, metric=rule.metric, threshold=fmt(rule.threshold),
        release=fmt(rule.release), window_ms=rule.window_ms, confirmation=rule.confirmation, action=rule.action,
        cooldown_ms=rule.cooldown_ms, severity=_SEVERITY_TO_PB[rule.severity], mode=rule.mode,
        disabled=not rule.enabled, overrides=rule.overrides, version=rule.version, updated_by=rule.updated_by,
        updated_ms=rule.updated_ms, account_id=rule.account_id, min_value=fmt(rule.min_value),
    )


def rule_from_message(message: pb.Rule, actor: str) -> Rule:
    """Raises RuleError naming the field for what cannot be read."""
    def decimal(field: str, text: str) -> object:
        try:
            return parse_non_negative(text)
        except DecimalFormatError as exc:
            raise RuleError(field, f"expected a plain decimal fraction such as '0.05': {exc}") from None

    if message.severity not in _SEVERITY_FROM_PB:
        raise RuleError("severity", f"one of {', '.join(SEVERITIES)}")
    return Rule(
        id=message.id, scope=message.scope or "platform", symbol=message.symbol, metric=message.metric,
        threshold=decimal("threshold", message.threshold),  # type: ignore[arg-type]
        release=decimal("release", message.release) if message.release else None,  # type: ignore[arg-type]
        window_ms=message.window_ms, confirmation=message.confirmation, action=message.action,
        cooldown_ms=message.cooldown_ms, severity=_SEVERITY_FROM_PB[message.severity], mode=message.mode,
        enabled=not message.disabled, overrides=message.overrides, updated_by=actor, updated_ms=now_ms(),
        account_id=message.account_id,
        min_value=decimal("min_value", message.min_value) if message.min_value else None,  # type: ignore[arg-type]
    )


def _target(request: Message) -> str:
    for field in ("id", "symbol", "rule_id"):
        if hasattr(request, field):
            return str(getattr(request, field))
    return ""


def _request_text(request: Message) -> str:
    return json_format.MessageToJson(request, indent=None, preserving_proto_field_name=True)
