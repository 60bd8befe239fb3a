"""Scaled-integer (fixed-point) copies of the money the pre-trade check multiplies and compares.

One global set of scales, so that figures of different symbols add up without rescaling:
quantities in units of 1e-8, prices in 1e-12 (the entry-price quantum), notionals and money
in 1e-20 (quantity x price, exact), rates (maintenance margin rate, band, fee) in 1e-8.

A conversion is exact or refused (`None`): a value with more fraction digits than its scale
is never rounded onto it. The check then leaves the decision to the decimal implementation,
so fixed point changes how fast a check is, never what it decides or reports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from riskgate.book.specs import SymbolSpec
from riskgate.values.tiers import TierTable

QUANTITY_SCALE = 10**8
PRICE_SCALE = 10**12
MONEY_SCALE = QUANTITY_SCALE * PRICE_SCALE  # a quantity times a price, exactly
RATE_SCALE = 10**8
# Money quantum (1e-8) in money units: what round_up / round_down snap to.
QUANTUM_UNITS = MONEY_SCALE // 10**8
# Initial margin divides a notional by a leverage. Every leverage of the form 2^a x 5^b up to
# MAX_LEVERAGE (1000) divides 10^9, so notional / leverage is exact at MONEY_SCALE x 10^9;
# for any other leverage the quotient does not terminate and the decimal path decides.
DIVISION_SCALE = 10**9
# Below these, the decimal implementation's 60 significant digits hold every sum and fee exactly
# (engine.fast_check says why): an account's money terms, and a symbol's money limits.
EXACT_MONEY_UNITS = 10**30 * MONEY_SCALE
LIMIT_BOUND = Decimal("1e23")

_Q = Decimal(QUANTITY_SCALE)
_P = Decimal(PRICE_SCALE)
_M = Decimal(MONEY_SCALE)
_R = Decimal(RATE_SCALE)
_MR = Decimal(MONEY_SCALE * RATE_SCALE)


def exact(value: Decimal, scale: Decimal) -> int | None:
    """value x scale as an int when that is a whole number, else None (never rounded)."""
    scaled = value * scale
    # Decimal against Decimal: cheaper than comparing with the int (which converts it back).
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def quantity_units(value: Decimal) -> int | None:
    return exact(value, _Q)


def price_units(value: Decimal) -> int | None:
    return exact(value, _P)


def money_units(value: Decimal) -> int | None:
    return exact(value, _M)


def leverage_factor(leverage: int) -> int | None:
    """DIVISION_SCALE / leverage when exact (the leverage terminates in decimal), else None."""
    factor, remainder = divmod(DIVISION_SCALE, leverage)
    return None if remainder else factor


# Indexed by leverage (0 unused): the exact factor, or None for a non-terminating leverage.
LEVERAGE_FACTORS: tuple[int | None, ...] = (None, *(leverage_factor(n) for n in range(1, 1001)))


class FixedTier(NamedTuple):
    number: int
    floor: int  # money units
    cap: int  # money units
    max_leverage: int
    mmr: int  # rate units
    cum: int  # money x rate units: notional x mmr - cum is the maintenance margin


class FixedSymbol:
    """A symbol's spec and tier table in scaled integers; built once per spec version."""

    __slots__ = (
        "band_ceiling",
        "band_floor",
        "caps",
        "fee",
        "lookup",
        "lot",
        "max_order_notional",
        "max_position_notional",
        "max_quantity",
        "min_notional",
        "min_quantity",
        "tick",
        "tier_orders",
        "tiers",
    )

    def __init__(self, lot: int, tick: int, min_quantity: int, max_quantity: int, min_notional: int,
                 max_order_notional: int, max_position_notional: int | None, band_ceiling: int, band_floor: int,
                 fee: int, tiers: tuple[FixedTier, ...]) -> None:
        self.lot = lot
        self.tick = tick
        self.min_quantity = min_quantity
        self.max_quantity = max_quantity
        self.min_notional = min_notional
        self.max_order_notional = max_order_notional
        self.max_position_notional = max_position_notional
        self.band_ceiling = band_ceiling
        self.band_floor = band_floor
        self.fee = fee
        self.tiers = tiers
        self.caps = [t.cap for t in tiers]
        # lookup[bisect_left(caps, notional)]: the tier of a notional, the last one beyond its cap
        # (TierTable.for_notional(n) or tiers[-1], in one index).
        self.lookup = (*tiers, tiers[-1])
        # The liquidation estimate's search order from each starting tier (that tier, then all).
        self.tier_orders = tuple((tier, *tiers) for tier in self.lookup)


def fixed_symbol(spec: SymbolSpec, tiers: TierTable, band_ceiling: Decimal, band_floor: Decimal
                 ) -> FixedSymbol | None:
    """The fixed-point copy of a symbol, or None when any figure does not fit its scale or a
    money limit reaches LIMIT_BOUND (the symbol is then checked by the decimal implementation
    alone)."""
    limits = [spec.max_order_notional, spec.min_notional, *(tier.cap for tier in tiers.tiers)]
    if spec.max_position_notional is not None:
        limits.append(spec.max_position_notional)
    if any(limit >= LIMIT_BOUND for limit in limits):
        return None
    figures = (
        exact(spec.lot_size, _Q), exact(spec.tick_size, _P), exact(spec.min_quantity, _Q),
        exact(spec.max_quantity, _Q), exact(spec.min_notional, _M), exact(spec.max_order_notional, _M),
        exact(band_ceiling, _R), exact(band_floor, _R), exact(spec.taker_fee_rate, _R),
    )
    if any(f is None for f in figures) or not figures[0] or not figures[1]:
        return None
    max_position: int | None = None
    if spec.max_position_notional is not None:
        max_position = exact(spec.max_position_notional, _M)
        if max_position is None:
            return None
    fixed_tiers = []
    for tier in tiers.tiers:
        floor, cap = exact(tier.floor, _M), exact(tier.cap, _M)
        mmr, cum = exact(tier.mmr, _R), exact(tier.maintenance_amount, _MR)
        if floor is None or cap is None or mmr is None or cum is None:
            return None
        fixed_tiers.append(FixedTier(tier.index, floor, cap, tier.max_leverage, mmr, cum))
    lot, tick, min_q, max_q, min_n, max_n, ceiling, floor_, fee = figures
    return FixedSymbol(lot, tick, min_q, max_q, min_n, max_n, max_position, ceiling, floor_, fee,  # type: ignore[arg-type]
                       tuple(fixed_tiers))
