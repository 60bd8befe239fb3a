"""A deterministic, realistic order flow shared by the gRPC runs and the in-process engine benchmark.

Thousands of accounts trade BTCUSDT, ETHUSDT and XRPUSDT with the bundled configuration's real
tier tables. Most orders should pass; a planned share should be rejected for the usual reasons
(oversized for the margin, priced outside the band, from a few accounts over their order rate)
and a share is reduce-only. Every order also carries what the matching engine will say if it is
allowed (a fill at its price or a cancel), so reservations are released as fast as they are made.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import msgspec

from riskgate.book.specs import SymbolSpec
from riskgate.config import load_config

BUY = 1
SELL = 2
LIMIT = 1
MARKET = 2
# Production feeds marks every second and fails closed after ~5 s; the feeder keeps them fresh.
MARK_MAX_AGE_MS = 5000
SYMBOL_WEIGHTS = {"BTCUSDT": 0.5, "ETHUSDT": 0.35, "XRPUSDT": 0.15}
BALANCES = (5_000, 10_000, 25_000, 50_000, 100_000, 250_000)
# riskgate holds one leverage per account and symbol, so each account keeps to one. XRPUSDT stays at or
# under its 10x unqualified cap and low enough that the oversized orders still fit a tier.
LEVERAGES = {"BTCUSDT": (5, 10, 20), "ETHUSDT": (5, 10, 20), "XRPUSDT": (2, 5)}
SMALL_BALANCE = 25_000


class Intent(StrEnum):
    NORMAL = "normal"
    MARGIN = "insufficient_margin"
    BAND = "price_band"
    RATE = "rate_limit"
    REDUCE = "reduce_only"


@dataclass(frozen=True)
class Mix:
    """Shares of the order flow by intent; the rest is NORMAL."""

    reduce_only: float = 0.10
    margin: float = 0.05
    band: float = 0.04
    rate_limited: float = 0.03
    market: float = 0.30
    fill: float = 0.60


@dataclass(frozen=True)
class WorkloadConfig:
    accounts: int = 4000
    seed: int = 20240611
    # Few accounts with a tiny order rate take `Mix.rate_limited` of the flow, so they hit their limit.
    hot_accounts: int = 6
    hot_orders_per_second: int = 2
    default_orders_per_second: int = 1000
    mix: Mix = field(default_factory=Mix)


@dataclass(frozen=True, slots=True)
class SeedPosition:
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class AccountSeed:
    account_id: str
    balance: Decimal
    kyc_level: int
    qualified: bool
    max_orders_per_second: int
    positions: tuple[SeedPosition, ...]


@dataclass(frozen=True, slots=True)
class Market:
    spec: SymbolSpec
    mark: Decimal

    @property
    def symbol(self) -> str:
        return self.spec.symbol


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    order_id: str
    account_id: str
    symbol: str
    side: int
    order_type: int
    quantity: str
    price: str
    leverage: int
    reduce_only: bool
    intent: Intent
    # What the matching engine reports once the order is allowed in full: a fill, else a cancel.
    fill: bool
    fill_price: str


def load_markets() -> list[Market]:
    config = load_config(None)
    marks = {m.symbol: m.price for m in config.marks}
    return [Market(msgspec.structs.replace(spec, mark_price_max_age_ms=MARK_MAX_AGE_MS), marks[spec.symbol])
            for spec in config.symbols if spec.symbol in SYMBOL_WEIGHTS]


def on_grid(value: float, step: Decimal) -> Decimal:
    return Decimal(int(value / float(step))) * step


def text(value: Decimal) -> str:
    return format(value, "f")


class Workload:
    """Accounts and markets, and a seeded order stream that continues from call to call."""

    def __init__(self, config: WorkloadConfig | None = None) -> None:
        self.config = config or WorkloadConfig()
        self.markets = {m.symbol: m for m in load_markets()}
        self._rng = random.Random(self.config.seed)
        self.leverage = {(f"lt-{n:05d}", symbol): self._rng.choice(choices)
                         for n in range(self.config.accounts) for symbol, choices in LEVERAGES.items()}
        self.accounts = self._make_accounts()
        self._hot = [a for a in self.accounts if a.max_orders_per_second][: self.config.hot_accounts]
        self._regular = [a for a in self.accounts if not a.max_orders_per_second]
        self._small = [a for a in self._regular if a.balance <= SMALL_BALANCE]
        self._balance = {a.account_id: float(a.balance) for a in self.accounts}
        # Positions as they will be if every planned fill happens: the flow leans towards reducing
        # big ones, so exposure (and the reject mix) stays steady over a long run.
        self._position: dict[tuple[str, str], float] = {}
        for account in self.accounts:
            for p in account.positions:
                self._position[(account.account_id, p.symbol)] = float(p.quantity)
        self._holders = sorted(self._position)
        self._symbols = list(SYMBOL_WEIGHTS)
        self._weights = list(SYMBOL_WEIGHTS.values())

    def _make_accounts(self) -> list[AccountSeed]:
        rng = self._rng
        accounts = []
        for n in range(self.config.accounts):
            hot = n < self.config.hot_accounts
            account_id = f"lt-{n:05d}"
            balance = Decimal(rng.choice(BALANCES))
            positions: tuple[SeedPosition, ...] = ()
            if rng.random() < 0.4:
                market = self.markets[rng.choice(list(SYMBOL_WEIGHTS))]
                mark = float(market.mark)
                quantity = on_grid(float(balance) * rng.uniform(0.5, 3.0) / mark, market.spec.lot_size)
                if quantity >= market.spec.min_quantity:
                    sign = 1 if rng.random() < 0.5 else -1
                    entry = on_grid(mark * rng.uniform(0.98, 1.02), market.spec.tick_size)
                    leverage = self.leverage[(account_id, market.symbol)]
                    positions = (SeedPosition(market.symbol, sign * quantity, entry, leverage),)
            accounts.append(AccountSeed(
                account_id=account_id,
                balance=balance,
                kyc_level=2,
                qualified=rng.random() < 0.1,
                max_orders_per_second=self.config.hot_orders_per_second if hot else 0,
                positions=positions,
            ))
        return accounts

    def orders(self, label: str, count: int) -> list[PlannedOrder]:
        return [self._order(f"{label}-{i:07d}") for i in range(count)]

    def _order(self, order_id: str) -> PlannedOrder:
        mix = self.config.mix
        roll = self._rng.random()
        if roll < mix.reduce_only:
            order = self._reduce_only(order_id)
            # Nothing left to reduce on the chosen position: a regular order instead.
            return order or self._regular_order(order_id, self._rng.choice(self._regular), Intent.NORMAL)
        roll -= mix.reduce_only
        if roll < mix.margin and self._small:
            return self._oversized(order_id)
        roll -= mix.margin
        if roll < mix.band:
            return self._regular_order(order_id, self._rng.choice(self._regular), Intent.BAND)
        roll -= mix.band
        if roll < mix.rate_limited and self._hot:
            return self._regular_order(order_id, self._rng.choice(self._hot), Intent.RATE)
        return self._regular_order(order_id, self._rng.choice(self._regular), Intent.NORMAL)

    def _regular_order(self, order_id: str, account: AccountSeed, intent: Intent) -> PlannedOrder:
        rng = self._rng
        market = self.markets[rng.choices(self._symbols, self._weights)[0]]
        spec = market.spec
        mark = float(market.mark)
        leverage = self.leverage[(account.account_id, market.symbol)]
        balance = self._balance[account.account_id]
        held = self._position.get((account.account_id, market.symbol), 0.0)
        side = BUY if rng.random() < 0.5 else SELL
        if abs(held) * mark > 2 * balance and rng.random() < 0.8:
            side = SELL if held > 0 else BUY
        quantity = on_grid(balance * rng.uniform(0.02, 0.5) / mark, spec.lot_size)
        quantity = max(quantity, on_grid(12.0 / mark, spec.lot_size) + spec.lot_size, spec.min_quantity)
        if intent == Intent.BAND:
            # Past the band by 3%: still outside it when the feeder has moved the mark a little.
            away = float(spec.price_band) + 0.03
            price = on_grid(mark * (1 + away if side == BUY else 1 - away), spec.tick_size)
            return self._make(order_id, account, market, side, LIMIT, quantity, price, leverage, False, intent, False)
        order_type = MARKET if rng.random() < self.config.mix.market else LIMIT
        price = on_grid(mark * rng.uniform(0.99, 1.01), spec.tick_size) if order_type == LIMIT else None
        fill = rng.random() < self.config.mix.fill
        return self._make(order_id, account, market, side, order_type, quantity, price, leverage, False, intent, fill)

    def _oversized(self, order_id: str) -> PlannedOrder:
        rng = self._rng
        account = rng.choice(self._small)
        market = self.markets[rng.choices(self._symbols, self._weights)[0]]
        mark = float(market.mark)
        leverage = self.leverage[(account.account_id, market.symbol)]
        # Three times what the balance carries at the account's leverage: inside every size and tier
        # limit, so the margin check is the one that says no.
        quantity = on_grid(self._balance[account.account_id] * leverage * 3 / mark, market.spec.lot_size)
        price = on_grid(mark, market.spec.tick_size)
        side = BUY if rng.random() < 0.5 else SELL
        return self._make(order_id, account, market, side, LIMIT, quantity, price, leverage, False, Intent.MARGIN,
                          False)

    def _reduce_only(self, order_id: str) -> PlannedOrder | None:
        rng = self._rng
        account_id, symbol = rng.choice(self._holders)
        held = self._position.get((account_id, symbol), 0.0)
        market = self.markets[symbol]
        spec = market.spec
        quantity = on_grid(abs(held) * rng.uniform(0.1, 0.5), spec.lot_size)
        if quantity < spec.min_quantity:
            return None
        account = self._by_id(account_id)
        side = SELL if held > 0 else BUY
        mark = float(market.mark)
        order_type = MARKET if rng.random() < 0.5 else LIMIT
        price = None
        if order_type == LIMIT:
            price = on_grid(mark * (rng.uniform(0.99, 1.0) if side == SELL else rng.uniform(1.0, 1.01)),
                            spec.tick_size)
        fill = rng.random() < self.config.mix.fill
        return self._make(order_id, account, market, side, order_type, quantity, price, 0, True, Intent.REDUCE, fill)

    def _by_id(self, account_id: str) -> AccountSeed:
        return self.accounts[int(account_id[3:])]

    def _make(self, order_id: str, account: AccountSeed, market: Market, side: int, order_type: int,
              quantity: Decimal, price: Decimal | None, leverage: int, reduce_only: bool, intent: Intent,
              fill: bool) -> PlannedOrder:
        if fill:
            key = (account.account_id, market.symbol)
            held = self._position.get(key, 0.0)
            self._position[key] = held + (float(quantity) if side == BUY else -float(quantity))
            if not held:
                self._holders.append(key)
        return PlannedOrder(
            order_id=order_id,
            account_id=account.account_id,
            symbol=market.symbol,
            side=side,
            order_type=order_type,
            quantity=text(quantity),
            price=text(price) if price is not None else "",
            leverage=leverage,
            reduce_only=reduce_only,
            intent=intent,
            fill=fill,
            fill_price=text(price if price is not None else on_grid(float(market.mark), market.spec.tick_size)),
        )
