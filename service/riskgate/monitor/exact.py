"""Exact account figures for what the monitor reports and acts on: margin ratio (cross, at
mark, as the gate computes it), liquidation and bankruptcy prices, and the reduce-only
orders a tiered partial liquidation would send. Decimal throughout; the numpy columns only
pick the accounts worth computing exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from riskgate.book.specs import PositionSpec
from riskgate.engine.margin import liquidation_price, to_tick
from riskgate.values.money import ZERO, fmt
from riskgate.values.tiers import TierTable

RATIO_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Market:
    """What the monitor knows of one symbol: its tiers, tick and lot, and its latest mark."""

    tiers: TierTable
    tick: Decimal
    lot: Decimal
    mark: Decimal | None
    mark_ms: int
    max_age_ms: int


@dataclass(frozen=True)
class PositionFigures:
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    mark: Decimal
    notional: Decimal
    unrealized_pnl: Decimal
    maintenance: Decimal
    tier: int
    liquidation_price: Decimal | None
    bankruptcy_price: Decimal | None


@dataclass(frozen=True)
class AccountFigures:
    account_id: str
    balance: Decimal
    margin_balance: Decimal
    maintenance: Decimal
    positions: tuple[PositionFigures, ...]
    # A held symbol without a mark (figures cannot be computed), or whose mark is older than
    # its bound (figures computed, but not to be trusted to loosen anything).
    missing_mark: str = ""
    stale_mark: str = ""

    def ratio_at_least(self, level: Decimal) -> bool:
        """maintenance / margin balance >= level, exactly (no division). With nothing at risk
        the ratio is 0; with a margin balance at or below zero and something at risk, infinite."""
        if self.maintenance <= 0:
            return False
        if self.margin_balance <= 0:
            return True
        return self.maintenance >= level * self.margin_balance

    @property
    def ratio_shown(self) -> str:
        if self.maintenance <= 0:
            return "0"
        if self.margin_balance <= 0:
            return "inf"
        return fmt((self.maintenance / self.margin_balance).quantize(RATIO_QUANTUM, rounding=ROUND_UP))

    @property
    def position_value(self) -> Decimal:
        return sum((p.notional for p in self.positions), ZERO)


def account_figures(account_id: str, balance: Decimal, positions: Sequence[PositionSpec],
                    markets: Mapping[str, Market], now_ms: int) -> AccountFigures:
    missing = stale = ""
    valued: list[tuple[PositionSpec, Market, Decimal, Decimal, Decimal, int]] = []
    upnl_total = mm_total = ZERO
    for position in positions:
        if not position.quantity:
            continue
        market = markets.get(position.symbol)
        if market is None or market.mark is None:
            missing = missing or position.symbol
            continue
        if now_ms - market.mark_ms > market.max_age_ms:
            stale = stale or position.symbol
        mark = market.mark
        notional = abs(position.quantity) * mark
        upnl = position.quantity * (mark - position.entry_price)
        tier = market.tiers.for_notional(notional) or market.tiers.tiers[-1]
        maintenance = notional * tier.mmr - tier.maintenance_amount
        valued.append((position, market, notional, upnl, maintenance, tier.index))
        upnl_total += upnl
        mm_total += maintenance
    figures = []
    for position, market, notional, upnl, maintenance, tier in valued:
        other_mm = mm_total - maintenance
        other_upnl = upnl_total - upnl
        figures.append(PositionFigures(
            symbol=position.symbol, quantity=position.quantity, entry_price=position.entry_price,
            mark=market.mark or ZERO, notional=notional, unrealized_pnl=upnl, maintenance=maintenance, tier=tier,
            liquidation_price=liquidation_price(market.tiers, position.quantity, position.entry_price, balance,
                                                other_mm, other_upnl, market.tick),
            bankruptcy_price=bankruptcy_price(position.quantity, position.entry_price, balance + other_upnl,
                                              market.tick)))
    return AccountFigures(account_id=account_id, balance=balance, margin_balance=balance + upnl_total,
                          maintenance=mm_total, positions=tuple(figures), missing_mark=missing, stale_mark=stale)


def bankruptcy_price(quantity: Decimal, entry_price: Decimal, backing: Decimal, tick: Decimal) -> Decimal | None:
    """The mark at which the margin balance is exactly zero, the other positions at their
    marks: backing + Q x (P - EP) = 0. None when there is none (a long backed even at zero).
    Rounded to the tick against the trader, like the liquidation price."""
    if not quantity:
        return None
    price = entry_price - backing / quantity
    if price <= 0:
        return None
    return to_tick(price, tick, 1 if quantity > 0 else -1)


@dataclass(frozen=True)
class LiquidationOrder:
    """A reduce-only order the liquidation engine would send: close `quantity` of the
    position (the side that reduces it), limited at the bankruptcy price. `target_tier` 0:
    the whole position (no lower tier's maintenance is covered)."""

    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal | None
    target_tier: int
    remaining_quantity: Decimal
    maintenance_after: Decimal


def partial_liquidation(figures: AccountFigures, markets: Mapping[str, Market]) -> list[LiquidationOrder]:
    """Bybit/OKX tiered partial liquidation, cross: the largest positions first, each brought
    down to the highest lower tier whose maintenance margin the margin balance still covers
    (closing at the mark leaves the margin balance as it is); a position for which no lower
    tier does is closed in full. Stops once the margin balance covers the maintenance."""
    margin_balance = figures.margin_balance
    maintenance = figures.maintenance
    orders: list[LiquidationOrder] = []
    for position in sorted(figures.positions, key=lambda p: (-p.notional, p.symbol)):
        if margin_balance > maintenance:
            break
        market = markets[position.symbol]
        other = maintenance - position.maintenance
        size = abs(position.quantity)
        keep = ZERO
        kept_mm = ZERO
        target = 0
        for tier in reversed(market.tiers.tiers[:position.tier - 1]):
            # The most of the position that fits in the tier, in whole lots.
            fits = (tier.cap / position.mark / market.lot).to_integral_value(rounding=ROUND_DOWN) * market.lot
            if fits >= size:
                continue
            tier_mm = market.tiers.maintenance_margin(fits * position.mark)
            if margin_balance > other + tier_mm:
                keep, kept_mm, target = fits, tier_mm, tier.index
                break
        orders.append(LiquidationOrder(
            symbol=position.symbol, side="SELL" if position.quantity > 0 else "BUY", quantity=size - keep,
            limit_price=position.bankruptcy_price, target_tier=target,
            remaining_quantity=keep if position.quantity > 0 else -keep,
            maintenance_after=(other + kept_mm).quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)))
        maintenance = other + kept_mm
    return orders
