"""Liquidation estimates and max leverage that were wrong (issue 7, item 6), through the gRPC API
and against `liquidation_price` directly.

Binance one-way cross (reference, section 2):
LP = (WB - TMM1 + UPNL1 + cum - side x Q x EP) / (Q x MMR - side x Q), solved in the tier whose
range holds LP x Q; the last tier covers everything above its floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from riskgate.engine.margin import liquidation_price
from riskgate.values.tiers import TierTable
from tests.support import Client, codes, decision, symbol_spec

D = Decimal

# Binance XRPUSDT brackets of the reference: (cap, max leverage, MMR).
XRP_TIERS = (("100000", 20, "0.025"), ("500000", 10, "0.05"), ("1000000", 5, "0.10"), ("2000000", 3, "0.15"),
             ("5000000", 2, "0.25"), ("30000000", 1, "0.50"))
XRP_TICK = D("0.0001")


def table(tiers: Sequence[tuple[str, int, str]]) -> TierTable:
    return TierTable.derive([(D(c), lev, D(m)) for c, lev, m in tiers])


async def add_xrp(client: Client) -> None:
    await client.upsert_symbol(symbol_spec("XRPUSDT", tiers=XRP_TIERS, tick_size="0.0001", lot_size="1",
                                           min_quantity="1", max_quantity="10000000"), mark="0.5")


def exact_lp(tiers: TierTable, quantity: Decimal, entry: Decimal, base_balance: Decimal) -> Decimal | None:
    """The consistent solution found by trying every tier (the last one unbounded), or None."""
    side = 1 if quantity > 0 else -1
    size = abs(quantity)
    found = []
    for tier in tiers.tiers:
        price = (base_balance + tier.maintenance_amount - side * size * entry) / (size * tier.mmr - side * size)
        notional = price * size
        if price > 0 and tier.floor < notional and (notional <= tier.cap or tier is tiers.tiers[-1]):
            found.append(price)
    assert len(found) <= 1, found  # continuous maintenance margin: at most one solution
    return found[0] if found else None


# 1. beyond the last tier's cap, the last tier's rate applies


def test_liquidation_price_when_short_lp_notional_beyond_last_cap_then_last_tier_41_3516() -> None:
    # Last tier (50%, cum 1,527,500): (60,000,000 + 1,527,500 + 1,000,000 x 0.5) / (1,000,000 x 1.5)
    # = 41.351666..., notional 41.35M beyond the 30M cap: still the last tier. Rounded down for a short.
    price = liquidation_price(table(XRP_TIERS), D(-1_000_000), D("0.5"), D(60_000_000), D(0), D(0), XRP_TICK)
    assert price == D("41.3516")


async def test_account_risk_when_xrp_short_lp_beyond_last_tier_cap_then_41_3516_not_entry_tier_57_6214(
        client: Client) -> None:
    await add_xrp(client)
    await client.trader(balance="60000000", positions=[("XRPUSDT", "-1000000", "0.5", 10)])
    (position,) = (await client.risk("acct-1")).positions
    # The entry tier (tier 2: (60,500,000 + 2,500) / 1,050,000) gave 57.6214.
    assert position.estimated_liquidation_price == "41.3516"


async def test_check_order_when_xrp_short_grows_with_lp_beyond_last_cap_then_estimate_uses_last_tier(
        client: Client) -> None:
    await add_xrp(client)
    await client.trader(balance="60000000", positions=[("XRPUSDT", "-999000", "0.5", 10)])
    response = await client.check(symbol="XRPUSDT", side="sell", quantity="1000", price="0.5", leverage=0)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.estimated_liquidation_price == "41.3516"


def test_liquidation_price_when_long_lp_notional_beyond_last_cap_then_last_tier() -> None:
    # Two tiers up to 20,000; a long of 10 at 10,000 (notional 100,000) with 10,000 of collateral:
    # last tier (2%, cum 100): (10,000 + 100 - 100,000) / (10 x 0.02 - 10) = 9173.469..., up to 9173.5.
    tiers = table((("10000", 50, "0.01"), ("20000", 20, "0.02")))
    assert liquidation_price(tiers, D(10), D(10000), D(10000), D(0), D(0), D("0.1")) == D("9173.5")


# 2. no consistent solution in any tier: no liquidation price


def test_liquidation_price_when_short_collateral_gone_even_at_price_zero_then_none() -> None:
    # WB + Q x EP = -501,000 + 500,000 = -1,000: tier 1 gives a negative price, every other tier a
    # price whose notional is in a lower tier. The entry tier's (tier 2) 0.0014 was returned before.
    assert liquidation_price(table(XRP_TIERS), D(-1_000_000), D("0.5"), D(-501_000), D(0), D(0), XRP_TICK) is None


async def test_account_risk_when_short_has_no_consistent_lp_in_any_tier_then_no_liquidation_price(
        client: Client) -> None:
    await add_xrp(client)
    await client.trader(balance="-501000", positions=[("XRPUSDT", "-1000000", "0.5", 10)])
    (position,) = (await client.risk("acct-1")).positions
    assert position.estimated_liquidation_price == ""


async def test_account_risk_when_long_covered_by_collateral_at_price_zero_then_no_liquidation_price(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="60000", positions=[("BTCUSDT", "1", "50000", 10)])
    (position,) = (await client.risk("acct-1")).positions
    assert position.estimated_liquidation_price == ""


@pytest.mark.parametrize("quantity", ["-1000000", "-250000", "-3000", "1000000", "250000", "3000"])
@pytest.mark.parametrize("balance", ["-501000", "-1000", "0", "1000", "50000", "400000", "60000000"])
def test_liquidation_price_when_any_balance_then_the_consistent_solution_or_none(quantity: str,
                                                                                 balance: str) -> None:
    tiers = table(XRP_TIERS)
    price = liquidation_price(tiers, D(quantity), D("0.5"), D(balance), D(0), D(0), XRP_TICK)
    exact = exact_lp(tiers, D(quantity), D("0.5"), D(balance))
    if exact is None:
        assert price is None
    elif D(quantity) > 0:
        assert price is not None and price - XRP_TICK < exact <= price
    else:
        assert price is not None and price <= exact < price + XRP_TICK


# 3. the estimate with a decision uses the balance after the reducing part realises its PnL


async def test_check_order_when_selling_half_a_long_at_a_loss_then_estimate_uses_realised_balance_20080_4(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="20000", positions=[("BTCUSDT", "1", "55000", 10)])
    response = await client.check(side="sell", quantity="0.5", price="50000", leverage=0, order_id="half")
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    # WB = 20,000 + 0.5 x (50,000 - 55,000) = 17,500; (17,500 - 0.5 x 55,000) / (0.5 x 0.004 - 0.5)
    # = 20,080.32..., up to 20,080.4. With the balance before the fill: 15,060.3.
    assert response.estimated_liquidation_price == "20080.4"
    ack = await client.fill("acct-1", "half", "0.5", "50000")
    assert (ack.position_quantity, ack.balance) == ("0.5", "17500")
    (position,) = (await client.risk("acct-1")).positions
    assert position.estimated_liquidation_price == "20080.4"


async def test_check_order_when_order_flips_a_long_then_estimate_closes_the_whole_long_at_the_order_price(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="20000", positions=[("BTCUSDT", "1", "55000", 10)])
    response = await client.check(side="sell", quantity="1.5", price="50000", leverage=10, order_id="flip")
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    # WB = 20,000 - 1 x 5,000 = 15,000; short 0.5 at 50,000: (15,000 + 25,000) / (0.5 x 1.004)
    # = 79,681.27..., down to 79,681.2.
    assert response.estimated_liquidation_price == "79681.2"
    await client.fill("acct-1", "flip", "1.5", "50000")
    (position,) = (await client.risk("acct-1")).positions
    assert (position.quantity, position.estimated_liquidation_price) == ("-0.5", "79681.2")


async def test_check_order_when_buying_back_part_of_a_short_at_a_profit_then_estimate_uses_realised_balance(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="10000", positions=[("BTCUSDT", "-1", "52000", 10)])
    response = await client.check(side="buy", quantity="0.4", price="50000", leverage=0, order_id="back")
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    await client.fill("acct-1", "back", "0.4", "50000")
    (position,) = (await client.risk("acct-1")).positions
    # WB = 10,000 + 0.4 x (50,000 - 52,000) x -1 = 10,800; (10,800 + 0.6 x 52,000) / (0.6 x 1.004)
    # = 69,721.11..., down to 69,721.1.
    assert position.estimated_liquidation_price == response.estimated_liquidation_price == "69721.1"


# 4. max_leverage of an order that only reduces: the tier of the resulting position


async def test_check_order_when_selling_1_of_a_100_btc_long_then_max_leverage_20_of_the_resulting_tier(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "100", "50000", 20)])
    response = await client.check(side="sell", quantity="1", price="50000", leverage=0)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.max_leverage == 20  # 99 x 50,000 = 4.95M: tier 4; tier 1's 125 before


async def test_check_order_when_reduce_only_sell_of_a_100_btc_long_then_max_leverage_of_the_resulting_tier(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "100", "50000", 20)])
    response = await client.check(side="sell", quantity="95", price="50000", leverage=0, reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.max_leverage == 100  # 5 x 50,000 = 250,000: tier 2


async def test_check_order_when_reducing_a_position_beyond_the_last_cap_then_max_leverage_of_the_last_tier(
        client: Client) -> None:
    await client.upsert_symbol(symbol_spec(tiers=(("10000", 50, "0.01"), ("20000", 20, "0.02"))), mark="50000")
    await client.trader(balance="100000", positions=[("BTCUSDT", "1", "50000", 5)])
    response = await client.check(side="sell", quantity="0.1", price="50000", leverage=0)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.max_leverage == 20  # 0.9 x 50,000 = 45,000 beyond the 20,000 cap: the last tier


async def test_check_order_when_order_increases_beyond_the_last_cap_then_max_leverage_stays_0(
        client: Client) -> None:
    await client.upsert_symbol(symbol_spec(tiers=(("10000", 50, "0.01"), ("20000", 20, "0.02"))), mark="50000")
    await client.trader()
    response = await client.check(quantity="0.5", price="50000", leverage=5)
    assert codes(response) == ["REASON_POSITION_ABOVE_MAX_TIER"]
    assert response.max_leverage == 0


async def test_check_order_when_order_flips_a_long_then_max_leverage_of_the_worst_case_exposure(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "100", "50000", 20)])
    response = await client.check(side="sell", quantity="101", price="50000", leverage=0)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.max_leverage == 125  # the short side: -100 + 101 = 1 BTC, tier 1
