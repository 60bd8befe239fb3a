"""Historical-simulation value at risk, expected shortfall and their backtest.

Conventions (README "Value at risk"):
- A scenario is one past day d of the lookback: each symbol's relative change over the
  horizon h, close(d) / close(d - h) - 1, applied to today's positions at today's mark. Only
  complete UTC days count (the last is yesterday), and only days on which every symbol held
  (that has any history) has both closes: the scenarios are the same days for every subject.
- The loss of a subject in scenario d: -sum quantity x mark x change; the platform's subject
  is its net exposure (the sum of every account's quantity per symbol).
- With N scenarios at confidence q, the tail is the k = max(1, floor(N x (1 - q))) largest
  losses: VaR is the smallest of them (the k-th largest loss) and expected shortfall their mean
  (LCH: the mean of the 6 worst of 2,500). Both are floored at 0 and rounded up to the cent.
- Figures reported are computed in Decimal (34 significant digits); numpy floats only rank the
  accounts, and every account listed is recomputed exactly.
- Backtest: for each of the last T scenario days, VaR from the L scenario days before it,
  against that day's loss; an exception is a loss above VaR. Kupiec's proportion-of-failures
  LR = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x], rejected at 95% when LR > 3.841;
  Basel's traffic light by the binomial probability of at most x exceptions: green below 95%,
  yellow below 99.99%, red from there (for T = 250 at 99%: 0-4, 5-9, 10 or more).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext

import numpy as np
import numpy.typing as npt

from riskgate.book.specs import PositionSpec
from riskgate.monitor.stress import Book, StressError
from riskgate.values.money import ZERO

CENT = Decimal("0.01")
PRECISION = 34
KUPIEC_CRITICAL = 3.841  # chi-square, 1 degree of freedom, 95%
GREEN_BELOW = 0.95
YELLOW_BELOW = 0.9999
# The screen lists at most this many accounts beyond `top` for the exact recomputation.
SCREEN_SLACK = 100
_CHUNK = 4096


class VarError(StressError):
    """A VaR, backtest or mark-history request that cannot be answered; `field` names what is wrong."""


@dataclass(frozen=True)
class Scenarios:
    """The historical days and each symbol's change on them (exact)."""

    days: tuple[int, ...]  # day numbers since the epoch, oldest first
    changes: Mapping[str, tuple[Decimal, ...]]  # symbol -> change per day, aligned with days
    # Held symbols without any history: their holders are left out (named in the answer).
    missing: tuple[str, ...]
    # Symbols whose history is shorter than the lookback asked (they cut the scenarios down).
    short: tuple[str, ...]


def scenarios(closes: Mapping[str, Mapping[int, Decimal]], last_day: int, lookback: int, horizon: int
              ) -> Scenarios:
    """The scenario days in [last_day - lookback + 1, last_day] on which every symbol with any
    history has a change over `horizon` days."""
    first = last_day - lookback + 1
    missing = tuple(sorted(s for s, days in closes.items() if not days))
    with_history = {s: days for s, days in closes.items() if days}
    short = tuple(sorted(s for s, days in with_history.items()
                         if sum(1 for d in range(first, last_day + 1) if d in days and d - horizon in days) < lookback))
    # No symbol with history: no scenario at all (not every day, as all() of nothing would say).
    chosen = [d for d in range(first, last_day + 1) if with_history
              and all(d in days and d - horizon in days for days in with_history.values())]
    with localcontext() as context:
        context.prec = PRECISION
        changes = {s: tuple(days[d] / days[d - horizon] - 1 for d in chosen) for s, days in with_history.items()}
    return Scenarios(days=tuple(chosen), changes=changes, missing=missing, short=short)


def tail_size(count: int, confidence: Decimal) -> int:
    return max(1, int(count * (1 - confidence)))


@dataclass(frozen=True)
class Figure:
    confidence: Decimal
    var: Decimal
    expected_shortfall: Decimal


def exact_losses(exposure: Mapping[str, Decimal], found: Scenarios) -> list[Decimal]:
    """The subject's loss in every scenario: -sum (quantity x mark) x change. `exposure`:
    symbol -> quantity x mark, signed."""
    with localcontext() as context:
        context.prec = PRECISION
        losses = [ZERO] * len(found.days)
        for symbol, value in exposure.items():
            if not value:
                continue
            changes = found.changes[symbol]
            for i, change in enumerate(changes):
                losses[i] -= value * change
    return losses


def figures(losses: Sequence[Decimal], confidences: Sequence[Decimal]) -> list[Figure]:
    ordered = sorted(losses, reverse=True)
    result = []
    for confidence in confidences:
        k = tail_size(len(ordered), confidence)
        tail = ordered[:k]
        with localcontext() as context:
            context.prec = PRECISION
            es = sum(tail, ZERO) / k
        result.append(Figure(confidence, _loss(tail[-1]), _loss(es)))
    return result


def _loss(value: Decimal) -> Decimal:
    return max(ZERO, value).quantize(CENT, rounding=ROUND_CEILING)


def exposure_of(positions: Sequence[PositionSpec], marks: Mapping[str, Decimal]) -> dict[str, Decimal]:
    exposure: dict[str, Decimal] = {}
    for position in positions:
        if position.quantity:
            exposure[position.symbol] = exposure.get(position.symbol, ZERO) + position.quantity * marks[position.symbol]
    return exposure


def platform_exposure(book: Book, marks: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Net quantity x mark per symbol over every account (exact)."""
    net: dict[str, Decimal] = {}
    for _, positions in book.records:
        for position in positions:
            if position.quantity:
                net[position.symbol] = net.get(position.symbol, ZERO) + position.quantity
    return {symbol: quantity * marks[symbol] for symbol, quantity in net.items() if symbol in marks}


@dataclass(frozen=True)
class AccountFigures:
    account_id: str
    figures: tuple[Figure, ...]


@dataclass(frozen=True)
class AccountScan:
    ranked: tuple[AccountFigures, ...]  # largest VaR at the first confidence first
    valued: int  # accounts with positions, every symbol with history
    left_out: int  # accounts holding a symbol without history


def rank_accounts(book: Book, marks: Mapping[str, Decimal], found: Scenarios, confidences: Sequence[Decimal],
                  top: int) -> AccountScan:
    """Every account's VaR in float (chunks of accounts x scenarios), the largest `top` at the
    first confidence recomputed exactly and ranked by the exact figures."""
    n = len(book.ids)
    symbols = sorted(found.changes)
    column = {symbol: j for j, symbol in enumerate(symbols)}
    exposure = np.zeros((n, len(symbols)))
    blind = np.zeros(n, dtype=bool)
    held = np.zeros(n, dtype=bool)
    for symbol, (accounts, quantity, _) in book.holders.items():
        held[accounts] = True
        if symbol not in column or symbol not in marks:
            blind[accounts] = True
            continue
        np.add.at(exposure[:, column[symbol]], accounts, quantity * float(marks[symbol]))
    count = len(found.days)
    valued = held & ~blind
    if not count or not valued.any() or top == 0:
        return AccountScan((), int(valued.sum()), int((held & blind).sum()))
    changes = np.array([[float(c) for c in found.changes[s]] for s in symbols]) if symbols else np.zeros((0, count))
    k = tail_size(count, confidences[0])
    var = np.full(n, -np.inf)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        losses = -(exposure[start:stop] @ changes)
        var[start:stop] = np.partition(losses, count - k, axis=1)[:, count - k]
    var[~valued] = -np.inf
    candidates = _largest(var, top)
    ranked = []
    for index in candidates.tolist():
        balance_positions = book.records[index][1]
        figs = figures(exact_losses(exposure_of(balance_positions, marks), found), confidences)
        ranked.append(AccountFigures(book.ids[index], tuple(figs)))
    ranked.sort(key=lambda a: (-a.figures[0].var, a.account_id))
    return AccountScan(tuple(ranked[:top]), int(valued.sum()), int((held & blind).sum()))


def _largest(values: npt.NDArray[np.float64], top: int) -> npt.NDArray[np.int64]:
    """The indices of the `top` largest finite values and those within float noise of the last,
    at most `top` + SCREEN_SLACK of them (largest first, then book order): a flat history or a
    hedged book, where every VaR is about 0, must not send every account to Decimal."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) <= top:
        return finite
    order = finite[np.lexsort((finite, -values[finite]))][:top + SCREEN_SLACK]
    cut = values[order[top - 1]]
    margin = 1e-9 * abs(cut) + 1e-6
    return order[values[order] >= cut - margin]


@dataclass(frozen=True)
class BacktestResult:
    confidence: Decimal
    days: int  # T: days tested
    lookback: int  # L: days each day's VaR is computed from
    exceptions: int
    exception_days: tuple[int, ...]
    kupiec_lr: float
    rejected: bool
    zone: str


def backtest(losses: Sequence[Decimal], confidence: Decimal, days: int, lookback: int) -> BacktestResult:
    """The last `days` losses, each against the VaR of the `lookback` losses before it."""
    if len(losses) < lookback + 1:
        raise VarError("days", f"needs at least {lookback + 1} scenario days of history, has {len(losses)}")
    tested = min(days, len(losses) - lookback)
    exceptions = []
    k = tail_size(lookback, confidence)
    first = len(losses) - tested
    # The window of the `lookback` losses before day i, kept sorted as it slides (a bisect and a
    # shift per day, not a sort).
    window = sorted(losses[first - lookback:first])
    for i in range(first, len(losses)):
        # An exception is a loss above the VaR as reported (floored at 0, rounded up to the cent).
        if losses[i] > _loss(window[lookback - k]):
            exceptions.append(i)
        if i + 1 < len(losses):
            del window[bisect_left(window, losses[i - lookback])]
            insort(window, losses[i])
    x = len(exceptions)
    p = 1 - confidence
    lr = kupiec(tested, x, float(p))
    return BacktestResult(confidence=confidence, days=tested, lookback=lookback, exceptions=x,
                          exception_days=tuple(exceptions), kupiec_lr=lr, rejected=lr > KUPIEC_CRITICAL,
                          zone=zone(tested, x, float(p)))


def kupiec(days: int, exceptions: int, p: float) -> float:
    """Kupiec's proportion-of-failures likelihood ratio (0 log 0 taken as 0)."""
    t, x = days, exceptions
    null = (t - x) * math.log(1 - p) + x * math.log(p)
    rate = x / t
    alternative = (t - x) * (math.log(1 - rate) if rate < 1 else 0.0) + (x * math.log(rate) if x else 0.0)
    return max(0.0, -2 * null + 2 * alternative)


def zone(days: int, exceptions: int, p: float) -> str:
    """Basel's traffic light: the binomial probability of at most `exceptions` exceptions,
    summed in log space (T up to thousands without overflow; the zone thresholds are far from
    a float's resolution)."""
    if exceptions >= days:
        cumulative = 1.0
    else:
        log_p, log_q = math.log(p), math.log1p(-p)
        logs = [math.lgamma(days + 1) - math.lgamma(i + 1) - math.lgamma(days - i + 1) + i * log_p
                + (days - i) * log_q for i in range(exceptions + 1)]
        top = max(logs)
        cumulative = math.exp(top) * math.fsum(math.exp(v - top) for v in logs)
    if cumulative < GREEN_BELOW:
        return "green"
    return "yellow" if cumulative < YELLOW_BELOW else "red"
