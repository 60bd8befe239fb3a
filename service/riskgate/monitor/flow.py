"""Each account's order flow and fills over the windows the flow rules use, and the metrics
on them: pure, no I/O. Counts come from the gate's `order_flow` stream (book/flow.py), in
1-second buckets of the gate's time; fills keep their realised PnL and whether they were a
wash (the counterparty is the account itself or in its linked group).

Metrics (all exact: integers and Decimals):
- order_to_trade_ratio: orders / fills - 1 (MiFID II RTS 9), infinite with no fill;
- cancel_share: cancels / orders;
- rate_limit_rejections: orders refused for the account's rate;
- wash_trades: fills against the account itself or its linked group;
- realized_pnl: |sum of realised PnL|;
- realized_pnl_zscore: |current window's PnL - mean of its past windows| / their standard
  deviation, over tumbling windows of the rule's length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

BUCKET_MS = 1000
# Past windows kept per account for the PnL z-score.
PNL_HISTORY = 30
ORDERS, ACCEPTED, REJECTED, REDUCE_ONLY, RATE_LIMITED, CANCELS, FILLS = range(7)
INFINITE = Decimal("Infinity")


@dataclass(frozen=True)
class FlowFillSeen:
    at_ms: int
    symbol: str
    realised_pnl: Decimal
    counterparty: str
    execution_id: str
    wash: bool


@dataclass(frozen=True)
class Totals:
    orders: int = 0
    rejected: int = 0
    rate_limited: int = 0
    cancels: int = 0
    fills: int = 0


class AccountFlow:
    """One account's buckets and fills, pruned to the longest window in use."""

    __slots__ = ("buckets", "fills", "pnl_windows")

    def __init__(self) -> None:
        # [bucket start ms, orders, accepted, rejected, reduce_only, rate_limited, cancels, fills]
        self.buckets: deque[list[int]] = deque()
        self.fills: deque[FlowFillSeen] = deque()
        # For the z-score, per window length: (current window's start, its PnL, past sums).
        self.pnl_windows: dict[int, tuple[int, Decimal, deque[Decimal]]] = {}

    def add_counts(self, at_ms: int, counts: tuple[int, ...]) -> None:
        start = at_ms - at_ms % BUCKET_MS
        if self.buckets and self.buckets[-1][0] >= start:
            bucket = self.buckets[-1]  # a late batch joins the newest bucket: counts are never lost
        else:
            bucket = [start, 0, 0, 0, 0, 0, 0, 0]
            self.buckets.append(bucket)
        for i, value in enumerate(counts[:7]):
            bucket[i + 1] += value

    def add_fill(self, fill: FlowFillSeen, pnl_windows: tuple[int, ...]) -> None:
        self.fills.append(fill)
        for window_ms in pnl_windows:
            self._roll(window_ms, fill.at_ms)
            start, total, past = self.pnl_windows[window_ms]
            self.pnl_windows[window_ms] = (start, total + fill.realised_pnl, past)

    def _roll(self, window_ms: int, at_ms: int) -> None:
        start = at_ms - at_ms % window_ms
        current = self.pnl_windows.get(window_ms)
        if current is None:
            self.pnl_windows[window_ms] = (start, Decimal(0), deque(maxlen=PNL_HISTORY))
            return
        began, total, past = current
        if start <= began:
            return
        past.append(total)
        # Windows without a fill realised nothing: they count as zeros (at most the history).
        for _ in range(min((start - began) // window_ms - 1, PNL_HISTORY)):
            past.append(Decimal(0))
        self.pnl_windows[window_ms] = (start, Decimal(0), past)

    def prune(self, keep_after_ms: int) -> None:
        while self.buckets and self.buckets[0][0] + BUCKET_MS <= keep_after_ms:
            self.buckets.popleft()
        while self.fills and self.fills[0].at_ms < keep_after_ms:
            self.fills.popleft()

    @property
    def empty(self) -> bool:
        return not self.buckets and not self.fills and not self.pnl_windows

    def totals(self, now_ms: int, window_ms: int) -> Totals:
        since = now_ms - window_ms
        orders = rejected = rate_limited = cancels = fills = 0
        for bucket in reversed(self.buckets):
            if bucket[0] + BUCKET_MS <= since:
                break
            orders += bucket[ORDERS + 1]
            rejected += bucket[REJECTED + 1]
            rate_limited += bucket[RATE_LIMITED + 1]
            cancels += bucket[CANCELS + 1]
            fills += bucket[FILLS + 1]
        return Totals(orders, rejected, rate_limited, cancels, fills)

    def fills_within(self, now_ms: int, window_ms: int) -> list[FlowFillSeen]:
        since = now_ms - window_ms
        return [f for f in self.fills if f.at_ms >= since]

    def pnl_zscore(self, window_ms: int, now_ms: int) -> tuple[Decimal | None, int, Decimal]:
        """(|z| or None when there is no spread to measure against, samples, current PnL)."""
        if window_ms not in self.pnl_windows:
            return None, 0, Decimal(0)
        self._roll(window_ms, now_ms)
        _, total, past = self.pnl_windows[window_ms]
        n = len(past)
        if n < 2:
            return None, n, total
        mean = sum(past, Decimal(0)) / n
        variance = sum(((x - mean) ** 2 for x in past), Decimal(0)) / (n - 1)
        if variance <= 0:
            return (None if total == mean else INFINITE), n, total
        return abs(total - mean) / variance.sqrt(), n, total


def ratio_text(value: Decimal) -> str:
    if value == INFINITE:
        return "inf"
    text = f"{value.quantize(Decimal('0.000001')).normalize():f}"
    return text
