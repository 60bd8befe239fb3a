"""Order-flow windows and metrics (pure): the reference's worked examples and the edges."""

from __future__ import annotations

from decimal import Decimal

from riskgate.monitor.flow import BUCKET_MS, AccountFlow, FlowFillSeen

D = Decimal
T0 = 1_700_000_000_000


def fill(at_ms: int, pnl: str, wash: bool = False) -> FlowFillSeen:
    return FlowFillSeen(at_ms=at_ms, symbol="BTCUSDT", realised_pnl=D(pnl), counterparty="", execution_id="e",
                        wash=wash)


def test_totals_when_rts9_example_1000_orders_10_fills_then_ratio_99() -> None:
    flow = AccountFlow()
    for i in range(100):  # 1,000 orders and 10 fills over 100 s
        flow.add_counts(T0 + i * 1000, (10, 10, 0, 0, 0, 0, 1 if i % 10 == 0 else 0))
    totals = flow.totals(T0 + 100_000, 600_000)
    assert (totals.orders, totals.fills) == (1000, 10)
    assert D(totals.orders) / totals.fills - 1 == D(99)


def test_totals_when_counts_older_than_window_then_left_out_and_pruned() -> None:
    flow = AccountFlow()
    flow.add_counts(T0, (5, 0, 5, 0, 5, 0, 0))
    flow.add_counts(T0 + 61_000, (3, 0, 3, 0, 3, 0, 0))
    assert flow.totals(T0 + 61_500, 60_000).rate_limited == 3
    flow.prune(T0 + 61_500 - 60_000)
    assert len(flow.buckets) == 1


def test_add_counts_when_batch_arrives_late_then_joins_newest_bucket_not_lost() -> None:
    flow = AccountFlow()
    flow.add_counts(T0 + 5 * BUCKET_MS, (1, 1, 0, 0, 0, 0, 0))
    flow.add_counts(T0, (2, 2, 0, 0, 0, 0, 0))
    assert flow.totals(T0 + 6 * BUCKET_MS, 60_000).orders == 3


def test_pnl_zscore_when_current_window_far_from_past_then_large_and_with_no_spread_then_none() -> None:
    hour = 3_600_000
    flow = AccountFlow()
    for i, pnl in enumerate(["100", "-100", "100", "-100"]):  # mean 0, sample sd 115.47
        flow.add_fill(fill(T0 + i * hour, pnl), (hour,))
    flow.add_fill(fill(T0 + 4 * hour, "1000"), (hour,))
    z, samples, total = flow.pnl_zscore(hour, T0 + 4 * hour + 1)
    assert samples == 4 and total == D(1000)
    assert z is not None and D("8.66") < z < D("8.67")  # 1000 / 115.47

    flat = AccountFlow()
    for i in range(3):
        flat.add_fill(fill(T0 + i * hour, "50"), (hour,))
    z, samples, _ = flat.pnl_zscore(hour, T0 + 2 * hour + 1)
    assert samples == 2 and z is None  # the current window equals every past one: nothing unusual


def test_pnl_zscore_when_windows_pass_without_fills_then_they_count_as_zero() -> None:
    hour = 3_600_000
    flow = AccountFlow()
    flow.add_fill(fill(T0, "10"), (hour,))
    z, samples, total = flow.pnl_zscore(hour, T0 + 3 * hour + 5)
    assert samples == 3 and total == D(0)  # past: 10, 0, 0
    assert z is not None
