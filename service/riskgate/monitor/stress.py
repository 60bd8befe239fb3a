"""Stress tests: every account re-valued at shocked marks (mark x (1 + shock)), and what the
insurance fund would have to cover.

The scan over all accounts is numpy float over a snapshot of the column-wise book (the live
columns are never touched): per symbol, its holders' unrealised PnL and tiered maintenance
at the shocked mark, summed into fresh per-account arrays. Floats only screen, as elsewhere
in the monitor: every account reported (the largest shortfalls, the largest exposures, the
Cover-1/Cover-2 accounts), every account whose float equity is near or below zero (the
shortfall total) and every account near the liquidation line (the count) is recomputed
exactly in Decimal from its record. Platform equity and maintenance totals are float sums
rounded to the cent (labelled approximate).

Conventions: equity = balance + sum quantity x (shocked mark - entry); maintenance = sum
notional x MMR - cum of the notional's tier (notional at the shocked mark, as exact.py);
liquidated = something at risk and maintenance >= equity (ratio >= 1, or equity <= 0);
shortfall = max(0, -equity): what is left for the insurance fund once the account's
collateral is gone. Cover-1 / Cover-2: the largest one / two accounts' shortfall.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import numpy.typing as npt

from riskgate.book.specs import PositionSpec
from riskgate.monitor.columns import AccountColumns, TierColumns
from riskgate.monitor.exact import RATIO_QUANTUM, Market
from riskgate.values.money import ZERO

CENT = Decimal("0.01")
DEFAULT_TOP = 10
MAX_TOP = 100
MAX_SCENARIOS = 101
# A shock is a fraction of the mark: > -1 (the mark stays positive) and at most +10 (+1000%).
MIN_SHOCK = Decimal(-1)
MAX_SHOCK = Decimal(10)
# At most this many accounts at or below zero equity are recomputed exactly per scenario;
# beyond it the shortfall total is the float sum rounded to the cent (and said so).
EXACT_LIMIT = 20_000
# Floats screen within this relative margin (of the account's balance and gross notional).
_RELATIVE = 1e-9
_ABSOLUTE = 1e-6


class StressError(ValueError):
    """A request that cannot be run; `field` names what is wrong."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Scenario:
    """The shock per symbol (a fraction: -0.2 = -20%); symbols not named keep their mark."""

    label: str
    shocks: Mapping[str, Decimal]


@dataclass(frozen=True)
class AccountStress:
    account_id: str
    balance: Decimal
    equity: Decimal
    maintenance: Decimal
    liquidated: bool
    shortfall: Decimal

    @property
    def ratio_shown(self) -> str:
        if self.maintenance <= 0:
            return "0"
        if self.equity <= 0:
            return "inf"
        return _fmt(self.maintenance / self.equity, RATIO_QUANTUM)


@dataclass(frozen=True)
class Exposure:
    account_id: str
    symbol: str
    quantity: Decimal
    shocked_mark: Decimal
    notional: Decimal
    # The position over the symbol's open interest (the larger of the long and short totals).
    share: Decimal


@dataclass(frozen=True)
class Cover:
    """The largest `len(accounts)` shortfalls against the fund: covered when fund >= amount;
    margin = fund - amount (negative: what the fund lacks)."""

    amount: Decimal
    accounts: tuple[str, ...]
    fund: Decimal

    @property
    def covered(self) -> bool:
        return self.fund >= self.amount

    @property
    def margin(self) -> Decimal:
        return self.fund - self.amount


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    marks: Mapping[str, Decimal]  # the shocked marks of the symbols shocked
    accounts: int  # valued (every held symbol has a mark)
    unvalued: int  # holding a symbol without a mark: left out of everything
    missing_marks: tuple[str, ...]
    total_equity: Decimal  # float sum, rounded to the cent
    total_maintenance: Decimal  # float sum, rounded to the cent
    total_shortfall: Decimal
    shortfall_exact: bool
    accounts_short: int
    liquidations: int
    top_shortfalls: tuple[AccountStress, ...]
    top_exposures: tuple[Exposure, ...]
    cover_1: Cover
    cover_2: Cover


@dataclass
class Book:
    """A consistent copy of what the stress test reads from the columns (taken in one go on
    the event loop; the computation may then run elsewhere while the columns move on)."""

    ids: list[str]
    balance: npt.NDArray[np.float64]
    records: list[tuple[Decimal, tuple[PositionSpec, ...]]]
    # symbol -> (account indices, signed quantities, entry prices)
    holders: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    open_interest: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


def snapshot(columns: AccountColumns) -> Book:
    n = len(columns)
    return Book(ids=list(columns.ids), balance=columns.balance[:n].copy(), records=list(columns.records),
                holders={symbol: (h.account[:h.n].copy(), h.quantity[:h.n].copy(), h.entry[:h.n].copy())
                         for symbol, h in columns.holders.items() if h.n},
                open_interest=dict(columns.open_interest))


def parse_shock(field_name: str, text: str) -> Decimal:
    from riskgate.values.money import DecimalFormatError, parse_signed

    try:
        shock = parse_signed(text.strip())
    except DecimalFormatError as exc:
        raise StressError(field_name, f"a signed fraction of the mark such as '-0.2' (-20%): {exc}") from None
    if not MIN_SHOCK < shock <= MAX_SHOCK:
        raise StressError(field_name, f"a shock must be > -1 (the mark stays positive) and at most {MAX_SHOCK}, "
                                      f"not {text.strip()!r}")
    return shock


def grid(start: Decimal, stop: Decimal, step: Decimal) -> list[Decimal]:
    """start, start + step, ... up to stop inclusive (exact decimals). Raises StressError."""
    if step <= 0:
        raise StressError("grid_step", "must be > 0")
    if stop < start:
        raise StressError("grid_to", "must be at or above grid_from")
    count = int((stop - start) / step) + 1
    if count > MAX_SCENARIOS:
        raise StressError("grid_step", f"at most {MAX_SCENARIOS} scenarios, not {count}")
    return [start + i * step for i in range(count)]


def percent(shock: Decimal) -> str:
    text = _plain(shock * 100)
    return f"+{text}%" if shock > 0 else f"{text}%"


def uniform(shock: Decimal, symbols: Sequence[str], group: Sequence[str] = ()) -> Scenario:
    """One shock to every symbol (or only the group's)."""
    chosen = list(group) if group else list(symbols)
    label = f"{percent(shock)} " + (",".join(group) if group else "all")
    return Scenario(label=label, shocks={symbol: shock for symbol in chosen})


class _Layout:
    """What every scenario reuses: the holders of every symbol with a mark, concatenated
    (account, quantity, size), each symbol a slice sorted by size (so at any mark its notionals
    are sorted too: each tier is a contiguous run, found by a search per cap, and the largest
    positions are the slice's end); its tier arrays; and per account the entry cost
    (sum quantity x entry) and the gross notional at the unshocked marks."""

    def __init__(self, book: Book, markets: Mapping[str, Market], listed: int) -> None:
        self.n = len(book.ids)
        self.blind = np.zeros(self.n, dtype=bool)
        self.missing: list[str] = []
        self.slices: list[tuple[str, int, int, TierColumns, npt.NDArray[np.int64]]] = []
        self.base: list[float] = []
        parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
        at = 0
        for symbol in sorted(book.holders):
            accounts, quantity, entry = book.holders[symbol]
            market = markets.get(symbol)
            if market is None or market.mark is None:
                self.missing.append(symbol)
                self.blind[accounts] = True
                continue
            order = np.argsort(np.abs(quantity))
            k = min(listed, len(accounts))
            self.slices.append((symbol, at, at + len(accounts), TierColumns(market.tiers),
                                np.arange(at + len(accounts) - k, at + len(accounts))))
            parts.append((accounts[order], quantity[order], entry[order]))
            self.base.append(float(market.mark))
            at += len(accounts)
        self.account = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        self.quantity = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        self.size = np.abs(self.quantity)
        cost = self.quantity * (np.concatenate([p[2] for p in parts]) if parts else np.zeros(0))
        self.cost = np.bincount(self.account, weights=cost, minlength=self.n)
        base = np.concatenate([np.full(stop - start, mark) for (_, start, stop, _, _), mark
                               in zip(self.slices, self.base, strict=True)]) if parts else np.zeros(0)
        self.gross = np.bincount(self.account, weights=self.size * base, minlength=self.n)


def run(book: Book, markets: Mapping[str, Market], scenarios: Sequence[Scenario], top: int = DEFAULT_TOP,
        fund: Decimal = ZERO) -> list[ScenarioResult]:
    """Every scenario over every account of the book. Pure: reads the book and the markets."""
    layout = _Layout(book, markets, max(top, 2))
    return [_scenario(book, markets, layout, scenario, top, fund) for scenario in scenarios]


def _scenario(book: Book, markets: Mapping[str, Market], layout: _Layout, scenario: Scenario, top: int,
              fund: Decimal) -> ScenarioResult:
    n = layout.n
    marks = shocked_marks(markets, scenario)
    entries = len(layout.account)
    notional = np.empty(entries)
    value = np.empty(entries)
    maintenance = np.empty(entries)
    exposure_candidates: list[tuple[float, int, str]] = []
    growth = 1.0
    for (symbol, start, stop, tiers, largest), base in zip(layout.slices, layout.base, strict=True):
        mark = float(marks[symbol])
        growth = max(growth, mark / base)
        np.multiply(layout.size[start:stop], mark, out=notional[start:stop])
        np.multiply(layout.quantity[start:stop], mark, out=value[start:stop])
        _maintenance(tiers, notional[start:stop], maintenance[start:stop])
        for slot in largest.tolist():
            exposure_candidates.append((float(notional[slot]), int(layout.account[slot]), symbol))
    # Per account sums, into fresh arrays (the live columns are never touched).
    upnl = np.bincount(layout.account, weights=value, minlength=n) - layout.cost
    mm = np.bincount(layout.account, weights=maintenance, minlength=n)
    gross = layout.gross * growth  # at least the gross notional at the shocked marks: a margin only
    blind = layout.blind
    valued = ~blind
    balance = book.balance
    equity = balance + upnl
    tolerance = _RELATIVE * (np.abs(balance) + gross + np.abs(upnl)) + _ABSOLUTE
    exact = _Exact(book, markets, marks)

    # Liquidations: the float decision, except near the line, where it is decided exactly.
    at_risk = valued & (mm > 0)
    liquidated = at_risk & (mm >= equity)
    near = np.flatnonzero(at_risk & (np.abs(mm - equity) <= tolerance))
    liquidations = int(liquidated.sum())
    for index in near.tolist():
        liquidations += int(exact(index).liquidated) - int(liquidated[index])

    # Shortfalls: every account at or near zero equity recomputed exactly (when few enough).
    short = np.flatnonzero(valued & (equity < tolerance))
    shortfall_exact = len(short) <= EXACT_LIMIT
    if shortfall_exact:
        figures = [f for f in (exact(index) for index in short.tolist()) if f.shortfall > 0]
        total_shortfall = sum((f.shortfall for f in figures), ZERO)
        accounts_short = len(figures)
    else:
        deficit = np.maximum(-equity[short], 0.0)
        total_shortfall = _cent(float(deficit.sum()))
        accounts_short = int((deficit > 0).sum())
        k = min(len(short), 2 * max(top, 2) + 10)
        chosen = short[np.argpartition(equity[short], k - 1)[:k]] if k else short
        figures = [f for f in (exact(index) for index in chosen.tolist()) if f.shortfall > 0]
    figures.sort(key=lambda f: (-f.shortfall, f.account_id))

    exposures = _exposures(book, marks, exposure_candidates, top)
    cover_1 = Cover(amount=sum((f.shortfall for f in figures[:1]), ZERO),
                    accounts=tuple(f.account_id for f in figures[:1]), fund=fund)
    cover_2 = Cover(amount=sum((f.shortfall for f in figures[:2]), ZERO),
                    accounts=tuple(f.account_id for f in figures[:2]), fund=fund)
    return ScenarioResult(
        scenario=scenario, marks={s: marks[s] for s in scenario.shocks if s in marks},
        accounts=int(valued.sum()), unvalued=int(blind.sum()), missing_marks=tuple(layout.missing),
        total_equity=_cent(float(equity[valued].sum())), total_maintenance=_cent(float(mm[valued].sum())),
        total_shortfall=total_shortfall, shortfall_exact=shortfall_exact, accounts_short=accounts_short,
        liquidations=liquidations, top_shortfalls=tuple(figures[:top]), top_exposures=exposures,
        cover_1=cover_1, cover_2=cover_2)


def _maintenance(tiers: TierColumns, notional: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None:
    """TierColumns.maintenance over notionals sorted ascending: tier k is the run of notionals
    above cap k-1 and at or below cap k (the last tier also beyond every cap)."""
    bounds = np.searchsorted(notional, tiers.caps, side="right").tolist()
    start = 0
    for k in range(tiers.last + 1):
        stop = len(notional) if k == tiers.last else bounds[k]
        if stop > start:
            np.multiply(notional[start:stop], tiers.mmr[k], out=out[start:stop])
            out[start:stop] -= tiers.cum[k]
            start = stop


class _Exact:
    """account_stress, with each symbol's shocked mark and tier lookup prepared once."""

    def __init__(self, book: Book, markets: Mapping[str, Market], marks: Mapping[str, Decimal]) -> None:
        self.book = book
        self.symbols = {symbol: (marks[symbol], [t.cap for t in market.tiers.tiers], market.tiers.tiers)
                        for symbol, market in markets.items() if symbol in marks}

    def __call__(self, index: int) -> AccountStress:
        balance, positions = self.book.records[index]
        equity = balance
        maintenance = ZERO
        symbols = self.symbols
        for position in positions:
            quantity = position.quantity
            mark, caps, tiers = symbols[position.symbol]
            equity += quantity * (mark - position.entry_price)
            notional = (quantity if quantity > 0 else -quantity) * mark
            at = bisect_left(caps, notional)
            tier = tiers[at] if at < len(tiers) else tiers[-1]
            maintenance += notional * tier.mmr - tier.maintenance_amount
        return AccountStress(account_id=self.book.ids[index], balance=balance, equity=equity,
                             maintenance=maintenance, liquidated=maintenance > 0 and maintenance >= equity,
                             shortfall=-equity if equity < 0 else ZERO)


def shocked_marks(markets: Mapping[str, Market], scenario: Scenario) -> dict[str, Decimal]:
    """Every symbol's mark, shocked where the scenario says (exact: mark x (1 + shock))."""
    marks: dict[str, Decimal] = {}
    for symbol, market in markets.items():
        if market.mark is not None:
            marks[symbol] = market.mark * (1 + scenario.shocks.get(symbol, ZERO))
    return marks


def account_stress(account_id: str, balance: Decimal, positions: Sequence[PositionSpec],
                   markets: Mapping[str, Market], marks: Mapping[str, Decimal]) -> AccountStress:
    """One account at the shocked marks, exactly (Decimal, as exact.py computes it)."""
    equity = balance
    maintenance = ZERO
    for position in positions:
        if not position.quantity:
            continue
        mark = marks[position.symbol]
        equity += position.quantity * (mark - position.entry_price)
        maintenance += markets[position.symbol].tiers.maintenance_margin(abs(position.quantity) * mark)
    return AccountStress(account_id=account_id, balance=balance, equity=equity, maintenance=maintenance,
                         liquidated=maintenance > 0 and maintenance >= equity, shortfall=max(ZERO, -equity))


def _exposures(book: Book, marks: Mapping[str, Decimal], candidates: list[tuple[float, int, str]], top: int
               ) -> tuple[Exposure, ...]:
    candidates.sort(key=lambda c: -c[0])
    exposures = []
    for _, index, symbol in candidates[:2 * top + 10]:
        position = next(p for p in book.records[index][1] if p.symbol == symbol)
        mark = marks[symbol]
        long, short = book.open_interest.get(symbol, (ZERO, ZERO))
        interest = max(long, short)
        exposures.append(Exposure(
            account_id=book.ids[index], symbol=symbol, quantity=position.quantity, shocked_mark=mark,
            notional=abs(position.quantity) * mark,
            share=abs(position.quantity) / interest if interest > 0 else ZERO))
    exposures.sort(key=lambda e: (-e.notional, e.account_id, e.symbol))
    return tuple(exposures[:top])


def _cent(value: float) -> Decimal:
    if not np.isfinite(value):
        return ZERO
    rounded = Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return rounded if rounded else ZERO  # never "-0.00"


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value else "0"
    return text


def _fmt(value: Decimal, quantum: Decimal) -> str:
    from decimal import ROUND_UP
    return _plain(value.quantize(quantum, rounding=ROUND_UP))
