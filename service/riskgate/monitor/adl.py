"""Auto-deleveraging (ADL) ranking and liquidation risk, read from the column-wise book.

ADL (BitMEX style, reference section 3), per position of one symbol and side:

    PnL%               = (mark value - entry value) / |entry value|, signed by side
                         (= Q x (mark - entry) / (|Q| x entry): a short gains when mark < entry)
    effective leverage = |mark value| / margin balance backing it
                         (the account's cross margin balance: balance + unrealised PnL of
                         every position; infinite when that is at or below zero)
    score              = PnL% x effective leverage   when PnL% > 0
                         PnL% / effective leverage   when PnL% < 0
                         0                           when PnL% = 0

The reference's other form, |mark value| / |mark value - bankruptcy value|, is the same
number: with the bankruptcy price BP = EP - backing / Q (the other positions at their marks),
Q x (M - BP) = Q x (M - EP) + backing = the margin balance, for one position or many. The
margin balance is used because it is that identity without the bankruptcy price's rounding
to the tick (which would make a ranking depend on the tick size) and it exists for every
position (a long backed even at a price of zero has no bankruptcy price).

Highest score first: the first to be deleveraged. Ties: account id ascending. Every figure
is compared as an exact fraction (`Fraction` of the Decimals), shown rounded to 12 places.
The numpy columns screen the whole side in floats; only the positions that can be listed are
recomputed exactly (exact.py).

Lights: the share of the side ranked ahead of a position, (rank - 1) / N, in 20% steps:
[0, 20%) 5 lights, [20%, 40%) 4, [40%, 60%) 3, [60%, 80%) 2, [80%, 100%) 1; that is
5 - floor(5 x (rank - 1) / N). The first in the queue always shows 5.

Liquidation risk, per position with a liquidation price: distance = |mark - liquidation
price| / mark (exact, from exact.py's tick-rounded liquidation price), nearest first (ties:
account id, then symbol). Screened in floats by the price move that takes the margin balance
down to the maintenance at the position's current tier, then recomputed exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.exact import AccountFigures, Market, account_figures
from riskgate.values.money import fmt

SIDES = ("long", "short")
SHOWN_QUANTUM = Decimal("1e-12")
INFINITE = "inf"
# Float scores within this (relative) of the cut-off are recomputed exactly too.
SCREEN_SLACK = 1e-6
# Liquidation risk: the float distance is an estimate (the tier at the liquidation price may
# differ); positions up to this factor (plus the absolute slack) beyond the last listed are
# recomputed exactly before the list is final.
DISTANCE_FACTOR = 2.0
DISTANCE_SLACK = 0.01
MIN_BATCH = 256

MarketOf = Callable[[str], Market | None]


class NoMark(Exception):
    """The symbol has no mark yet: nothing can be ranked."""


def lights(rank: int, population: int) -> int:
    """The 1-5 indicator of the position ranked `rank` (1 = first) among `population`."""
    if not 1 <= rank <= population:
        raise ValueError(f"rank {rank} outside 1..{population}")
    return 5 - (5 * (rank - 1)) // population


def shown(value: Fraction | None) -> str:
    """A fraction as a decimal rounded to 12 places (half even); None is infinite."""
    if value is None:
        return INFINITE
    with localcontext() as context:
        context.prec = 60
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
        return fmt(decimal.quantize(SHOWN_QUANTUM, rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class AdlFigures:
    pnl_fraction: Fraction
    effective_leverage: Fraction | None  # None: infinite (no positive margin balance backs it)
    score: Fraction | None  # None: infinite (a gain on a position nothing backs)

    @property
    def key(self) -> tuple[int, Fraction]:
        """Larger first in the queue."""
        return (1, Fraction(0)) if self.score is None else (0, self.score)


def adl_figures(quantity: Decimal, entry_price: Decimal, mark: Decimal, margin_balance: Decimal) -> AdlFigures:
    entry_value = abs(quantity) * entry_price
    pnl = Fraction(quantity * (mark - entry_price)) / Fraction(entry_value) if entry_value else Fraction(0)
    if margin_balance <= 0:
        return AdlFigures(pnl, None, None if pnl > 0 else Fraction(0))
    leverage = Fraction(abs(quantity) * mark) / Fraction(margin_balance)
    score = pnl * leverage if pnl > 0 else pnl / leverage if pnl < 0 else Fraction(0)
    return AdlFigures(pnl, leverage, score)


def float_scores(quantity: npt.NDArray[np.float64], entry: npt.NDArray[np.float64], mark: float,
                 margin_balance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The ADL scores in floats (for screening only)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.abs(quantity)
        pnl = np.where(entry > 0, quantity * (mark - entry) / (size * entry), 0.0)
        leverage = size * mark / margin_balance
        backed = np.where(pnl > 0, pnl * leverage, np.where(pnl < 0, pnl / leverage, 0.0))
        unbacked = np.where(pnl > 0, np.inf, 0.0)
        return np.where(margin_balance > 0, backed, unbacked)


def screened(scores: npt.NDArray[np.float64], limit: int, uncertain: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """The positions (indices into scores) that can be among the `limit` highest: those at or
    above the limit-th highest float score less the slack, and the uncertain ones."""
    if len(scores) <= limit:
        return np.arange(len(scores), dtype=np.int64)
    cutoff = float(-np.partition(-scores, limit - 1)[limit - 1])
    if np.isinf(cutoff) and cutoff > 0:
        keep = scores == np.inf
    else:
        keep = scores >= cutoff - SCREEN_SLACK * max(1.0, abs(cutoff))
    return np.nonzero(keep | uncertain)[0].astype(np.int64)


@dataclass(frozen=True)
class AdlEntry:
    account_id: str
    quantity: Decimal
    entry_price: Decimal
    mark: Decimal
    margin_balance: Decimal
    bankruptcy_price: Decimal | None
    figures: AdlFigures
    rank: int
    lights: int


@dataclass(frozen=True)
class AdlRanking:
    symbol: str
    side: str
    mark: Decimal
    population: int
    entries: tuple[AdlEntry, ...]


def _figures_of(columns: AccountColumns, index: int, market_of: MarketOf, now_ms: int) -> AccountFigures:
    balance, positions = columns.records[index]
    markets = {}
    for position in positions:
        market = market_of(position.symbol)
        if market is not None:
            markets[position.symbol] = market
    return account_figures(columns.ids[index], balance, positions, markets, now_ms)


def adl_ranking(columns: AccountColumns, market_of: MarketOf, symbol: str, side: str, limit: int,
                now_ms: int) -> AdlRanking:
    """The first `limit` of the symbol's ADL queue on one side (exact), and its population."""
    market = market_of(symbol)
    if market is None or market.mark is None:
        raise NoMark(symbol)
    holders = columns.holders.get(symbol)
    if holders is None or not holders.n:
        return AdlRanking(symbol, side, market.mark, 0, ())
    quantity = holders.quantity[:holders.n]
    on_side = np.nonzero(quantity > 0 if side == "long" else quantity < 0)[0]
    population = len(on_side)
    if not population or limit <= 0:
        return AdlRanking(symbol, side, market.mark, population, ())
    accounts = holders.account[on_side]
    balance = columns.balance[accounts]
    upnl = columns.upnl[accounts]
    margin_balance = balance + upnl
    scores = float_scores(quantity[on_side], holders.entry[on_side], float(market.mark), margin_balance)
    # A margin balance near zero in floats may be on either side of it exactly.
    uncertain = np.abs(margin_balance) <= 1e-9 * (np.abs(balance) + np.abs(upnl)) + 1e-9
    exact: list[tuple[AdlFigures, str, Decimal, Decimal, AccountFigures]] = []
    for position in screened(scores, limit, uncertain).tolist():
        figures = _figures_of(columns, int(accounts[position]), market_of, now_ms)
        held = next((p for p in figures.positions if p.symbol == symbol), None)
        if held is None or (held.quantity > 0) != (side == "long"):
            continue
        exact.append((adl_figures(held.quantity, held.entry_price, held.mark, figures.margin_balance),
                      figures.account_id, held.quantity, held.entry_price, figures))
    exact.sort(key=lambda e: (-e[0].key[0], -e[0].key[1], e[1]))
    entries = []
    for rank, (adl, account_id, size, entry_price, figures) in enumerate(exact[:limit], start=1):
        held = next(p for p in figures.positions if p.symbol == symbol)
        entries.append(AdlEntry(account_id=account_id, quantity=size, entry_price=entry_price, mark=held.mark,
                                margin_balance=figures.margin_balance, bankruptcy_price=held.bankruptcy_price,
                                figures=adl, rank=rank, lights=lights(rank, population)))
    return AdlRanking(symbol, side, market.mark, population, tuple(entries))


@dataclass(frozen=True)
class RiskEntry:
    account_id: str
    symbol: str
    quantity: Decimal
    mark: Decimal
    liquidation_price: Decimal
    distance: Fraction
    margin_ratio: str

    @property
    def key(self) -> tuple[Fraction, str, str]:
        return (self.distance, self.account_id, self.symbol)


def _float_distances(columns: AccountColumns, symbol: str, mark: float
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Each holder's account index and estimated distance to liquidation: the move that takes
    the margin balance to the maintenance, the position's tier held fixed."""
    holders = columns.holders[symbol]
    n = holders.n
    accounts = holders.account[:n].copy()
    quantity = holders.quantity[:n]
    tiers = columns.tiers.get(symbol)
    size = np.abs(quantity)
    if tiers is None:
        mmr = np.zeros(n)
    else:
        mmr = tiers.mmr[np.minimum(np.searchsorted(tiers.caps, size * mark, side="left"), tiers.last)]
    room = columns.balance[accounts] + columns.upnl[accounts] - columns.mm[accounts]
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.abs(room) / (size * mark * (1 - np.sign(quantity) * mmr))
    return accounts, np.where(np.isfinite(distance), distance, np.inf)


def liquidation_risk(columns: AccountColumns, market_of: MarketOf, symbols: list[str], limit: int,
                     now_ms: int) -> list[RiskEntry]:
    """The `limit` positions nearest their liquidation price, exact, nearest first."""
    if limit <= 0:
        return []
    rows: list[tuple[float, int, str]] = []  # (estimated distance, account index, symbol)
    for symbol in symbols:
        market = market_of(symbol)
        holders = columns.holders.get(symbol)
        if market is None or market.mark is None or holders is None or not holders.n:
            continue
        accounts, distances = _float_distances(columns, symbol, float(market.mark))
        rows.extend(zip(distances.tolist(), accounts.tolist(), [symbol] * len(accounts), strict=True))
    rows.sort(key=lambda r: r[0])
    found: list[RiskEntry] = []
    batch = max(4 * limit, MIN_BATCH)
    start = 0
    cache: dict[int, AccountFigures] = {}
    while start < len(rows):
        if len(found) >= limit:
            bound = float(found[limit - 1].distance) * DISTANCE_FACTOR + DISTANCE_SLACK
            if rows[start][0] > bound:
                break
        for _, index, symbol in rows[start:start + batch]:
            figures = cache.get(index)
            if figures is None:
                figures = cache[index] = _figures_of(columns, index, market_of, now_ms)
            held = next((p for p in figures.positions if p.symbol == symbol), None)
            if held is None or held.liquidation_price is None or not held.mark:
                continue
            found.append(RiskEntry(
                account_id=figures.account_id, symbol=symbol, quantity=held.quantity, mark=held.mark,
                liquidation_price=held.liquidation_price,
                distance=Fraction(abs(held.mark - held.liquidation_price)) / Fraction(held.mark),
                margin_ratio=figures.ratio_shown))
        found.sort(key=lambda e: e.key)
        start += batch
    return found[:limit]
