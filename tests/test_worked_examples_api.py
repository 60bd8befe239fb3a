"""Every published worked example of the reference, reproduced through the gRPC API."""

from tests.support import Client, codes, decision, symbol_spec

BYBIT_TIERED = (("1000", 20, "0.02"), ("2000", 20, "0.025"), ("3000", 20, "0.03"), ("4000", 20, "0.035"),
                ("5000", 20, "0.04"))


async def test_upsert_symbol_when_binance_brackets_then_returns_derived_floors_and_cum(client: Client) -> None:
    stored = await client.upsert_symbol()
    tier3 = stored.tiers[2]
    assert (tier3.notional_floor, tier3.notional_cap, tier3.maintenance_amount) == ("250000", "1000000", "1300")
    assert [t.maintenance_amount for t in stored.tiers][-1] == "199703800"


async def test_account_risk_when_position_notional_264000_then_mmr_one_percent_applies(client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000", positions=[("BTCUSDT", "5.28", "50000", 10)])
    risk = await client.risk("acct-1")
    # 264,000 x 1% - 1,300 = 1,340: the tier-3 rate and deduction.
    assert risk.positions[0].maintenance_margin == "1340"


async def test_check_order_when_binance_cost_to_open_buy_then_im_462_665_and_no_open_loss(client: Client) -> None:
    await client.upsert_symbol(symbol_spec(tick_size="0.01"), mark="9259.84")
    await client.trader()
    response = await client.check(quantity="1", price="9253.30", leverage=20)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.initial_margin == "462.665"  # Binance shows 462.66 at 2 dp
    assert response.order_cost == "462.665"


async def test_check_order_when_binance_cost_to_open_sell_then_open_loss_6_54(client: Client) -> None:
    await client.upsert_symbol(symbol_spec(tick_size="0.01"), mark="9259.84")
    await client.trader()
    response = await client.check(side="sell", quantity="1", price="9253.30", leverage=20)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.initial_margin == "462.665"
    assert response.order_cost == "469.205"  # 462.665 + open loss 6.54


async def test_check_order_when_bybit_order_cost_at_50x_then_171_88(client: Client) -> None:
    await client.upsert_symbol(symbol_spec(taker_fee_rate="0.00075"), mark="8000")
    await client.trader()
    response = await client.check(quantity="1", price="8000", leverage=50)
    assert (response.initial_margin, response.order_cost) == ("160", "171.88")


async def test_check_order_when_bybit_order_cost_at_10x_then_5052_25(client: Client) -> None:
    await client.upsert_symbol(symbol_spec(taker_fee_rate="0.00055"), mark="50000")
    await client.trader()
    response = await client.check(quantity="1", price="50000", leverage=10)
    assert (response.initial_margin, response.order_cost) == ("5000", "5052.25")
    assert response.available_margin == "94947.75"


async def test_account_risk_when_bybit_tiered_position_value_3500_then_mm_92_5(client: Client) -> None:
    await client.upsert_symbol(symbol_spec("TESTUSDT", tiers=BYBIT_TIERED), mark="1000")
    await client.trader(positions=[("TESTUSDT", "3.5", "1000", 10)])
    risk = await client.risk("acct-1")
    assert risk.positions[0].maintenance_margin == "92.5"


async def test_account_risk_when_bybit_btc_value_2000000_then_mmr_half_percent(client: Client) -> None:
    tiers = (("2000000", 100, "0.005"), ("4000000", 50, "0.01"))
    await client.upsert_symbol(symbol_spec(tiers=tiers), mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "40", "50000", 10)])
    risk = await client.risk("acct-1")
    assert risk.positions[0].maintenance_margin == "10000"  # 2,000,000 x 0.5%


async def test_check_order_when_okx_contract_tiers_then_max_leverage_follows_published_bands(client: Client) -> None:
    tiers = (("2000", 75, "0.01"), ("4000", 50, "0.015"), ("8000", 20, "0.02"))
    await client.upsert_symbol(symbol_spec("ETH-USDT", tiers=tiers, tick_size="0.01", lot_size="1",
                                           min_quantity="1", max_quantity="100000"), mark="1")
    await client.trader()
    seen = []
    for contracts in ("2000", "2001", "4001"):
        response = await client.check(symbol="ETH-USDT", quantity=contracts, price="1", leverage=10)
        assert decision(response) == "DECISION_ACCEPT", codes(response)
        await client.close_order("acct-1", response.order_id)
        seen.append(response.max_leverage)
    assert seen == [75, 50, 20]  # tiers of MMR 1% / 1.5% / 2%


async def test_account_risk_when_long_in_tier_one_then_binance_liquidation_price(client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="10000", positions=[("BTCUSDT", "1", "50000", 10)])
    risk = await client.risk("acct-1")
    assert risk.positions[0].estimated_liquidation_price == "40160.7"
    assert risk.positions[0].unrealized_pnl == "0"


async def test_check_order_when_notional_at_max_for_leverage_then_accepted_and_beyond_rejected(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000")
    at_cap = await client.check(quantity="150", price="50000", leverage=20)  # 7,500,000 notional
    assert decision(at_cap) == "DECISION_ACCEPT", codes(at_cap)
    assert at_cap.max_leverage == 20
    beyond = await client.check(quantity="0.001", price="50000", leverage=20)
    assert decision(beyond) == "DECISION_REJECT"
    assert codes(beyond) == ["REASON_LEVERAGE_ABOVE_TIER_MAX"]
    assert (beyond.reasons[0].limit, beyond.reasons[0].value) == ("10", "20")
