"""Decision kinds: ACCEPT, REJECT and REDUCE_ONLY, from breakers, account controls, reduce-only orders and flips.

DECISION_REDUCE_ONLY means only `allowed_quantity` may go, flagged reduce-only; a reduce-only
order may shrink a position but never flip it.
"""

from __future__ import annotations

import pytest

from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from tests.support import Client, codes, decision, symbol_spec

LONG = "long-1"
SHORT = "short-1"


async def long_trader(client: Client, account: str = LONG, quantity: str = "1", balance: str = "100000",
                      **controls: object) -> None:
    """An account holding `quantity` BTC long at 50,000, 10x."""
    await client.trader(account, balance=balance, positions=(("BTCUSDT", quantity, "50000", 10),), **controls)


async def short_trader(client: Client, account: str = SHORT, quantity: str = "1") -> None:
    await client.trader(account, positions=(("BTCUSDT", f"-{quantity}", "50000", 10),))


def reason(response: pb.CheckOrderResponse, code: str) -> pb.Reason:
    assert code in codes(response), codes(response)
    return response.reasons[codes(response).index(code)]


# ACCEPT and REJECT


async def test_check_order_when_every_check_passes_then_accepts_the_whole_quantity(btc: Client) -> None:
    response = await btc.check(quantity="0.5")
    assert decision(response) == "DECISION_ACCEPT"
    assert response.allowed_quantity == "0.5"
    assert list(response.reasons) == []
    assert response.order_id.startswith("ord-")


async def test_check_order_when_a_check_fails_then_rejects_with_nothing_allowed(btc: Client) -> None:
    response = await btc.check(quantity="0.5", leverage=126)
    assert decision(response) == "DECISION_REJECT"
    assert response.allowed_quantity == "0"
    assert codes(response) == ["REASON_LEVERAGE_ABOVE_TIER_MAX"]
    risk = await btc.risk("acct-1")
    assert risk.open_orders == 0
    assert risk.reserved_order_cost == "0"


async def test_check_order_when_rejected_then_nothing_is_reserved_and_next_order_sees_full_margin(
        btc: Client) -> None:
    await btc.trader("small", balance="1000")
    assert decision(await btc.check(account="small", quantity="0.3", leverage=10)) == "DECISION_REJECT"
    response = await btc.check(account="small", quantity="0.2", leverage=10)
    assert decision(response) == "DECISION_ACCEPT"
    assert response.available_margin == "0"


async def test_check_order_when_fully_reducing_with_no_margin_left_then_accepts(btc: Client) -> None:
    # 1 BTC at 10x needs 5,000 of initial margin: available is -4,000, yet closing needs none.
    await long_trader(btc, balance="1000")
    response = await btc.check(account=LONG, side="sell", quantity="0.5")
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "0.5"


# Circuit breakers: HALTED rejects everything, REDUCE_ONLY lets only the reducing part go


@pytest.mark.parametrize(("symbol", "code"), [("", "REASON_PLATFORM_HALTED"), ("BTCUSDT", "REASON_SYMBOL_HALTED")],
                         ids=["platform", "symbol"])
async def test_check_order_when_breaker_halted_and_order_reduces_then_still_rejects(btc: Client, symbol: str,
                                                                                     code: str) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_HALTED, symbol=symbol)
    for reduce_only in (False, True):
        response = await btc.check(account=LONG, side="sell", quantity="0.5", reduce_only=reduce_only)
        assert decision(response) == "DECISION_REJECT"
        assert codes(response) == [code]
        assert response.allowed_quantity == "0"


@pytest.mark.parametrize(("symbol", "code"), [("", "REASON_PLATFORM_HALTED"), ("BTCUSDT", "REASON_SYMBOL_HALTED")],
                         ids=["platform", "symbol"])
async def test_check_order_when_breaker_halted_and_order_opens_then_rejects(btc: Client, symbol: str,
                                                                            code: str) -> None:
    await btc.set_breaker(admin.BREAKER_HALTED, symbol=symbol)
    response = await btc.check()
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == [code]


REDUCE_ONLY_BREAKERS = pytest.mark.parametrize(
    ("symbol", "code"), [("", "REASON_PLATFORM_REDUCE_ONLY"), ("BTCUSDT", "REASON_SYMBOL_REDUCE_ONLY")],
    ids=["platform", "symbol"])


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_order_opens_then_rejects_nothing_to_reduce(
        btc: Client, symbol: str, code: str) -> None:
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(side="buy", quantity="1")
    assert decision(response) == "DECISION_REJECT"
    assert set(codes(response)) == {"REASON_NOTHING_TO_REDUCE", code}
    assert response.allowed_quantity == "0"
    assert (await btc.risk("acct-1")).open_orders == 0


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_order_adds_to_position_then_rejects(
        btc: Client, symbol: str, code: str) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(account=LONG, side="buy", quantity="0.5")
    assert decision(response) == "DECISION_REJECT"
    assert code in codes(response)
    assert response.allowed_quantity == "0"


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_order_reduces_then_reduce_only_for_the_whole(
        btc: Client, symbol: str, code: str) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(account=LONG, side="sell", quantity="0.4")
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == [code]
    assert response.allowed_quantity == "0.4"


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_order_would_flip_then_reduce_only_capped_at_position(
        btc: Client, symbol: str, code: str) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(account=LONG, side="sell", quantity="1.5")
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == [code]
    assert response.allowed_quantity == "1"
    # The capped order holds the whole position: nothing is left to reduce.
    again = await btc.check(account=LONG, side="sell", quantity="0.1")
    assert decision(again) == "DECISION_REJECT"
    assert "REASON_NOTHING_TO_REDUCE" in codes(again)


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_short_buys_back_then_reduce_only(
        btc: Client, symbol: str, code: str) -> None:
    await short_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(account=SHORT, side="buy", quantity="2")
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == [code]
    assert response.allowed_quantity == "1"


@REDUCE_ONLY_BREAKERS
async def test_check_order_when_breaker_reduce_only_and_order_already_reduce_only_then_accepts(
        btc: Client, symbol: str, code: str) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol=symbol)
    response = await btc.check(account=LONG, side="sell", quantity="0.4", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "0.4"


async def test_check_order_when_symbol_breaker_reduce_only_then_other_symbols_accept_opening_orders(
        btc: Client) -> None:
    await btc.upsert_symbol(symbol_spec("ETHUSDT"), mark="2500")
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="ETHUSDT")
    response = await btc.check(symbol="BTCUSDT", quantity="1")
    assert decision(response) == "DECISION_ACCEPT"
    eth = await btc.check(symbol="ETHUSDT", quantity="1", price="2500")
    assert decision(eth) == "DECISION_REJECT"
    assert "REASON_SYMBOL_REDUCE_ONLY" in codes(eth)


async def test_check_order_when_platform_reduce_only_and_symbol_halted_then_halt_wins(btc: Client) -> None:
    await long_trader(btc)
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY)
    await btc.set_breaker(admin.BREAKER_HALTED, symbol="BTCUSDT")
    response = await btc.check(account=LONG, side="sell", quantity="0.5")
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_SYMBOL_HALTED"]


async def test_check_order_when_reduce_only_breaker_is_lifted_then_opening_orders_accept(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY)
    assert decision(await btc.check()) == "DECISION_REJECT"
    await btc.set_breaker(admin.BREAKER_NORMAL)
    response = await btc.check()
    assert decision(response) == "DECISION_ACCEPT"
    assert response.allowed_quantity == "1"


async def test_list_circuit_breakers_when_breakers_are_set_then_reports_both_scopes(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, reason="maintenance")
    await btc.set_breaker(admin.BREAKER_HALTED, symbol="BTCUSDT", reason="bad feed")
    listed = await btc.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth())
    states = {b.symbol: (b.state, b.reason) for b in listed.breakers}
    assert states[""] == (admin.BREAKER_REDUCE_ONLY, "maintenance")
    assert states["BTCUSDT"] == (admin.BREAKER_HALTED, "bad feed")


# Account controls


async def test_check_order_when_account_frozen_and_order_reduces_then_rejects(btc: Client) -> None:
    await long_trader(btc, restriction=admin.RESTRICTION_FROZEN)
    for reduce_only in (False, True):
        response = await btc.check(account=LONG, side="sell", quantity="0.5", reduce_only=reduce_only)
        assert decision(response) == "DECISION_REJECT"
        assert codes(response) == ["REASON_ACCOUNT_FROZEN"]


async def test_check_order_when_account_frozen_then_other_accounts_accept(btc: Client) -> None:
    await long_trader(btc, restriction=admin.RESTRICTION_FROZEN)
    assert codes(await btc.check(account=LONG)) == ["REASON_ACCOUNT_FROZEN"]
    assert decision(await btc.check(account="acct-1")) == "DECISION_ACCEPT"


async def test_check_order_when_account_reduce_only_and_order_opens_then_rejects(btc: Client) -> None:
    await btc.set_controls("acct-1", restriction=admin.RESTRICTION_REDUCE_ONLY)
    response = await btc.check(side="sell", quantity="1")
    assert decision(response) == "DECISION_REJECT"
    assert set(codes(response)) == {"REASON_NOTHING_TO_REDUCE", "REASON_ACCOUNT_REDUCE_ONLY"}


async def test_check_order_when_account_reduce_only_and_order_reduces_then_reduce_only(btc: Client) -> None:
    await long_trader(btc, restriction=admin.RESTRICTION_REDUCE_ONLY)
    response = await btc.check(account=LONG, side="sell", quantity="0.5")
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_ACCOUNT_REDUCE_ONLY"]
    assert response.allowed_quantity == "0.5"


async def test_check_order_when_account_reduce_only_and_order_would_flip_then_capped_at_position(
        btc: Client) -> None:
    await long_trader(btc, restriction=admin.RESTRICTION_REDUCE_ONLY)
    response = await btc.check(account=LONG, side="sell", quantity="3")
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_ACCOUNT_REDUCE_ONLY"]
    assert response.allowed_quantity == "1"


async def test_check_order_when_account_reduce_only_and_reduce_only_order_fits_then_accepts(btc: Client) -> None:
    await long_trader(btc, restriction=admin.RESTRICTION_REDUCE_ONLY)
    response = await btc.check(account=LONG, side="sell", quantity="1", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "1"


# Reduce-only requested by the order


async def test_check_order_when_reduce_only_order_exceeds_position_then_capped_with_allowed_quantity(
        btc: Client) -> None:
    await long_trader(btc)
    response = await btc.check(account=LONG, side="sell", quantity="1.5", reduce_only=True)
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_REDUCE_ONLY_QUANTITY_CAPPED"]
    capped = reason(response, "REASON_REDUCE_ONLY_QUANTITY_CAPPED")
    assert (capped.limit, capped.value) == ("1", "1.5")
    assert response.allowed_quantity == "1"


async def test_check_order_when_reduce_only_order_fits_position_then_accepts(btc: Client) -> None:
    await long_trader(btc)
    response = await btc.check(account=LONG, side="sell", quantity="0.5", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT"
    assert response.allowed_quantity == "0.5"


async def test_check_order_when_reduce_only_buy_exceeds_short_then_capped_at_short(btc: Client) -> None:
    await short_trader(btc, quantity="0.7")
    response = await btc.check(account=SHORT, side="buy", quantity="2", reduce_only=True)
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_REDUCE_ONLY_QUANTITY_CAPPED"]
    assert response.allowed_quantity == "0.7"


async def test_check_order_when_reduce_only_and_no_position_then_rejects_nothing_to_reduce(btc: Client) -> None:
    response = await btc.check(side="sell", quantity="0.5", reduce_only=True)
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_NOTHING_TO_REDUCE"]
    nothing = response.reasons[0]
    assert (nothing.limit, nothing.value) == ("0", "0.5")
    assert response.allowed_quantity == "0"
    assert (await btc.risk("acct-1")).open_orders == 0


async def test_check_order_when_reduce_only_order_on_the_same_side_as_position_then_rejects_nothing_to_reduce(
        btc: Client) -> None:
    await long_trader(btc)
    response = await btc.check(account=LONG, side="buy", quantity="0.5", reduce_only=True)
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_NOTHING_TO_REDUCE"]


async def test_check_order_when_open_reduce_only_orders_cover_position_then_next_is_capped_then_rejected(
        btc: Client) -> None:
    await long_trader(btc)
    first = await btc.check(account=LONG, side="sell", quantity="0.6", reduce_only=True)
    assert decision(first) == "DECISION_ACCEPT"
    second = await btc.check(account=LONG, side="sell", quantity="0.6", reduce_only=True)
    assert decision(second) == "DECISION_REDUCE_ONLY"
    assert second.allowed_quantity == "0.4"
    capped = reason(second, "REASON_REDUCE_ONLY_QUANTITY_CAPPED")
    assert (capped.limit, capped.value) == ("0.4", "0.6")
    third = await btc.check(account=LONG, side="sell", quantity="0.1", reduce_only=True)
    assert decision(third) == "DECISION_REJECT"
    assert codes(third) == ["REASON_NOTHING_TO_REDUCE"]


async def test_check_order_when_capped_reduce_only_order_fills_in_full_then_position_is_flat_not_flipped(
        btc: Client) -> None:
    await long_trader(btc)
    response = await btc.check(account=LONG, side="sell", quantity="1.5", reduce_only=True, order_id="close-all")
    assert response.allowed_quantity == "1"
    ack = await btc.fill(LONG, "close-all", "1", "50000")
    assert ack.position_quantity == "0"
    assert ack.remaining_quantity == "0"
    after = await btc.check(account=LONG, side="sell", quantity="0.5", reduce_only=True)
    assert decision(after) == "DECISION_REJECT"
    assert codes(after) == ["REASON_NOTHING_TO_REDUCE"]


async def test_check_order_when_canceled_reduce_only_order_frees_the_position_then_reduce_only_accepts(
        btc: Client) -> None:
    await long_trader(btc)
    assert decision(await btc.check(account=LONG, side="sell", quantity="1", reduce_only=True,
                                    order_id="ro-1")) == "DECISION_ACCEPT"
    assert codes(await btc.check(account=LONG, side="sell", quantity="1", reduce_only=True)) == [
        "REASON_NOTHING_TO_REDUCE"]
    await btc.close_order(LONG, "ro-1")
    response = await btc.check(account=LONG, side="sell", quantity="1", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT"


async def test_check_order_when_reduce_only_order_below_min_notional_then_accepts(btc: Client) -> None:
    await btc.upsert_symbol(symbol_spec(min_notional="100"))
    await long_trader(btc)
    response = await btc.check(account=LONG, side="sell", quantity="0.001", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    opening = await btc.check(account="acct-1", side="sell", quantity="0.001")
    assert codes(opening) == ["REASON_NOTIONAL_BELOW_MIN"]


async def test_check_order_when_reduce_only_and_increase_would_fail_margin_then_still_accepts(btc: Client) -> None:
    await long_trader(btc, balance="1000")
    response = await btc.check(account=LONG, side="sell", quantity="1", reduce_only=True)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "1"


# Flips: the reducing part may go even when the increasing remainder fails


async def test_check_order_when_flip_remainder_fails_margin_then_reduce_only_with_the_reducing_part(
        btc: Client) -> None:
    # Balance 6,000 holding 1 BTC at 10x: 1,000 available; the 2 BTC short remainder would cost 10,000.
    await long_trader(btc, balance="6000")
    response = await btc.check(account=LONG, side="sell", quantity="3", leverage=10)
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_INSUFFICIENT_MARGIN"]
    margin = response.reasons[0]
    assert (margin.limit, margin.value) == ("1000", "10000")
    assert response.allowed_quantity == "1"
    # Only the reducing part is held: no margin is reserved and the position is fully spoken for.
    risk = await btc.risk(LONG)
    assert risk.open_orders == 1
    assert risk.reserved_order_cost == "0"
    after = await btc.check(account=LONG, side="sell", quantity="0.1", reduce_only=True)
    assert codes(after) == ["REASON_NOTHING_TO_REDUCE"]


async def test_check_order_when_short_flip_remainder_fails_margin_then_reduce_only_with_the_buy_back(
        btc: Client) -> None:
    await btc.trader(SHORT, balance="5500", positions=(("BTCUSDT", "-1", "50000", 10),))
    response = await btc.check(account=SHORT, side="buy", quantity="2", leverage=10)
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_INSUFFICIENT_MARGIN"]
    assert response.allowed_quantity == "1"


async def test_check_order_when_flip_remainder_fails_tier_leverage_then_reduce_only_with_the_reducing_part(
        btc: Client) -> None:
    # Long 1 at 100x: the flip remainder (short 6 = 300,000) falls in tier 3, 50x at most.
    await btc.trader(LONG, positions=(("BTCUSDT", "1", "50000", 100),))
    response = await btc.check(account=LONG, side="sell", quantity="7", leverage=0)
    assert decision(response) == "DECISION_REDUCE_ONLY"
    assert codes(response) == ["REASON_LEVERAGE_ABOVE_TIER_MAX"]
    assert response.allowed_quantity == "1"


async def test_check_order_when_flip_remainder_passes_every_check_then_accepts_the_whole(btc: Client) -> None:
    await long_trader(btc)
    response = await btc.check(account=LONG, side="sell", quantity="3", leverage=10)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "3"
    assert response.initial_margin == "10000"


async def test_check_order_when_opening_order_fails_margin_and_nothing_to_reduce_then_rejects(btc: Client) -> None:
    await btc.trader("small", balance="1000")
    response = await btc.check(account="small", side="sell", quantity="3", leverage=10)
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_INSUFFICIENT_MARGIN"]
    assert response.allowed_quantity == "0"
