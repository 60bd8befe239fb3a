"""The history-driven analytics on the wire: mark history import and reads, value at risk,
its backtest and the historical worst-move stress scenarios. Requests are validated here
(VarError naming the field); the arithmetic is var.py's and stress.py's."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal

import redis.asyncio as aioredis

from riskgate.api.echo import echo
from riskgate.monitor import stress, var
from riskgate.monitor.exact import Market
from riskgate.monitor.history import DAY_MS, Bar, MarkBars, daily_closes, day_of, minute_bars
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.stress import Book, Scenario
from riskgate.monitor.var import VarError
from riskgate.v1 import monitor_pb2 as pb
from riskgate.values.money import DecimalFormatError, fmt, parse_non_negative

MAX_IMPORT_BARS = 10_000
DEFAULT_HISTORY_LIMIT = 1_000
MAX_HISTORY_LIMIT = 10_000
DEFAULT_LOOKBACK = 365
DEFAULT_BACKTEST_DAYS = 250
DEFAULT_BACKTEST_LOOKBACK = 250
MAX_DAYS = 3_650
MAX_HORIZON = 10
CONFIDENCE_QUANTUM = Decimal("0.000001")
DEFAULT_CONFIDENCES = (Decimal("0.99"), Decimal("0.995"))
DEFAULT_TOP = 10
MAX_TOP = 100
# Imported times: from 2009 (no crypto mark before) to a minute ahead of this clock.
EARLIEST_MS = 1_230_768_000_000
FUTURE_SLACK_MS = 60_000
_LOWEST_SHOCK = Decimal("-0.99999999")


def date_of(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def today(now_ms: int) -> int:
    return day_of(now_ms)


# ---- Mark history ------------------------------------------------------------------------

def read_bars(bars: Sequence[pb.MarkBar], known: Mapping[str, object], now_ms: int) -> dict[str, list[Bar]]:
    """The bars of an import, by symbol; VarError naming the first bar that cannot be used
    (nothing is imported then)."""
    if not bars:
        raise VarError("bars", "no bars given")
    if len(bars) > MAX_IMPORT_BARS:
        raise VarError("bars", f"at most {MAX_IMPORT_BARS} a call, not {len(bars)}")
    by_symbol: dict[str, dict[int, Bar]] = {}
    for i, item in enumerate(bars):
        where = f"bars[{i}]"
        if item.symbol not in known:
            raise VarError(where, f"unknown symbol {echo(item.symbol)}")
        if not EARLIEST_MS <= item.time_ms <= now_ms + FUTURE_SLACK_MS:
            raise VarError(where, f"time_ms {item.time_ms} is before 2009 or in the future")
        close = _price(where, "close", item.close)
        open_ = _price(where, "open", item.open) if item.open else close
        high = _price(where, "high", item.high) if item.high else max(open_, close)
        low = _price(where, "low", item.low) if item.low else min(open_, close)
        if not low <= min(open_, close) or not high >= max(open_, close) or low > high:
            raise VarError(where, "needs low <= open, close <= high")
        bar = Bar.of(item.time_ms, close)
        bar.open, bar.high, bar.low = open_, high, low
        symbol_bars = by_symbol.setdefault(item.symbol, {})
        if bar.minute_ms in symbol_bars:
            symbol_bars[bar.minute_ms].merge(bar)
        else:
            symbol_bars[bar.minute_ms] = bar
    return {symbol: sorted(b.values(), key=lambda bar: bar.minute_ms) for symbol, b in by_symbol.items()}


def _price(where: str, name: str, text: str) -> Decimal:
    try:
        price = parse_non_negative(text.strip())
    except DecimalFormatError as exc:
        raise VarError(where, f"{name}: a positive decimal price: {exc}") from None
    if price <= 0:
        raise VarError(where, f"{name}: must be > 0")
    return price


async def import_bars(writer: MarkBars, bars: Mapping[str, Sequence[Bar]], now_ms: int,
                      audit: tuple[str, dict[str, str], int]) -> pb.MarkHistoryImportResult:
    """Merged with the audit entry in one transaction."""
    minute = await writer.merge(bars, now_ms, audit)
    every = [bar for symbol_bars in bars.values() for bar in symbol_bars]
    return pb.MarkHistoryImportResult(bars=len(every), minute_bars=minute, symbols=sorted(bars),
                                      first_ms=min(b.close_ms for b in every), last_ms=max(b.close_ms for b in every))


async def mark_history(client: aioredis.Redis, keys: MonitorKeys, request: pb.MarkHistoryRequest,
                       known: Mapping[str, object], now_ms: int) -> pb.MarkHistory:
    if request.symbol not in known:
        raise VarError("symbol", f"unknown symbol {echo(request.symbol)}")
    interval = request.interval or "day"
    if interval not in ("day", "minute"):
        raise VarError("interval", f"'day' or 'minute', not {echo(request.interval)}")
    if request.limit > MAX_HISTORY_LIMIT:
        raise VarError("limit", f"at most {MAX_HISTORY_LIMIT}, not {request.limit}")
    limit = request.limit or DEFAULT_HISTORY_LIMIT
    to_ms = request.to_ms or now_ms
    if interval == "minute":
        bars = await minute_bars(client, keys, request.symbol, request.from_ms, to_ms, limit)
        return pb.MarkHistory(symbol=request.symbol, interval=interval, bars=[
            pb.MarkBar(symbol=request.symbol, time_ms=b.close_ms, open=fmt(b.open), high=fmt(b.high), low=fmt(b.low),
                       close=fmt(b.close)) for b in bars])
    read = await daily_closes(client, keys, [request.symbol], day_of(request.from_ms), day_of(to_ms))
    closes = read[request.symbol]
    days = sorted(closes)[:limit]
    return pb.MarkHistory(symbol=request.symbol, interval=interval, bars=[
        pb.MarkBar(symbol=request.symbol, time_ms=(d + 1) * DAY_MS - 1, close=fmt(closes[d])) for d in days])


# ---- Value at risk -------------------------------------------------------------------------

def _confidence(field_name: str, text: str) -> Decimal:
    try:
        value = parse_non_negative(text.strip())
    except DecimalFormatError as exc:
        raise VarError(field_name, f"a fraction such as '0.99': {exc}") from None
    if not Decimal("0.5") < value < 1:
        raise VarError(field_name, f"must be above 0.5 and below 1, not {text.strip()!r}")
    if value != value.quantize(CONFIDENCE_QUANTUM):
        raise VarError(field_name, f"at most 6 decimal places, not {text.strip()!r}")
    return value


def _days(field_name: str, value: int, default: int, most: int) -> int:
    if value > most:
        raise VarError(field_name, f"at most {most}, not {value}")
    return value or default


def marks_of(markets: Mapping[str, Market]) -> dict[str, Decimal]:
    return {symbol: m.mark for symbol, m in markets.items() if m.mark is not None}


def held_symbols(book: Book) -> list[str]:
    return sorted(symbol for symbol, (accounts, _, _) in book.holders.items() if len(accounts))


async def load_scenarios(client: aioredis.Redis, keys: MonitorKeys, symbols: Sequence[str], now_ms: int,
                         lookback: int, horizon: int) -> var.Scenarios:
    last = today(now_ms) - 1  # complete days only
    closes = await daily_closes(client, keys, symbols, last - lookback - horizon + 1, last)
    return var.scenarios(closes, last, lookback, horizon)


def _account(book: Book, account_id: str) -> int:
    try:
        return book.ids.index(account_id)
    except ValueError:
        raise VarError("account_id", f"unknown account {echo(account_id)} (or it holds nothing)") from None


async def value_at_risk(client: aioredis.Redis, keys: MonitorKeys, book: Book, markets: Mapping[str, Market],
                        request: pb.VarRequest, now_ms: int) -> pb.VarReport:
    confidences = [_confidence(f"confidences[{i}]", c) for i, c in enumerate(request.confidences)] \
        or list(DEFAULT_CONFIDENCES)
    lookback = _days("lookback_days", request.lookback_days, DEFAULT_LOOKBACK, MAX_DAYS)
    horizon = _days("horizon_days", request.horizon_days, 1, MAX_HORIZON)
    top = _days("top", request.top, DEFAULT_TOP, MAX_TOP)
    account = _account(book, request.account_id) if request.account_id else None
    marks = marks_of(markets)
    symbols = held_symbols(book)
    no_mark = [s for s in symbols if s not in marks]
    found = await load_scenarios(client, keys, [s for s in symbols if s in marks], now_ms, lookback, horizon)
    found = var.Scenarios(found.days, found.changes, tuple(sorted({*found.missing, *no_mark})), found.short)
    if not found.days:
        raise VarError("lookback_days", f"no scenario day in the last {lookback} days: the mark history has no "
                                        "day with both closes of every held symbol (import it: riskgate marks import)")
    usable = {s: v for s, v in var.platform_exposure(book, marks).items() if s in found.changes}
    report = pb.VarReport(scenarios=len(found.days), lookback_days=lookback, horizon_days=horizon,
                          first_day=date_of(found.days[0]), last_day=date_of(found.days[-1]),
                          missing_history=list(found.missing), short_history=list(found.short), computed_ms=now_ms,
                          net_exposure={s: fmt(v) for s, v in usable.items()})
    if account is not None:
        positions = book.records[account][1]
        lacking = sorted({p.symbol for p in positions if p.quantity} - set(found.changes))
        if lacking:
            raise VarError("account_id", f"holds {', '.join(lacking)} without mark history")
        figures = var.figures(var.exact_losses(var.exposure_of(positions, marks), found), confidences)
        report.accounts.append(_subject(request.account_id, figures))
        report.accounts_valued = 1
    else:
        losses = var.exact_losses(usable, found)
        report.platform.CopyFrom(_subject("platform", var.figures(losses, confidences)))
        scan = await asyncio.to_thread(var.rank_accounts, book, marks, found, confidences, top)
        report.accounts.extend(_subject(a.account_id, a.figures) for a in scan.ranked)
        report.accounts_valued, report.accounts_left_out = scan.valued, scan.left_out
    return report


def _subject(name: str, figures: Sequence[var.Figure]) -> pb.VarSubject:
    return pb.VarSubject(subject=name, figures=[
        pb.VarFigure(confidence=fmt(f.confidence), var=fmt(f.var), expected_shortfall=fmt(f.expected_shortfall))
        for f in figures])


async def backtest_var(client: aioredis.Redis, keys: MonitorKeys, book: Book, markets: Mapping[str, Market],
                       request: pb.BacktestRequest, now_ms: int) -> pb.BacktestReport:
    confidence = _confidence("confidence", request.confidence) if request.confidence else Decimal("0.99")
    days = _days("days", request.days, DEFAULT_BACKTEST_DAYS, MAX_DAYS)
    lookback = _days("lookback_days", request.lookback_days, DEFAULT_BACKTEST_LOOKBACK, MAX_DAYS)
    horizon = _days("horizon_days", request.horizon_days, 1, MAX_HORIZON)
    marks = marks_of(markets)
    if request.account_id:
        positions = book.records[_account(book, request.account_id)][1]
        exposure = var.exposure_of([p for p in positions if p.symbol in marks], marks)
        lacking = sorted({p.symbol for p in positions if p.quantity} - set(marks))
        if lacking:
            raise VarError("account_id", f"holds {', '.join(lacking)} without a mark")
        left_out: list[str] = []
    else:
        exposure = var.platform_exposure(book, marks)
        left_out = sorted(set(held_symbols(book)) - set(exposure))
    found = await load_scenarios(client, keys, sorted(exposure), now_ms, lookback + days, horizon)
    if found.missing:
        raise VarError("account_id" if request.account_id else "days",
                       f"no mark history of {', '.join(found.missing)}")
    # Exact losses and a window per tested day: CPU-bound, so off the event loop.
    losses = await asyncio.to_thread(var.exact_losses, exposure, found)
    result = await asyncio.to_thread(var.backtest, losses, confidence, days, lookback)
    tested = found.days[len(found.days) - result.days:]
    return pb.BacktestReport(
        subject=request.account_id or "platform", confidence=fmt(confidence), days=result.days,
        lookback_days=lookback, exceptions=result.exceptions,
        exception_days=[date_of(found.days[i]) for i in result.exception_days], kupiec_lr=f"{result.kupiec_lr:.6f}",
        rejected=result.rejected, zone=result.zone, first_day=date_of(tested[0]), last_day=date_of(tested[-1]),
        symbols_without_mark=left_out)


# ---- Historical worst moves as stress scenarios --------------------------------------------

async def historical_scenarios(client: aioredis.Redis, keys: MonitorKeys, symbols: Sequence[str], now_ms: int,
                               lookback: int) -> list[Scenario]:
    """Each symbol's worst fall and worst rise over one day of the lookback (each over the days
    that symbol has), and the worst day down and up of the symbols together (their mean move)."""
    if lookback > MAX_DAYS:
        raise VarError("historical_lookback_days", f"at most {MAX_DAYS}, not {lookback}")
    last = today(now_ms) - 1
    closes = await daily_closes(client, keys, symbols, last - lookback, last)
    per_symbol = {s: var.scenarios({s: days}, last, lookback, 1) for s, days in closes.items() if days}
    moves = {s: found.changes[s] for s, found in per_symbol.items() if found.days}
    if not moves:
        raise VarError("historical_lookback_days", f"no mark history in the last {lookback} days "
                                                   "(import it: riskgate marks import)")
    span = f"{lookback}d"
    result = [Scenario(f"historical worst fall per symbol ({span})", {s: _bounded(min(c)) for s, c in moves.items()}),
              Scenario(f"historical worst rise per symbol ({span})", {s: _bounded(max(c)) for s, c in moves.items()})]
    joint = var.scenarios({s: closes[s] for s in moves}, last, lookback, 1)
    if joint.days:
        mean = [sum((joint.changes[s][i] for s in moves), Decimal(0)) / len(moves) for i in range(len(joint.days))]
        for label, pick in (("worst day down", min), ("worst day up", max)):
            i = mean.index(pick(mean))
            result.append(Scenario(f"historical {label} {date_of(joint.days[i])}",
                                   {s: _bounded(joint.changes[s][i]) for s in moves}))
    return result


def _bounded(shock: Decimal) -> Decimal:
    """A historical change as a stress shock: within the shocks a stress test takes, to 8 places."""
    return min(stress.MAX_SHOCK, max(_LOWEST_SHOCK, shock.quantize(Decimal("1e-8"))))
