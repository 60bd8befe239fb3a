"""Every pre-trade check, each from its accept side and its reject side, over loopback gRPC and a real Redis.

A reject asserts the typed reason code and, where the check compares numbers, the reason's
`limit` and `value` strings.
"""

from __future__ import annotations

import asyncio

from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from tests.support import Client, codes, dec, decision, symbol_spec

LONG_1_BTC = (("BTCUSDT", "1", "50000", 10),)


def assert_accepted(response: pb.CheckOrderResponse, quantity: str | None = None) -> None:
    assert decision(response) == "DECISION_ACCEPT", [(codes(response), r.limit, r.value) for r in response.reasons]
    assert not response.reasons
    if quantity is not None:
        assert response.allowed_quantity == quantity


def assert_rejected(response: pb.CheckOrderResponse, code: str, limit: str | None = None,
                    value: str | None = None) -> pb.Reason:
    """The order is rejected and its first reason is `code` with the given limit and value."""
    assert decision(response) == "DECISION_REJECT", codes(response)
    assert response.allowed_quantity == "0"
    assert codes(response)[0] == code, codes(response)
    reason = response.reasons[0]
    assert reason.message
    if limit is not None:
        assert reason.limit == limit
    if value is not None:
        assert reason.value == value
    return reason


async def add_eth(client: Client, mark: str | None = "2500", **fields: object) -> None:
    await client.upsert_symbol(symbol_spec("ETHUSDT", **fields), mark=mark)


async def replace_btc(client: Client, **fields: object) -> None:
    """Re-lists BTCUSDT (mark 50,000 kept) with some fields overridden."""
    await client.upsert_symbol(symbol_spec(**fields))


# 1. well-formed order: symbol, account, lot, tick


async def test_check_order_when_symbol_is_not_listed_then_rejects_unknown_symbol(btc: Client) -> None:
    response = await btc.check(symbol="ETHUSDT", price="2500")
    assert_rejected(response, "REASON_UNKNOWN_SYMBOL", value="ETHUSDT")


async def test_check_order_when_symbol_gets_listed_with_a_mark_then_accepts(btc: Client) -> None:
    await add_eth(btc)
    assert_accepted(await btc.check(symbol="ETHUSDT", quantity="1", price="2500"), "1")


async def test_check_order_when_account_is_not_known_then_rejects_unknown_account(btc: Client) -> None:
    response = await btc.check(account="acct-404")
    assert_rejected(response, "REASON_UNKNOWN_ACCOUNT", value="acct-404")


async def test_check_order_when_account_gets_a_balance_then_accepts(btc: Client) -> None:
    await btc.trader("acct-2")
    assert_accepted(await btc.check(account="acct-2"), "1")


async def test_check_order_when_quantity_is_off_the_lot_then_rejects_not_on_lot(btc: Client) -> None:
    response = await btc.check(quantity="0.0015")
    assert_rejected(response, "REASON_QUANTITY_NOT_ON_LOT", limit="0.001", value="0.0015")


async def test_check_order_when_quantity_is_a_multiple_of_the_lot_then_accepts(btc: Client) -> None:
    assert_accepted(await btc.check(quantity="0.015"), "0.015")


async def test_check_order_when_price_is_off_the_tick_then_rejects_not_on_tick(btc: Client) -> None:
    response = await btc.check(price="50000.05")
    assert_rejected(response, "REASON_PRICE_NOT_ON_TICK", limit="0.1", value="50000.05")


async def test_check_order_when_price_is_a_multiple_of_the_tick_then_accepts(btc: Client) -> None:
    assert_accepted(await btc.check(price="50000.1"))


async def test_check_order_when_symbol_has_a_coarse_tick_then_rejects_prices_between_ticks(btc: Client) -> None:
    await replace_btc(btc, tick_size="0.5")
    assert_rejected(await btc.check(price="49999.7"), "REASON_PRICE_NOT_ON_TICK", limit="0.5", value="49999.7")
    assert_accepted(await btc.check(price="49999.5"))


# 2. duplicates


async def test_check_order_when_order_id_is_still_open_then_rejects_duplicate(btc: Client) -> None:
    assert_accepted(await btc.check(order_id="dup-1", quantity="0.1"))
    response = await btc.check(order_id="dup-1", quantity="0.1")
    assert_rejected(response, "REASON_DUPLICATE_ORDER_ID", value="dup-1")
    risk = await btc.risk("acct-1")
    assert risk.open_orders == 1
    assert risk.reserved_order_cost == "500"


async def test_check_order_when_order_id_was_canceled_within_the_window_then_rejects_duplicate(btc: Client) -> None:
    assert_accepted(await btc.check(order_id="dup-2", quantity="0.1"))
    ack = await btc.close_order("acct-1", "dup-2")
    assert ack.remaining_quantity == "0"
    response = await btc.check(order_id="dup-2", quantity="0.1")
    assert_rejected(response, "REASON_DUPLICATE_ORDER_ID", value="dup-2")


async def test_check_order_when_order_id_was_filled_within_the_window_then_rejects_duplicate(btc: Client) -> None:
    assert_accepted(await btc.check(order_id="dup-3", quantity="0.1"))
    ack = await btc.fill("acct-1", "dup-3", "0.1", "50000")
    assert ack.remaining_quantity == "0"
    assert_rejected(await btc.check(order_id="dup-3", quantity="0.1"), "REASON_DUPLICATE_ORDER_ID", value="dup-3")


async def test_check_order_when_order_id_is_new_for_the_account_then_accepts(btc: Client) -> None:
    assert_accepted(await btc.check(order_id="fresh-1", quantity="0.1"))
    assert_accepted(await btc.check(order_id="fresh-2", quantity="0.1"))


async def test_check_order_when_another_account_used_the_order_id_then_accepts(btc: Client) -> None:
    await btc.trader("acct-2")
    assert_accepted(await btc.check(order_id="shared-1", quantity="0.1"))
    assert_accepted(await btc.check(account="acct-2", order_id="shared-1", quantity="0.1"))


async def test_check_order_when_canceled_order_id_is_past_the_window_then_accepts(services) -> None:
    _, client = await services.start(duplicate_window_seconds=0.05)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    assert_accepted(await client.check(order_id="old-1", quantity="0.1"))
    await client.close_order("acct-1", "old-1")
    await asyncio.sleep(0.2)
    assert_accepted(await client.check(order_id="old-1", quantity="0.1"))


# 3. circuit breakers


async def test_check_order_when_platform_is_halted_then_rejects_platform_halted(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_HALTED, reason="incident")
    reason = assert_rejected(await btc.check(), "REASON_PLATFORM_HALTED", limit="HALTED", value="")
    assert "incident" in reason.message


async def test_check_order_when_symbol_is_halted_then_rejects_symbol_halted(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_HALTED, symbol="BTCUSDT", reason="bad feed")
    reason = assert_rejected(await btc.check(), "REASON_SYMBOL_HALTED", limit="HALTED", value="BTCUSDT")
    assert "bad feed" in reason.message


async def test_check_order_when_platform_is_reduce_only_and_order_opens_then_rejects(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY)
    response = await btc.check()
    assert decision(response) == "DECISION_REJECT"
    assert "REASON_PLATFORM_REDUCE_ONLY" in codes(response)
    assert response.allowed_quantity == "0"


async def test_check_order_when_symbol_is_reduce_only_and_order_opens_then_rejects(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="BTCUSDT")
    response = await btc.check()
    assert decision(response) == "DECISION_REJECT"
    assert "REASON_SYMBOL_REDUCE_ONLY" in codes(response)
    reason = response.reasons[codes(response).index("REASON_SYMBOL_REDUCE_ONLY")]
    assert (reason.limit, reason.value) == ("REDUCE_ONLY", "BTCUSDT")


async def test_check_order_when_breakers_are_back_to_normal_then_accepts(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_HALTED)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="BTCUSDT")
    assert_rejected(await btc.check(), "REASON_PLATFORM_HALTED")
    await btc.set_breaker(admin.BREAKER_NORMAL)
    await btc.set_breaker(admin.BREAKER_NORMAL, symbol="BTCUSDT")
    assert_accepted(await btc.check(), "1")


async def test_check_order_when_another_symbol_is_halted_then_accepts(btc: Client) -> None:
    await add_eth(btc)
    await btc.set_breaker(admin.BREAKER_HALTED, symbol="ETHUSDT")
    assert_accepted(await btc.check(), "1")
    assert_rejected(await btc.check(symbol="ETHUSDT", price="2500"), "REASON_SYMBOL_HALTED", value="ETHUSDT")


# 4. account controls


async def test_check_order_when_account_is_frozen_then_rejects_account_frozen(btc: Client) -> None:
    await btc.set_controls("acct-1", restriction=admin.RESTRICTION_FROZEN)
    assert_rejected(await btc.check(), "REASON_ACCOUNT_FROZEN", limit="FROZEN", value="acct-1")


async def test_check_order_when_account_is_reduce_only_and_order_opens_then_rejects(btc: Client) -> None:
    await btc.set_controls("acct-1", restriction=admin.RESTRICTION_REDUCE_ONLY)
    response = await btc.check()
    assert decision(response) == "DECISION_REJECT"
    assert "REASON_ACCOUNT_REDUCE_ONLY" in codes(response)
    reason = response.reasons[codes(response).index("REASON_ACCOUNT_REDUCE_ONLY")]
    assert (reason.limit, reason.value) == ("REDUCE_ONLY", "acct-1")


async def test_check_order_when_account_restriction_is_lifted_then_accepts(btc: Client) -> None:
    await btc.set_controls("acct-1", restriction=admin.RESTRICTION_FROZEN)
    assert_rejected(await btc.check(), "REASON_ACCOUNT_FROZEN")
    await btc.set_controls("acct-1", restriction=admin.RESTRICTION_NONE)
    assert_accepted(await btc.check(), "1")


async def test_check_order_when_burst_exceeds_orders_per_second_then_rejects_rate_exceeded(btc: Client) -> None:
    await btc.set_controls("acct-1", max_orders_per_second=3)
    responses = [await btc.check(quantity="0.01") for _ in range(5)]
    for response in responses[:3]:
        assert_accepted(response)
    for response in responses[3:]:
        assert_rejected(response, "REASON_ORDER_RATE_EXCEEDED", limit="3")
    assert (await btc.risk("acct-1")).open_orders == 3


async def test_check_order_when_burst_is_within_orders_per_second_then_accepts_all(btc: Client) -> None:
    await btc.set_controls("acct-1", max_orders_per_second=5)
    for _ in range(5):
        assert_accepted(await btc.check(quantity="0.01"))


async def test_check_order_when_rate_bucket_refilled_after_a_pause_then_accepts(btc: Client) -> None:
    await btc.set_controls("acct-1", max_orders_per_second=2)
    assert_accepted(await btc.check(quantity="0.01"))
    assert_accepted(await btc.check(quantity="0.01"))
    assert_rejected(await btc.check(quantity="0.01"), "REASON_ORDER_RATE_EXCEEDED", limit="2")
    await asyncio.sleep(0.75)
    assert_accepted(await btc.check(quantity="0.01"))


async def test_check_order_when_rate_limit_is_per_account_then_other_account_accepts(btc: Client) -> None:
    await btc.set_controls("acct-1", max_orders_per_second=1)
    await btc.trader("acct-2")
    assert_accepted(await btc.check(quantity="0.01"))
    assert_rejected(await btc.check(quantity="0.01"), "REASON_ORDER_RATE_EXCEEDED")
    assert_accepted(await btc.check(account="acct-2", quantity="0.01"))


# 5. eligibility


async def test_check_order_when_kyc_level_is_below_symbol_minimum_then_rejects_kyc(btc: Client) -> None:
    await replace_btc(btc, min_kyc_level=3)
    await btc.trader("kyc-2", kyc_level=2)
    assert_rejected(await btc.check(account="kyc-2"), "REASON_KYC_LEVEL_TOO_LOW", limit="3", value="2")


async def test_check_order_when_kyc_level_meets_symbol_minimum_then_accepts(btc: Client) -> None:
    await replace_btc(btc, min_kyc_level=3)
    await btc.trader("kyc-3", kyc_level=3)
    assert_accepted(await btc.check(account="kyc-3"), "1")


async def test_check_order_when_symbol_is_qualified_only_and_account_unqualified_then_rejects(btc: Client) -> None:
    await replace_btc(btc, qualified_only=True)
    await btc.trader("retail", qualified_investor=False)
    response = await btc.check(account="retail", leverage=1)
    assert_rejected(response, "REASON_QUALIFIED_INVESTOR_REQUIRED", limit="qualified", value="not qualified")


async def test_check_order_when_symbol_is_qualified_only_and_account_qualified_then_accepts(btc: Client) -> None:
    await replace_btc(btc, qualified_only=True)
    await btc.trader("pro", qualified_investor=True)
    assert_accepted(await btc.check(account="pro"), "1")


async def test_check_order_when_unqualified_leverage_above_its_max_then_rejects_qualified_required(
        btc: Client) -> None:
    await replace_btc(btc, max_leverage_unqualified=20)
    await btc.trader("retail", qualified_investor=False)
    response = await btc.check(account="retail", leverage=21)
    assert_rejected(response, "REASON_QUALIFIED_INVESTOR_REQUIRED", limit="20", value="21")


async def test_check_order_when_unqualified_leverage_at_its_max_then_accepts(btc: Client) -> None:
    await replace_btc(btc, max_leverage_unqualified=20)
    await btc.trader("retail", qualified_investor=False)
    assert_accepted(await btc.check(account="retail", leverage=20), "1")


async def test_check_order_when_qualified_account_uses_leverage_above_unqualified_max_then_accepts(
        btc: Client) -> None:
    await replace_btc(btc, max_leverage_unqualified=20)
    await btc.trader("pro", qualified_investor=True)
    assert_accepted(await btc.check(account="pro", leverage=50), "1")


# 6. reference price and order size


async def test_check_order_when_symbol_has_no_mark_price_then_rejects_mark_missing(btc: Client) -> None:
    await add_eth(btc, mark=None)
    response = await btc.check(symbol="ETHUSDT", price="2500")
    assert_rejected(response, "REASON_MARK_PRICE_MISSING", value="ETHUSDT")


async def test_check_order_when_market_order_and_no_mark_price_then_rejects_mark_missing(btc: Client) -> None:
    await add_eth(btc, mark=None)
    response = await btc.check(symbol="ETHUSDT", price=None)
    assert_rejected(response, "REASON_MARK_PRICE_MISSING", value="ETHUSDT")


async def test_check_order_when_mark_price_arrives_then_accepts(btc: Client) -> None:
    await add_eth(btc, mark=None)
    assert_rejected(await btc.check(symbol="ETHUSDT", price="2500"), "REASON_MARK_PRICE_MISSING")
    await btc.set_mark("ETHUSDT", "2500")
    assert_accepted(await btc.check(symbol="ETHUSDT", price="2500"), "1")


async def test_check_order_when_mark_price_is_older_than_its_bound_then_rejects_mark_stale(btc: Client) -> None:
    await add_eth(btc, mark="2500", mark_price_max_age_ms=1)
    await asyncio.sleep(0.05)
    response = await btc.check(symbol="ETHUSDT", price="2500")
    reason = assert_rejected(response, "REASON_MARK_PRICE_STALE", limit="1ms")
    assert reason.value.endswith("ms")
    assert int(reason.value.removesuffix("ms")) > 1


async def test_check_order_when_stale_mark_price_is_refreshed_then_accepts(btc: Client) -> None:
    await add_eth(btc, mark="2500", mark_price_max_age_ms=500)
    await asyncio.sleep(0.6)
    assert_rejected(await btc.check(symbol="ETHUSDT", price="2500"), "REASON_MARK_PRICE_STALE", limit="500ms")
    await btc.set_mark("ETHUSDT", "2500")
    assert_accepted(await btc.check(symbol="ETHUSDT", price="2500"), "1")


async def test_check_order_when_buy_price_at_top_of_band_then_accepts(btc: Client) -> None:
    assert_accepted(await btc.check(side="buy", price="52500"))


async def test_check_order_when_buy_price_above_band_then_rejects_price_above_band(btc: Client) -> None:
    response = await btc.check(side="buy", price="52500.1")
    assert_rejected(response, "REASON_PRICE_ABOVE_BAND", limit="52500", value="52500.1")


async def test_check_order_when_sell_price_at_bottom_of_band_then_accepts(btc: Client) -> None:
    assert_accepted(await btc.check(side="sell", price="47500"))


async def test_check_order_when_sell_price_below_band_then_rejects_price_below_band(btc: Client) -> None:
    response = await btc.check(side="sell", price="47499.9")
    assert_rejected(response, "REASON_PRICE_BELOW_BAND", limit="47500", value="47499.9")


async def test_check_order_when_band_follows_a_new_mark_then_limits_move_with_it(btc: Client) -> None:
    await btc.set_mark("BTCUSDT", "40000", confirmed=True)
    assert_rejected(await btc.check(side="buy", price="42000.1", quantity="0.1"), "REASON_PRICE_ABOVE_BAND",
                    limit="42000", value="42000.1")
    assert_accepted(await btc.check(side="buy", price="42000", quantity="0.1"))


async def test_check_order_when_quantity_below_symbol_minimum_then_rejects_quantity_below_min(btc: Client) -> None:
    await replace_btc(btc, min_quantity="0.01", max_quantity="2")
    response = await btc.check(quantity="0.009")
    assert_rejected(response, "REASON_QUANTITY_BELOW_MIN", limit="0.01", value="0.009")


async def test_check_order_when_quantity_at_symbol_minimum_then_accepts(btc: Client) -> None:
    await replace_btc(btc, min_quantity="0.01", max_quantity="2")
    assert_accepted(await btc.check(quantity="0.01"), "0.01")


async def test_check_order_when_quantity_above_symbol_maximum_then_rejects_quantity_above_max(btc: Client) -> None:
    await replace_btc(btc, min_quantity="0.01", max_quantity="2")
    response = await btc.check(quantity="2.001")
    assert_rejected(response, "REASON_QUANTITY_ABOVE_MAX", limit="2", value="2.001")


async def test_check_order_when_quantity_at_symbol_maximum_then_accepts(btc: Client) -> None:
    await replace_btc(btc, min_quantity="0.01", max_quantity="2")
    assert_accepted(await btc.check(quantity="2"), "2")


async def test_check_order_when_notional_below_symbol_minimum_then_rejects_notional_below_min(btc: Client) -> None:
    await replace_btc(btc, min_notional="100")
    response = await btc.check(quantity="0.001", price="50000")
    assert_rejected(response, "REASON_NOTIONAL_BELOW_MIN", limit="100", value="50")


async def test_check_order_when_default_min_notional_and_low_limit_price_then_rejects(btc: Client) -> None:
    response = await btc.check(quantity="0.001", price="4999.9")
    assert_rejected(response, "REASON_NOTIONAL_BELOW_MIN", limit="5", value="4.9999")


async def test_check_order_when_market_order_notional_at_mark_below_minimum_then_rejects(btc: Client) -> None:
    await replace_btc(btc, min_notional="100")
    response = await btc.check(quantity="0.001", price=None)
    assert_rejected(response, "REASON_NOTIONAL_BELOW_MIN", limit="100", value="50")


async def test_check_order_when_notional_at_symbol_minimum_then_accepts(btc: Client) -> None:
    await replace_btc(btc, min_notional="100")
    assert_accepted(await btc.check(quantity="0.002", price="50000"), "0.002")


async def test_check_order_when_notional_above_max_order_notional_then_rejects(btc: Client) -> None:
    await replace_btc(btc, max_order_notional="60000")
    response = await btc.check(quantity="1.201", price="50000")
    assert_rejected(response, "REASON_ORDER_NOTIONAL_ABOVE_MAX", limit="60000", value="60050")


async def test_check_order_when_notional_at_max_order_notional_then_accepts(btc: Client) -> None:
    await replace_btc(btc, max_order_notional="60000")
    assert_accepted(await btc.check(quantity="1.2", price="50000"), "1.2")


# 7. leverage


async def test_check_order_when_leverage_at_tier_one_max_then_accepts(btc: Client) -> None:
    response = await btc.check(quantity="1", price="50000", leverage=125)
    assert_accepted(response, "1")
    assert response.max_leverage == 125
    assert response.initial_margin == "400"


async def test_check_order_when_leverage_above_tier_one_max_then_rejects_tier_max(btc: Client) -> None:
    response = await btc.check(quantity="1", price="50000", leverage=126)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_TIER_MAX", limit="125", value="126")


async def test_check_order_when_position_falls_in_tier_two_and_leverage_above_its_max_then_rejects(
        btc: Client) -> None:
    response = await btc.check(quantity="2", price="50000", leverage=101)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_TIER_MAX", limit="100", value="101")
    assert response.max_leverage == 100


async def test_check_order_when_position_falls_in_tier_two_and_leverage_at_its_max_then_accepts(
        btc: Client) -> None:
    response = await btc.check(quantity="2", price="50000", leverage=100)
    assert_accepted(response, "2")
    assert response.max_leverage == 100


async def test_check_order_when_open_orders_push_the_position_into_tier_two_then_rejects_tier_max(
        btc: Client) -> None:
    assert_accepted(await btc.check(quantity="1", leverage=125))
    response = await btc.check(quantity="1", leverage=125)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_TIER_MAX", limit="100", value="125")


async def test_check_order_when_held_position_pushes_the_order_into_tier_two_then_rejects_tier_max(
        btc: Client) -> None:
    await btc.trader("holder", positions=(("BTCUSDT", "1", "50000", 125),))
    response = await btc.check(account="holder", quantity="1", leverage=125)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_TIER_MAX", limit="100", value="125")


async def test_check_order_when_leverage_differs_from_held_position_then_rejects_mismatch(btc: Client) -> None:
    await btc.trader("holder", positions=LONG_1_BTC)
    response = await btc.check(account="holder", quantity="1", leverage=125)
    assert_rejected(response, "REASON_LEVERAGE_MISMATCH", limit="10", value="125")


async def test_check_order_when_leverage_differs_from_open_orders_then_rejects_mismatch(btc: Client) -> None:
    assert_accepted(await btc.check(quantity="0.1", leverage=20))
    response = await btc.check(side="sell", quantity="0.5", leverage=10)
    assert_rejected(response, "REASON_LEVERAGE_MISMATCH", limit="20", value="10")


async def test_check_order_when_leverage_is_zero_and_no_position_then_uses_default_leverage(btc: Client) -> None:
    response = await btc.check(quantity="1", leverage=0)
    assert_accepted(response, "1")
    assert response.initial_margin == "2500"  # min(20, tier 1 max) = 20x
    await btc.close_order("acct-1", response.order_id)  # open orders would hold the symbol at 20x
    await replace_btc(btc, default_leverage=5)
    assert (await btc.check(quantity="1", leverage=0)).initial_margin == "10000"


async def test_check_order_when_leverage_is_zero_and_position_at_125x_pushes_into_tier_two_then_rejects(
        btc: Client) -> None:
    await btc.trader("holder", positions=(("BTCUSDT", "1", "50000", 125),))
    response = await btc.check(account="holder", quantity="0.1", leverage=0)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_TIER_MAX", limit="100", value="125")


async def test_fill_when_lower_leverage_order_adds_to_a_125x_position_then_position_stays_within_tier_max(
        btc: Client) -> None:
    # 1 BTC held at 125x (tier 1). Adding 1 BTC makes 100,000 of notional: tier 2, at most 100x. However the
    # order's own leverage is judged, the resulting position must not be carried at 125x.
    await btc.trader("holder", positions=(("BTCUSDT", "1", "50000", 125),))
    response = await btc.check(account="holder", quantity="1", leverage=10, order_id="add-1")
    if decision(response) == "DECISION_ACCEPT":
        ack = await btc.fill("holder", "add-1", "1", "50000")
        assert ack.position_quantity == "2"
    else:
        assert_rejected(response, "REASON_LEVERAGE_MISMATCH", limit="125", value="10")
    (position,) = (await btc.risk("holder")).positions
    notional = int(position.quantity) * 50000
    tier_max = 125 if notional <= 50000 else 100
    assert position.leverage <= tier_max, (position.quantity, position.leverage, position.initial_margin)


async def test_check_order_when_leverage_above_account_cap_then_rejects_account_max(btc: Client) -> None:
    await btc.set_controls("acct-1", max_leverage=20)
    response = await btc.check(leverage=21)
    assert_rejected(response, "REASON_LEVERAGE_ABOVE_ACCOUNT_MAX", limit="20", value="21")


async def test_check_order_when_leverage_at_account_cap_then_accepts(btc: Client) -> None:
    await btc.set_controls("acct-1", max_leverage=20)
    assert_accepted(await btc.check(leverage=20), "1")


async def test_check_order_when_position_beyond_last_tier_then_rejects_position_above_max_tier(
        btc: Client) -> None:
    await replace_btc(btc, tiers=(("10000", 50, "0.01"), ("20000", 20, "0.02")))
    response = await btc.check(quantity="0.5", price="50000", leverage=5)
    assert_rejected(response, "REASON_POSITION_ABOVE_MAX_TIER", limit="20000", value="25000")


async def test_check_order_when_position_at_last_tier_cap_then_accepts(btc: Client) -> None:
    await replace_btc(btc, tiers=(("10000", 50, "0.01"), ("20000", 20, "0.02")))
    response = await btc.check(quantity="0.4", price="50000", leverage=5)
    assert_accepted(response, "0.4")
    assert response.max_leverage == 20


async def test_check_order_when_open_orders_push_the_position_beyond_last_tier_then_rejects(btc: Client) -> None:
    await replace_btc(btc, tiers=(("10000", 50, "0.01"), ("20000", 20, "0.02")))
    assert_accepted(await btc.check(quantity="0.3", leverage=5))
    response = await btc.check(quantity="0.2", leverage=5)
    assert_rejected(response, "REASON_POSITION_ABOVE_MAX_TIER", limit="20000", value="25000")


# 8. position, gross and open-interest limits


async def test_check_order_when_order_alone_exceeds_position_limit_then_rejects(btc: Client) -> None:
    await replace_btc(btc, max_position_notional="60000")
    response = await btc.check(quantity="1.3")
    assert_rejected(response, "REASON_POSITION_LIMIT_EXCEEDED", limit="60000", value="65000")


async def test_check_order_when_two_orders_under_limit_sum_above_position_limit_then_rejects_second(
        btc: Client) -> None:
    await replace_btc(btc, max_position_notional="60000")
    assert_accepted(await btc.check(quantity="1"))
    response = await btc.check(quantity="0.3")
    assert_rejected(response, "REASON_POSITION_LIMIT_EXCEEDED", limit="60000", value="65000")


async def test_check_order_when_open_orders_and_order_reach_the_position_limit_exactly_then_accepts(
        btc: Client) -> None:
    await replace_btc(btc, max_position_notional="60000")
    assert_accepted(await btc.check(quantity="1"))
    assert_accepted(await btc.check(quantity="0.2"), "0.2")


async def test_check_order_when_held_position_and_order_exceed_position_limit_then_rejects(btc: Client) -> None:
    await replace_btc(btc, max_position_notional="60000")
    await btc.trader("holder", positions=LONG_1_BTC)
    response = await btc.check(account="holder", quantity="0.3")
    assert_rejected(response, "REASON_POSITION_LIMIT_EXCEEDED", limit="60000", value="65000")


async def test_check_order_when_canceled_order_frees_position_limit_then_accepts(btc: Client) -> None:
    await replace_btc(btc, max_position_notional="60000")
    assert_accepted(await btc.check(quantity="1", order_id="big"))
    assert_rejected(await btc.check(quantity="0.3"), "REASON_POSITION_LIMIT_EXCEEDED")
    await btc.close_order("acct-1", "big")
    assert_accepted(await btc.check(quantity="0.3"), "0.3")


async def test_check_order_when_gross_notional_across_symbols_exceeds_cap_then_rejects(btc: Client) -> None:
    await add_eth(btc)
    await btc.set_controls("acct-1", max_gross_notional="80000")
    assert_accepted(await btc.check(quantity="1"))
    response = await btc.check(symbol="ETHUSDT", quantity="13", price="2500")
    assert_rejected(response, "REASON_GROSS_NOTIONAL_EXCEEDED", limit="80000", value="82500")


async def test_check_order_when_gross_notional_across_symbols_at_cap_then_accepts(btc: Client) -> None:
    await add_eth(btc)
    await btc.set_controls("acct-1", max_gross_notional="80000")
    assert_accepted(await btc.check(quantity="1"))
    assert_accepted(await btc.check(symbol="ETHUSDT", quantity="12", price="2500"), "12")


async def test_check_order_when_held_position_and_order_exceed_gross_cap_then_rejects(btc: Client) -> None:
    await add_eth(btc)
    await btc.trader("holder", positions=LONG_1_BTC, max_gross_notional="80000")
    response = await btc.check(account="holder", symbol="ETHUSDT", quantity="13", price="2500")
    assert_rejected(response, "REASON_GROSS_NOTIONAL_EXCEEDED", limit="80000", value="82500")


async def test_check_order_when_open_orders_in_one_symbol_exceed_gross_cap_then_rejects(btc: Client) -> None:
    await btc.set_controls("acct-1", max_gross_notional="80000")
    assert_accepted(await btc.check(quantity="1"))
    response = await btc.check(quantity="0.7")
    assert_rejected(response, "REASON_GROSS_NOTIONAL_EXCEEDED", limit="80000", value="85000")


async def test_check_order_when_open_interest_would_exceed_symbol_cap_then_rejects(btc: Client) -> None:
    await replace_btc(btc, open_interest_cap="100000")
    await btc.trader("acct-2")
    assert_accepted(await btc.check(account="acct-1", quantity="1.5"))
    response = await btc.check(account="acct-2", quantity="0.6")
    assert_rejected(response, "REASON_OPEN_INTEREST_CAP_EXCEEDED", limit="100000", value="105000")


async def test_check_order_when_open_interest_reaches_symbol_cap_exactly_then_accepts(btc: Client) -> None:
    await replace_btc(btc, open_interest_cap="100000")
    await btc.trader("acct-2")
    assert_accepted(await btc.check(account="acct-1", quantity="1.5"))
    assert_accepted(await btc.check(account="acct-2", quantity="0.5"), "0.5")


async def test_check_order_when_filled_positions_hold_the_open_interest_then_rejects_other_account(
        btc: Client) -> None:
    await replace_btc(btc, open_interest_cap="100000")
    await btc.trader("acct-2")
    assert_accepted(await btc.check(account="acct-1", quantity="1.5", order_id="oi-1"))
    ack = await btc.fill("acct-1", "oi-1", "1.5", "50000")
    assert ack.position_quantity == "1.5"
    response = await btc.check(account="acct-2", quantity="0.6")
    assert_rejected(response, "REASON_OPEN_INTEREST_CAP_EXCEEDED", limit="100000", value="105000")


async def test_check_order_when_long_side_is_at_cap_then_short_order_is_accepted(btc: Client) -> None:
    await replace_btc(btc, open_interest_cap="100000")
    await btc.trader("acct-2")
    assert_accepted(await btc.check(account="acct-1", quantity="2"))
    assert_accepted(await btc.check(account="acct-2", side="sell", quantity="0.6"), "0.6")


# 9. margin


async def test_check_order_when_cost_equals_available_margin_then_accepts(btc: Client) -> None:
    await btc.trader("small", balance="1000")
    response = await btc.check(account="small", quantity="0.2", leverage=10)
    assert_accepted(response, "0.2")
    assert response.order_cost == "1000"
    assert response.available_margin == "0"


async def test_check_order_when_cost_above_available_margin_then_rejects_insufficient_margin(btc: Client) -> None:
    await btc.trader("small", balance="1000")
    response = await btc.check(account="small", quantity="0.201", leverage=10)
    assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="1000", value="1005")
    assert response.order_cost == "0"  # nothing reserved; the refused cost is the reason's value


async def test_check_order_when_fees_push_cost_above_available_margin_then_rejects(btc: Client) -> None:
    await replace_btc(btc, taker_fee_rate="0.00055")
    await btc.trader("small", balance="5052.24")
    response = await btc.check(account="small", quantity="1", price="50000", leverage=10)
    assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="5052.24", value="5052.25")


async def test_check_order_when_balance_covers_margin_and_fees_then_accepts_with_bybit_cost(btc: Client) -> None:
    await replace_btc(btc, taker_fee_rate="0.00055")
    await btc.trader("small", balance="5052.25")
    response = await btc.check(account="small", quantity="1", price="50000", leverage=10)
    assert_accepted(response, "1")
    assert response.initial_margin == "5000"
    assert response.order_cost == "5052.25"
    assert response.available_margin == "0"


async def test_check_order_when_buy_above_mark_then_open_loss_counts_in_cost(btc: Client) -> None:
    await btc.trader("small", balance="5109.99")
    response = await btc.check(account="small", quantity="1", price="50100", leverage=10)
    assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="5109.99", value="5110")


async def test_check_order_when_sell_below_mark_then_binance_open_loss_counts_in_cost(btc: Client) -> None:
    # Binance's published example: sell 1 BTC at 9,253.30, 20x, mark 9,259.84: IM 462.665, open loss 6.54.
    await replace_btc(btc, tick_size="0.01")
    await btc.set_mark("BTCUSDT", "9259.84", confirmed=True)
    await btc.trader("poor", balance="469.2")
    response = await btc.check(account="poor", side="sell", quantity="1", price="9253.3", leverage=20)
    assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="469.2", value="469.205")
    await btc.trader("exact", balance="469.205")
    response = await btc.check(account="exact", side="sell", quantity="1", price="9253.3", leverage=20)
    assert_accepted(response, "1")
    assert response.initial_margin == "462.665"
    assert response.order_cost == "469.205"


async def test_check_order_when_buy_below_mark_then_no_open_loss_in_cost(btc: Client) -> None:
    await replace_btc(btc, tick_size="0.01")
    await btc.set_mark("BTCUSDT", "9259.84", confirmed=True)
    response = await btc.check(side="buy", quantity="1", price="9253.3", leverage=20)
    assert_accepted(response, "1")
    assert response.order_cost == "462.665"


async def test_check_order_when_held_position_uses_margin_then_rejects_on_what_is_left(btc: Client) -> None:
    await btc.trader("holder", balance="6000", positions=LONG_1_BTC)
    response = await btc.check(account="holder", quantity="0.3", leverage=10)
    assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="1000", value="1500")
    assert_accepted(await btc.check(account="holder", quantity="0.2", leverage=10), "0.2")


async def test_check_order_when_earlier_order_reserved_margin_then_next_sees_less_available(btc: Client) -> None:
    await btc.trader("small", balance="1000")
    first = await btc.check(account="small", quantity="0.15", leverage=10)
    assert_accepted(first)
    assert first.available_margin == "250"
    second = await btc.check(account="small", quantity="0.15", leverage=10)
    assert_rejected(second, "REASON_INSUFFICIENT_MARGIN", limit="250", value="750")
    third = await btc.check(account="small", quantity="0.05", leverage=10)
    assert_accepted(third)
    assert third.available_margin == "0"
    risk = await btc.risk("small")
    assert risk.reserved_order_cost == "1000"
    assert risk.available_margin == "0"
    assert risk.open_orders == 2


async def test_fill_when_accepted_order_adds_to_position_at_higher_leverage_then_margin_is_not_overdrawn(
        btc: Client) -> None:
    # Balance 5,500 holding 1 BTC at 10x: 500 available. The order is checked at 100x (cost 500, accepted);
    # filled at its price with the mark unchanged, it must not leave the account owing margin it never had.
    await btc.trader("holder", balance="5500", positions=LONG_1_BTC)
    response = await btc.check(account="holder", quantity="1", price="50000", leverage=100, order_id="add-1")
    if decision(response) == "DECISION_ACCEPT":
        assert response.available_margin == "0"
        ack = await btc.fill("holder", "add-1", "1", "50000")
        assert ack.position_quantity == "2"
    else:
        assert_rejected(response, "REASON_LEVERAGE_MISMATCH", limit="10", value="100")
    risk = await btc.risk("holder")
    assert dec(risk.available_margin) >= 0, (risk.available_margin, risk.positions[0].leverage)


async def test_check_order_when_reserving_order_is_canceled_then_its_margin_is_available_again(btc: Client) -> None:
    await btc.trader("small", balance="1000")
    assert_accepted(await btc.check(account="small", order_id="hold", quantity="0.15", leverage=10))
    assert_rejected(await btc.check(account="small", quantity="0.15", leverage=10), "REASON_INSUFFICIENT_MARGIN")
    ack = await btc.close_order("small", "hold")
    assert ack.available_margin == "1000"
    assert_accepted(await btc.check(account="small", quantity="0.15", leverage=10), "0.15")


async def test_check_order_when_two_orders_race_for_the_same_margin_then_only_one_is_accepted(
        btc: Client) -> None:
    await btc.trader("small", balance="1000")
    responses = await asyncio.gather(*(btc.check(account="small", quantity="0.15", leverage=10) for _ in range(4)))
    decisions = sorted(decision(r) for r in responses)
    assert decisions == ["DECISION_ACCEPT", "DECISION_REJECT", "DECISION_REJECT", "DECISION_REJECT"]
    for response in responses:
        if decision(response) == "DECISION_REJECT":
            assert_rejected(response, "REASON_INSUFFICIENT_MARGIN", limit="250", value="750")
    assert (await btc.risk("small")).reserved_order_cost == "750"


async def test_check_orders_stream_when_orders_share_margin_then_each_sees_the_previous_reservation(
        btc: Client) -> None:
    await btc.trader("small", balance="1000")
    requests = [btc.request(account="small", quantity="0.15", leverage=10) for _ in range(3)]
    responses = [r async for r in btc.pretrade.CheckOrders(iter(requests))]
    assert [r.order_id for r in responses] == [r.order_id for r in requests]
    assert_accepted(responses[0])
    assert_rejected(responses[1], "REASON_INSUFFICIENT_MARGIN", limit="250", value="750")
    assert_rejected(responses[2], "REASON_INSUFFICIENT_MARGIN", limit="250", value="750")
