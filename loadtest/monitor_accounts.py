"""Synthetic account books for the monitor benchmark: N accounts, every one holding the primary
symbol (BTCUSDT) and a share of them a second one (ETHUSDT), on the bundled configuration's
real tier tables and marks.

Seeded and deterministic. Balances are log-uniform between 1,000 and 500,000 USDT; the
notional each account holds is log-normal around twice its balance (a few near the 125x
tier limit), entries scatter around the mark, so margin ratios have a realistic shape: most
accounts far from any rule, a tail of about 1% at or past the 80% warning level (figures in the
report). Amounts are on the symbols' grids, as the gate would store them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from loadtest.workload import Market, load_markets
from riskgate.book.specs import AccountSnapshot, PositionSpec

PRIMARY = "BTCUSDT"
SECOND = "ETHUSDT"
SECOND_SHARE = 0.3
SEED = 20240801
BALANCES = (1_000.0, 500_000.0)
LEVERAGE = 20
# Effective leverage (notional / balance): log-normal, median 2, clipped to the 125x tier.
LEVERAGE_MEDIAN = 2.0
LEVERAGE_SIGMA = 1.2
LEVERAGE_MAX = 100.0
# Entry prices scatter around the mark by this much (one standard deviation).
ENTRY_SPREAD = 0.015

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Held:
    """One symbol's positions: which accounts hold it, signed quantity, entry price (on grid)."""

    market: Market
    accounts: npt.NDArray[np.int64]
    quantity: Floats
    entry: Floats

    @property
    def symbol(self) -> str:
        return self.market.symbol


@dataclass(frozen=True)
class Book:
    size: int
    prefix: str
    balance: Floats
    held: tuple[Held, ...]

    def account_id(self, index: int) -> str:
        return f"{self.prefix}{index:07d}"

    @property
    def markets(self) -> dict[str, Market]:
        return {h.symbol: h.market for h in self.held}

    def snapshots(self, start: int = 0, stop: int | None = None) -> Iterator[AccountSnapshot]:
        """Accounts start..stop as the gate stores them (exact decimals, on the symbols' grids)."""
        stop = self.size if stop is None else stop
        positions: list[list[PositionSpec]] = [[] for _ in range(stop - start)]
        for held in self.held:
            lot_places = _places(held.market.spec.lot_size)
            tick_places = _places(held.market.spec.tick_size)
            lo, hi = np.searchsorted(held.accounts, [start, stop])
            for index, quantity, entry in zip(held.accounts[lo:hi].tolist(), held.quantity[lo:hi].tolist(),
                                              held.entry[lo:hi].tolist(), strict=True):
                positions[index - start].append(PositionSpec(
                    symbol=held.symbol, quantity=Decimal(f"{quantity:.{lot_places}f}"),
                    entry_price=Decimal(f"{entry:.{tick_places}f}"), leverage=LEVERAGE))
        for offset, balance in enumerate(self.balance[start:stop].tolist()):
            yield AccountSnapshot(account_id=self.account_id(start + offset), balance=Decimal(f"{balance:.2f}"),
                                  positions=tuple(positions[offset]))


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def _on_grid(values: Floats, step: Decimal) -> Floats:
    places = _places(step)
    return np.round(np.round(values / float(step)) * float(step), places)


def _positions(rng: np.random.Generator, market: Market, accounts: npt.NDArray[np.int64], balance: Floats) -> Held:
    mark = float(market.mark)
    spec = market.spec
    leverage = np.clip(rng.lognormal(np.log(LEVERAGE_MEDIAN), LEVERAGE_SIGMA, len(accounts)), 0.05, LEVERAGE_MAX)
    size = np.maximum(_on_grid(balance[accounts] * leverage / mark, spec.lot_size), float(spec.min_quantity))
    sign = np.where(rng.random(len(accounts)) < 0.5, 1.0, -1.0)
    entry = _on_grid(mark * (1 + rng.normal(0.0, ENTRY_SPREAD, len(accounts))), spec.tick_size)
    return Held(market, accounts, sign * size, entry)


def generate(size: int, seed: int = SEED, prefix: str = "mb-", second_share: float = SECOND_SHARE,
             markets: dict[str, Market] | None = None, balances: tuple[float, float] = BALANCES) -> Book:
    """balances: the log-uniform range of the accounts' balances (USDT)."""
    markets = markets or {m.symbol: m for m in load_markets()}
    rng = np.random.default_rng(seed)
    balance = np.round(10 ** rng.uniform(np.log10(balances[0]), np.log10(balances[1]), size), 2)
    everyone = np.arange(size, dtype=np.int64)
    some = np.flatnonzero(rng.random(size) < second_share).astype(np.int64)
    held = (_positions(rng, markets[PRIMARY], everyone, balance), _positions(rng, markets[SECOND], some, balance))
    return Book(size, prefix, balance, held)
