"""Unit tests of the tier table and margin formulas against the reference's published figures."""

from decimal import Decimal

import pytest

from riskgate.engine.margin import liquidation_price, order_cost
from riskgate.values.codes import Side
from riskgate.values.money import fmt
from riskgate.values.tiers import TierTable
from tests.support import BTC_TIERS

D = Decimal


def btc_table() -> TierTable:
    return TierTable.derive([(D(c), lev, D(m)) for c, lev, m in BTC_TIERS])


def test_derive_tiers_when_binance_btcusdt_brackets_then_cum_matches_published_table() -> None:
    published = ["0", "50", "1300", "16300", "203800", "2203800", "4703800", "9703800", "49703800", "199703800"]
    assert [fmt(t.maintenance_amount) for t in btc_table().tiers] == published


def test_lookup_tier_when_notional_264000_then_mmr_is_one_percent() -> None:
    tier = btc_table().for_notional(D(264000))
    assert tier is not None and tier.mmr == D("0.01") and tier.index == 3


@pytest.mark.parametrize("index", range(9))
def test_maintenance_margin_when_at_a_tier_boundary_then_both_tiers_agree(index: int) -> None:
    table = btc_table()
    lower, upper = table.tiers[index], table.tiers[index + 1]
    boundary = lower.cap
    assert boundary * lower.mmr - lower.maintenance_amount == boundary * upper.mmr - upper.maintenance_amount
    # One cent either side moves MM by at most a cent times the higher rate.
    below = table.maintenance_margin(boundary - D("0.01"))
    above = table.maintenance_margin(boundary + D("0.01"))
    assert above - below <= D("0.01") * (lower.mmr + upper.mmr)


def test_lookup_tier_when_notional_beyond_last_cap_then_none() -> None:
    assert btc_table().for_notional(D(1_000_000_001)) is None
    assert btc_table().for_notional(D(1_000_000_000)) is not None


@pytest.mark.parametrize(
    ("leverage", "max_notional"),
    [(125, "50000"), (100, "250000"), (51, "250000"), (50, "1000000"), (21, "1000000"), (20, "7500000"),
     (1, "1000000000")],
)
def test_max_notional_at_leverage_when_binance_brackets_then_largest_eligible_cap(leverage: int,
                                                                                  max_notional: str) -> None:
    assert btc_table().max_notional_at_leverage(leverage) == D(max_notional)


def test_maintenance_margin_when_bybit_tiered_example_then_92_5() -> None:
    table = TierTable.derive([(D(1000), 20, D("0.02")), (D(2000), 20, D("0.025")), (D(3000), 20, D("0.03")),
                              (D(4000), 20, D("0.035")), (D(5000), 20, D("0.04"))])
    assert table.tiers[3].maintenance_amount == D(30)
    assert table.maintenance_margin(D(3500)) == D("92.5")


@pytest.mark.parametrize(("contracts", "mmr"), [(2000, "0.01"), (2001, "0.015"), (4001, "0.02")])
def test_lookup_tier_when_okx_eth_contracts_then_published_mmr(contracts: int, mmr: str) -> None:
    table = TierTable.derive([(D(2000), 75, D("0.01")), (D(4000), 50, D("0.015")), (D(8000), 20, D("0.02"))])
    tier = table.for_notional(D(contracts))
    assert tier is not None and tier.mmr == D(mmr)


def test_order_cost_when_binance_buy_example_then_im_462_665_and_no_open_loss() -> None:
    cost = order_cost(Side.BUY, D(1), D("9253.30"), D("9259.84"), 20, D(0))
    assert cost.initial_margin == D("462.665")
    assert cost.initial_margin.quantize(D("0.01")) == D("462.66")  # as Binance shows it
    assert cost.open_loss == 0
    assert cost.total == D("462.665")


def test_order_cost_when_binance_sell_example_then_open_loss_6_54() -> None:
    cost = order_cost(Side.SELL, D(1), D("9253.30"), D("9259.84"), 20, D(0))
    assert cost.open_loss == D("6.54")


@pytest.mark.parametrize(
    ("price", "leverage", "fee", "parts", "total"),
    [("8000", 50, "0.00075", ("160", "6", "5.88"), "171.88"),
     ("50000", 10, "0.00055", ("5000", "27.5", "24.75"), "5052.25")],
)
def test_order_cost_when_bybit_examples_then_published_total(price: str, leverage: int, fee: str,
                                                             parts: tuple[str, str, str], total: str) -> None:
    cost = order_cost(Side.BUY, D(1), D(price), D(price), leverage, D(fee))
    assert (cost.initial_margin, cost.fee_to_open, cost.fee_to_close) == tuple(D(p) for p in parts)
    assert cost.total == D(total)


def test_order_cost_when_fee_to_close_is_not_terminating_then_rounds_up() -> None:
    cost = order_cost(Side.SELL, D(1), D(100), D(100), 3, D("0.001"))
    # 100 x (1 + 1/3) x 0.001 = 0.1333...; the trader posts the next whole 1e-8 up.
    assert cost.fee_to_close == D("0.13333334")


def test_liquidation_price_when_long_in_tier_one_then_binance_formula_rounded_up() -> None:
    # (10000 - 0 + 0 + 0 - 1 x 1 x 50000) / (1 x 0.004 - 1) = 40160.642570...
    price = liquidation_price(btc_table(), D(1), D(50000), D(10000), D(0), D(0), D("0.1"))
    assert price == D("40160.7")


def test_liquidation_price_when_short_then_rounded_down_to_tick() -> None:
    # Tier 1 gives (10000 + 50000) / (0.004 + 1) = 59760.96, whose notional is in tier 2, so
    # tier 2 decides: (10000 + 50 + 50000) / (0.005 + 1) = 59751.243781...
    price = liquidation_price(btc_table(), D(-1), D(50000), D(10000), D(0), D(0), D("0.1"))
    assert price == D("59751.2")


def test_liquidation_price_when_long_fully_collateralised_then_none() -> None:
    assert liquidation_price(btc_table(), D(1), D(50000), D(60000), D(0), D(0), D("0.1")) is None


def test_liquidation_price_when_lp_notional_in_a_higher_tier_then_recomputed_with_that_tier() -> None:
    # 10 BTC long at 50,000 (notional 500,000: tier 3) with 100,000 balance.
    price = liquidation_price(btc_table(), D(10), D(50000), D(100000), D(0), D(0), D("0.1"))
    assert price is not None
    tier = btc_table().for_notional(price * 10)
    assert tier is not None
    exact = (D(100000) + tier.maintenance_amount - D(10) * D(50000)) / (D(10) * tier.mmr - D(10))
    assert price - D("0.1") < exact <= price
