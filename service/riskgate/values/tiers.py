"""Tiered margin: derived floors and maintenance amounts, tier lookup, maintenance margin.

A tier covers floor < notional <= cap. The maintenance amount ("cum") is derived so that
maintenance margin is continuous across tier boundaries:
cum_1 = 0, cum_n = floor_n x (MMR_n - MMR_(n-1)) + cum_(n-1).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from decimal import Decimal

from riskgate.values.money import ZERO


class Tier:
    __slots__ = ("cap", "floor", "index", "maintenance_amount", "max_leverage", "mmr")

    def __init__(
        self, index: int, floor: Decimal, cap: Decimal, max_leverage: int, mmr: Decimal, cum: Decimal
    ) -> None:
        self.index = index
        self.floor = floor
        self.cap = cap
        self.max_leverage = max_leverage
        self.mmr = mmr
        self.maintenance_amount = cum

    def __repr__(self) -> str:
        return (
            f"Tier({self.index}, {self.floor}-{self.cap}, {self.max_leverage}x, "
            f"mmr={self.mmr}, cum={self.maintenance_amount})"
        )


class TierTable:
    """Ordered tiers with O(log n) lookup by notional."""

    __slots__ = ("_caps", "tiers")

    def __init__(self, tiers: Sequence[Tier]) -> None:
        self.tiers = tuple(tiers)
        self._caps = [t.cap for t in self.tiers]

    @classmethod
    def derive(cls, caps_leverages_mmrs: Sequence[tuple[Decimal, int, Decimal]]) -> TierTable:
        tiers: list[Tier] = []
        floor = ZERO
        cum = ZERO
        previous_mmr = ZERO
        for index, (cap, max_leverage, mmr) in enumerate(caps_leverages_mmrs, start=1):
            if tiers:
                cum = floor * (mmr - previous_mmr) + cum
            tiers.append(Tier(index, floor, cap, max_leverage, mmr, cum))
            floor = cap
            previous_mmr = mmr
        return cls(tiers)

    @property
    def max_notional(self) -> Decimal:
        return self._caps[-1]

    def for_notional(self, notional: Decimal) -> Tier | None:
        """The tier with floor < notional <= cap (tier 1 for zero); None beyond the last cap."""
        index = bisect_left(self._caps, notional)
        return self.tiers[index] if index < len(self.tiers) else None

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        tier = self.for_notional(notional) or self.tiers[-1]
        return notional * tier.mmr - tier.maintenance_amount

    def max_notional_at_leverage(self, leverage: int) -> Decimal:
        """The largest cap among tiers whose max leverage is at least `leverage` (0 if none)."""
        best = ZERO
        for tier in self.tiers:
            if tier.max_leverage >= leverage and tier.cap > best:
                best = tier.cap
        return best
