"""The monitor's exact figures and the liquidation candidate's orders, against hand-computed
examples (reference: monitoring.md, sections 2 and "Worked examples")."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from riskgate.book.specs import PositionSpec
from riskgate.monitor.exact import Market, account_figures, bankruptcy_price, partial_liquidation
from riskgate.values.tiers import TierTable
from tests.support import BTC_TIERS

D = Decimal
NOW = 1_000_000


def market(tiers: Sequence[tuple[str, int, str]], mark: str, tick: str = "0.1", lot: str = "0.001") -> Market:
    return Market(tiers=TierTable.derive([(D(c), lev, D(m)) for c, lev, m in tiers]), tick=D(tick), lot=D(lot),
                  mark=D(mark), mark_ms=NOW, max_age_ms=60_000)


def test_partial_liquidation_when_okx_example_15000_contracts_covered_only_in_tier_1_then_close_13000() -> None:
    # Contracts of 1 at a mark of 1: tier caps 2,000 / 5,000 / 10,000 / 20,000 contracts,
    # MMR 1% / 1.5% / 2% / 3% (cum 0 / 10 / 35 / 135). 15,000 held: maintenance 315. A margin
    # balance of 50 covers tier 1's 20 (2,000 held) but not tier 2's 65: close 13,000.
    okx = market([("2000", 50, "0.01"), ("5000", 30, "0.015"), ("10000", 20, "0.02"), ("20000", 10, "0.03")],
                 mark="1", tick="0.0001", lot="1")
    figures = account_figures("okx", D(50), [PositionSpec("X", D(15000), D(1), 10)], {"X": okx}, NOW)
    assert (figures.maintenance, figures.margin_balance) == (D(315), D(50))
    assert figures.ratio_at_least(D(1)) and figures.ratio_shown == "6.3"
    orders = partial_liquidation(figures, {"X": okx})
    assert len(orders) == 1
    order = orders[0]
    assert (order.side, order.quantity, order.target_tier, order.remaining_quantity) == ("SELL", D(13000), 1, D(2000))
    assert order.maintenance_after == D(20)


def test_partial_liquidation_when_margin_covers_a_higher_lower_tier_then_stops_there() -> None:
    # Same position, margin balance 100: tier 3 (10,000 held, maintenance 165) is not covered,
    # tier 2 (5,000 held, maintenance 65) is: close 10,000, not 13,000.
    okx = market([("2000", 50, "0.01"), ("5000", 30, "0.015"), ("10000", 20, "0.02"), ("20000", 10, "0.03")],
                 mark="1", tick="0.0001", lot="1")
    figures = account_figures("okx", D(100), [PositionSpec("X", D(15000), D(1), 10)], {"X": okx}, NOW)
    orders = partial_liquidation(figures, {"X": okx})
    assert [(o.quantity, o.target_tier) for o in orders] == [(D(10000), 2)]


def test_partial_liquidation_when_no_lower_tier_is_covered_then_closes_all_at_bankruptcy_price() -> None:
    btc = market(BTC_TIERS, mark="49000")
    # 1 BTC long from 50,000 with 900 of balance: margin balance -100, bankruptcy 49,100.
    figures = account_figures("a", D(900), [PositionSpec("BTCUSDT", D(1), D(50000), 10)], {"BTCUSDT": btc}, NOW)
    assert figures.margin_balance == D(-100) and figures.ratio_shown == "inf"
    orders = partial_liquidation(figures, {"BTCUSDT": btc})
    assert [(o.side, o.quantity, o.target_tier, o.limit_price) for o in orders] == [("SELL", D(1), 0, D(49100))]


def test_account_figures_when_btc_long_10_at_49850_then_hand_computed_ratio_liquidation_and_bankruptcy() -> None:
    # 10 BTC long from 50,000, balance 5,000, mark 49,850: notional 498,500 in tier 3 (1%,
    # cum 1,300): maintenance 3,685; margin balance 5,000 - 1,500 = 3,500; ratio 1.052858
    # (rounded up). Liquidation price (5,000 + 1,300 - 500,000) / (0.1 - 10) = 49,868.68...,
    # 49,868.7 to the tick (up for a long). Bankruptcy 50,000 - 5,000 / 10 = 49,500.
    btc = market(BTC_TIERS, mark="49850")
    figures = account_figures("a", D(5000), [PositionSpec("BTCUSDT", D(10), D(50000), 10)], {"BTCUSDT": btc}, NOW)
    assert (figures.maintenance, figures.margin_balance, figures.ratio_shown) == (D(3685), D(3500), "1.052858")
    position = figures.positions[0]
    assert (position.tier, position.liquidation_price, position.bankruptcy_price) == (3, D("49868.7"), D(49500))
    # Brought down to tier 2: at most 250,000 / 49,850 = 5.015 BTC in whole lots kept.
    orders = partial_liquidation(figures, {"BTCUSDT": btc})
    assert [(o.side, o.quantity, o.target_tier, o.remaining_quantity, o.limit_price) for o in orders] == [
        ("SELL", D("4.985"), 2, D("5.015"), D(49500))]


def test_margin_ratio_when_exactly_at_level_then_at_least_and_a_hair_below_then_not() -> None:
    btc = market(BTC_TIERS, mark="49900")
    # Maintenance 4,990 - 1,300 = 3,690; margin balance B - 1,000: ratio 0.8 at B = 5,612.5.
    at = account_figures("a", D("5612.5"), [PositionSpec("BTCUSDT", D(10), D(50000), 10)], {"BTCUSDT": btc}, NOW)
    below = account_figures("a", D("5612.6"), [PositionSpec("BTCUSDT", D(10), D(50000), 10)], {"BTCUSDT": btc},
                            NOW)
    assert at.ratio_at_least(D("0.8")) and not below.ratio_at_least(D("0.8"))


def test_account_figures_when_a_held_symbol_has_no_mark_or_a_stale_one_then_says_which() -> None:
    btc = market(BTC_TIERS, mark="50000")
    old = Market(tiers=btc.tiers, tick=btc.tick, lot=btc.lot, mark=D(50000), mark_ms=NOW - 60_001, max_age_ms=60_000)
    positions = [PositionSpec("BTCUSDT", D(1), D(50000), 10)]
    assert account_figures("a", D(1000), positions, {}, NOW).missing_mark == "BTCUSDT"
    assert account_figures("a", D(1000), positions, {"BTCUSDT": old}, NOW).stale_mark == "BTCUSDT"


def test_bankruptcy_price_when_short_then_rounded_down_and_when_long_fully_backed_then_none() -> None:
    assert bankruptcy_price(D(-3), D(100), D(10), D("0.1")) == D("103.3")  # 103.333... down for a short
    assert bankruptcy_price(D(1), D(100), D(100), D("0.1")) is None
